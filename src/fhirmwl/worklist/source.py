"""Worklist data sources: where a C-FIND, ``$mwl-query`` or DICOMweb query gets its items.

Like DCMTK's worklist data source, the network code only asks an abstract source for the items
matching a :class:`WorklistQuery`. Two implementations live here: an in-memory list (tests,
``mwl import`` previews) and one over the ``worklist`` index table through any DB-API
connection using ``?`` placeholders (SQLite now; the store plugs its own table in later).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import orjson
from pydicom.dataset import Dataset

from fhirmwl.worklist.itemcodec import unpack_item_bytes
from fhirmwl.worklist.jsoncodec import dataset_from_dict, dataset_to_dict
from fhirmwl.worklist.match import JsonItem, matches_json
from fhirmwl.worklist.query import WorklistQuery
from fhirmwl.worklist.row import WORKLIST_DDL, worklist_row
from fhirmwl.worklist.sql import query_to_sql


@runtime_checkable
class WorklistSource(Protocol):
    def find(self, q: WorklistQuery, limit: int | None = None) -> Iterator[Dataset]:
        """Yield complete worklist items matching ``q`` (at most ``limit``)."""
        ...

    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[JsonItem]:
        """The same items in their stored DICOM JSON form (the fast path of every answer)."""
        ...


class InMemorySource:
    """A list of worklist items, matched in Python."""

    def __init__(self, items: Iterable[Dataset]) -> None:
        self.items = list(items)
        self.json_items = [dataset_to_dict(item) for item in self.items]

    def find(self, q: WorklistQuery, limit: int | None = None) -> Iterator[Dataset]:
        for index in self._found(q, limit):
            yield self.items[index]

    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[JsonItem]:
        for index in self._found(q, limit):
            yield self.json_items[index]

    def _found(self, q: WorklistQuery, limit: int | None) -> Iterator[int]:
        count = 0
        for index, item in enumerate(self.json_items):
            if limit is not None and count >= limit:
                return
            if matches_json(q, item):
                count += 1
                yield index


class SqlWorklistSource:
    """Items from the ``worklist`` table: SQL pre-filter on indexed columns, then ``matches``.

    ``connection`` is any DB-API connection whose paramstyle is ``qmark`` (sqlite3). Rows come
    in SPS start order; the SQL ``LIMIT`` is not used because Python may still reject rows.
    """

    batch_size = 200

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def find(self, q: WorklistQuery, limit: int | None = None) -> Iterator[Dataset]:
        for item in self.find_json(q, limit):
            yield dataset_from_dict(item)

    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[JsonItem]:
        where, params = query_to_sql(q)
        sql = (
            f"SELECT item_json FROM worklist WHERE {where}"
            " ORDER BY sps_start_date, sps_start_time, task_id"
        )
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            count = 0
            while rows := cursor.fetchmany(self.batch_size):
                for (item_json,) in rows:
                    item = orjson.loads(unpack_item_bytes(item_json))
                    if matches_json(q, item):
                        yield item
                        count += 1
                        if limit is not None and count >= limit:
                            return
        finally:
            cursor.close()


def create_worklist_table(connection: Any) -> None:
    cursor = connection.cursor()
    for statement in WORKLIST_DDL:
        cursor.execute(statement)
    cursor.close()


def upsert_rows(connection: Any, rows: Iterable[dict[str, Any]]) -> None:
    """Insert or replace index rows (SQLite/PostgreSQL ``ON CONFLICT`` syntax)."""
    rows = list(rows)
    if not rows:
        return
    columns = list(rows[0])
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "task_id")
    sql = (
        f"INSERT INTO worklist ({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT (task_id) DO UPDATE SET {updates}"
    )
    connection.cursor().executemany(sql, [[r[c] for c in columns] for r in rows])


def sqlite_source_from_items(items: Iterable[tuple[str, Dataset]]) -> SqlWorklistSource:
    """An in-memory SQLite worklist filled with ``(task_id, item)`` pairs (tests, previews)."""
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    create_worklist_table(connection)
    upsert_rows(connection, (worklist_row(item, task_id) for task_id, item in items))
    connection.commit()
    return SqlWorklistSource(connection)
