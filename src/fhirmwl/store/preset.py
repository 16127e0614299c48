"""Compact JSON columns: DEFLATE with a preset dictionary, one codec per column kind.

The approach of :mod:`fhirmwl.store.codec` (resource JSON on SQLite) applied to the two other
large JSON columns: the DICOM JSON item of a worklist row (``worklist.item_json``, 1.6 KB of
mostly tag numbers and VRs) and the AuditEvent of an audit row (``audit_event.content``,
1.6 KB of mostly code system URLs and role codes). Primed with a dictionary of that
vocabulary, DEFLATE leaves little more than the values: about a quarter of the text.

Unlike the resource codec, these columns are packed on both backends (a ``BYTEA`` on
PostgreSQL): nothing queries inside them with SQL, and PostgreSQL compresses a value only when
the row exceeds about 2 KB, so these rows were stored uncompressed.

Format: a BLOB whose first byte is the codec's version (one per dictionary), then a raw
DEFLATE stream. Reading also accepts JSON text (rows written before the codec, or any
``TEXT`` column) and JSON bytes (PostgreSQL rows converted from ``TEXT`` by a migration: they
begin with ``{``, which no version byte is). A dictionary must never change: stored rows
depend on it byte for byte; a better one gets a new version byte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

_JSON_START = ord("{")


@dataclass(frozen=True)
class PresetCodec:
    """DEFLATE with ``dictionary``; packed values start with ``version``."""

    version: int
    dictionary: bytes

    def __post_init__(self) -> None:
        # The whole dictionary must fit the 4 KB window used below.
        if self.version == _JSON_START or not 0 < self.version < 256:
            raise ValueError(f"version byte {self.version} is reserved")
        if len(self.dictionary) > 4096:
            raise ValueError("a preset dictionary must fit the 4 KB window")

    def pack(self, text: str) -> bytes:
        """The stored form of a JSON text."""
        # A 4 KB window and small hash tables: the state zlib allocates per call, not the
        # compression, is what costs at this size (see fhirmwl.store.codec).
        deflate = zlib.compressobj(
            6, zlib.DEFLATED, -12, 6, zlib.Z_DEFAULT_STRATEGY, self.dictionary
        )
        return bytes((self.version,)) + deflate.compress(text.encode()) + deflate.flush()

    def unpack_bytes(self, value: str | bytes | memoryview) -> bytes:
        """UTF-8 JSON of a stored value (what ``orjson.loads`` reads without a decode)."""
        if isinstance(value, str):
            return value.encode()
        data = bytes(value)
        if not data or data[0] == _JSON_START:
            return data
        if data[0] != self.version:
            raise ValueError(f"stored value in unknown format {data[0]}")
        inflate = zlib.decompressobj(-12, self.dictionary)
        return inflate.decompress(data[1:]) + inflate.flush()

    def unpack(self, value: str | bytes | memoryview | None) -> str | None:
        """JSON text of a stored value: packed, JSON bytes or text."""
        if value is None or isinstance(value, str):
            return value
        return self.unpack_bytes(value).decode()
