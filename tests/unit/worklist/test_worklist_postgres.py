"""The worklist DDL and the SQL pre-filter are valid on PostgreSQL too (``?`` → ``%s``)."""

from __future__ import annotations

import os
import uuid

import pytest
from test_matching import CASES

from fhirmwl.worklist import WORKLIST_DDL, WorklistQuery, matches, query_to_sql, worklist_row

pytestmark = pytest.mark.postgres
PG_URL = os.environ.get("FHIRMWL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg():  # type: ignore[no-untyped-def]
    psycopg = pytest.importorskip("psycopg")
    try:
        conn = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except Exception:  # noqa: BLE001
        if os.environ.get("FHIRMWL_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required but not reachable at {PG_URL}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    schema = f"wl_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE SCHEMA "{schema}"')
    conn.execute(f'SET search_path TO "{schema}"')
    for statement in WORKLIST_DDL:
        conn.execute(statement)
    yield conn
    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    conn.close()


@pytest.mark.parametrize(
    ("identifier", "ds", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_prefilter_on_postgres(pg, identifier, ds, expected) -> None:  # type: ignore[no-untyped-def]
    pg.execute("DELETE FROM worklist")
    row = worklist_row(ds, "t1")
    columns = ", ".join(row)
    marks = ", ".join("%s" for _ in row)
    pg.execute(f"INSERT INTO worklist ({columns}) VALUES ({marks})", list(row.values()))
    q = WorklistQuery.from_dataset(identifier)
    where, params = query_to_sql(q)
    found = pg.execute(f"SELECT count(*) FROM worklist WHERE {where.replace('?', '%s')}", params)
    selected = found.fetchone()[0] == 1
    assert matches(q, ds) is expected
    if expected:
        assert selected
