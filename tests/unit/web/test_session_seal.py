"""Desk session rows are encrypted under the session id: only the cookie opens them."""

from __future__ import annotations

from pathlib import Path

from fhirmwl.store.db import open_database
from fhirmwl.store.migrations import migrate
from fhirmwl.web import session
from fhirmwl.web.session import SessionStore, seal, unseal


def test_sealed_data_opens_only_with_its_id_and_kind() -> None:
    box = seal("sid-1", session.SESSION, {"token": "eyJ.secret"})
    assert "eyJ" not in box and "secret" not in box
    assert unseal("sid-1", session.SESSION, box) == {"token": "eyJ.secret"}
    assert unseal("sid-2", session.SESSION, box) is None
    assert unseal("sid-1", session.LOGIN, box) is None  # a login row is not a session
    assert unseal("sid-1", session.SESSION, "not base64!") is None


def test_rows_written_before_sealing_are_dropped_by_the_migration(tmp_path: Path) -> None:
    session.register_migration()
    db = open_database(f"sqlite:///{tmp_path / 'd.db'}")
    migrate(db)
    store = SessionStore(db)
    sid = store.put(session.SESSION, {"token": "eyJ.new"}, exp=2**40)
    assert store.get(session.SESSION, sid) == {"token": "eyJ.new"}
    with db.transaction(write=True) as conn:  # a row as version 211 wrote it: data in clear
        conn.execute("DELETE FROM schema_migrations WHERE version = 212")
        conn.execute(
            "INSERT INTO desk_session (id_hash, kind, data, exp) VALUES ('h', 'session', "
            '\'{"token": "eyJ.old"}\', ?)',
            (2**40,),
        )
    migrate(db)
    with db.transaction(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM desk_session").fetchone()[0] == 0
    db.close()
