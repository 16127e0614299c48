"""The store's worklist as a ``WorklistSource``: one indexed SQL pre-filter, then the shared
matcher finishes in Python what SQL cannot decide (``?`` in names, multi-valued stations…).

Used by the C-FIND SCP (one source per request, in the association's thread) and by the FHIR
and DICOMweb worklist queries, so all transports answer from the same rows with the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
from pydicom.dataset import Dataset

from fhirmwl.store import Store
from fhirmwl.worklist.itemcodec import unpack_item, unpack_item_bytes
from fhirmwl.worklist.jsoncodec import dataset_from_dict, item_from_json
from fhirmwl.worklist.match import JsonItem, matches_json
from fhirmwl.worklist.query import WorklistQuery
from fhirmwl.worklist.sql import query_to_sql
from fhirmwl.worklist.values import json_strings, norm_date, norm_time

SPS_SEQUENCE_HEX = "00400100"


Cursor = tuple[str, str, str]  # (normalised SPS start date, time, task id): the row order


def cursor_of(task_id: str, item: JsonItem) -> Cursor:
    """The ordering key of a stored item, as the ``worklist`` columns hold it."""
    sps = ((item.get(SPS_SEQUENCE_HEX) or {}).get("Value") or [{}])[0]
    date = json_strings(sps.get("00400002"))
    time = json_strings(sps.get("00400003"))
    return (norm_date(date[0]) if date else "", norm_time(time[0]) if time else "", task_id)


class StoreWorklistSource:
    def __init__(self, store: Store, retention_days: int = 0) -> None:
        self.store = store
        self.retention_days = retention_days

    def rows(self, q: WorklistQuery, after: Cursor | None = None) -> list[tuple[str, str]]:
        """``(task_id, item_json)`` of the pre-filtered rows, in SPS start order; ``after``
        (a :func:`cursor_of` value) starts after that row: a keyset page, stable while other
        steps are added or removed."""
        return [(task_id, unpack_item(item) or "") for task_id, item in self._stored(q, after)]

    def _stored(self, q: WorklistQuery, after: Cursor | None = None) -> list[tuple[str, bytes]]:
        """``(task_id, stored item)`` of :meth:`rows` (packed, JSON bytes or text)."""
        where, params = query_to_sql(q)
        if after is not None:
            d, t, task = after
            where = (
                f"({where}) AND (sps_start_date > ? OR (sps_start_date = ? AND"
                " (sps_start_time > ? OR (sps_start_time = ? AND task_id > ?))))"
            )
            params = [*params, d, d, t, t, task]
        if self.retention_days > 0:
            cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
            where = f"({where}) AND (sps_start_utc IS NULL OR sps_start_utc >= ?)"
            params = [*params, cutoff.isoformat().replace("+00:00", "Z")]
        sql = (
            f"SELECT task_id, item_json FROM worklist WHERE {where}"
            " ORDER BY sps_start_date, sps_start_time, task_id"
        )
        with self.store.read() as tx:
            return [(r[0], r[1]) for r in tx.conn.execute(sql, params).fetchall()]

    def find_json_with_ids(
        self, q: WorklistQuery, limit: int | None = None, after: Cursor | None = None
    ) -> Iterator[tuple[str, JsonItem]]:
        """``(task_id, item)`` of the matching items as stored (DICOM JSON), in SPS start
        order: the fast path every transport projects its answer from."""
        count = 0
        for task_id, stored in self._stored(q, after):
            item = orjson.loads(unpack_item_bytes(stored))
            if matches_json(q, item):
                yield task_id, item
                count += 1
                if limit is not None and count >= limit:
                    return

    def find_with_ids(
        self, q: WorklistQuery, limit: int | None = None
    ) -> Iterator[tuple[str, Dataset]]:
        for task_id, item in self.find_json_with_ids(q, limit):
            yield task_id, dataset_from_dict(item)

    def find_json(self, q: WorklistQuery, limit: int | None = None) -> Iterator[JsonItem]:
        for _task_id, item in self.find_json_with_ids(q, limit):
            yield item

    def find(self, q: WorklistQuery, limit: int | None = None) -> Iterator[Dataset]:
        for _task_id, item in self.find_with_ids(q, limit):
            yield item

    def item(self, task_id: str) -> Dataset | None:
        with self.store.read() as tx:
            row = tx.conn.execute(
                "SELECT item_json FROM worklist WHERE task_id = ?", (task_id,)
            ).fetchone()
        return item_from_json(unpack_item(row[0]) or "") if row else None
