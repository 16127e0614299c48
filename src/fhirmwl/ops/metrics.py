"""Prometheus metrics (``GET /metrics``), built on ``prometheus_client``.

Door counters and latency histograms live in one process-wide registry: every door (HTTP, MLLP,
DICOM) observes into it with one call at its edge. Store-derived figures (outbox depth and lag per
subscriber, worklist size per station, schema version) are read from the database at scrape time
by a collector bound to the scraping process's store, so two ``serve`` processes on one
PostgreSQL report the same shared backlog and their own door traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from fhirmwl.services.container import Services

log = logging.getLogger("fhirmwl.ops")

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "fhirmwl_http_requests",
    "HTTP requests by interaction and status class",
    ["interaction", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "fhirmwl_http_request_seconds",
    "HTTP request latency by interaction",
    ["interaction"],
    buckets=_LATENCY,
    registry=REGISTRY,
)
MLLP_MESSAGES = Counter(
    "fhirmwl_mllp_messages",
    "HL7 v2 messages received over MLLP by message type and ACK code",
    ["message_type", "ack_code"],
    registry=REGISTRY,
)
MLLP_ACK_SECONDS = Histogram(
    "fhirmwl_mllp_ack_seconds",
    "time from a complete MLLP frame to its ACK (after commit)",
    buckets=_LATENCY,
    registry=REGISTRY,
)
CFIND_REQUESTS = Counter(
    "fhirmwl_dicom_cfind_requests",
    "DICOM C-FIND requests by final status",
    ["status"],
    registry=REGISTRY,
)
CFIND_SECONDS = Histogram(
    "fhirmwl_dicom_cfind_seconds",
    "DICOM C-FIND time from request to final response",
    buckets=_LATENCY,
    registry=REGISTRY,
)
CFIND_ITEMS = Histogram(
    "fhirmwl_dicom_cfind_items",
    "worklist items returned per C-FIND",
    buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000),
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "fhirmwl_store_errors",
    "store failures seen at a door (answered 5xx / AE 207 / C001)",
    ["door"],
    registry=REGISTRY,
)


def http_interaction(method: str, path: str) -> str:
    """A low-cardinality label for an HTTP request (never ids or query values)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "root"
    door, rest = parts[0], parts[1:]
    if door in ("healthz", "readyz", "metrics"):
        return door
    if door == "dicomweb":
        return "dicomweb-" + method.lower()
    if door != "fhir":
        return "other"
    if not rest:
        return "transaction" if method == "POST" else "other"
    if rest[-1].startswith("$"):
        return "operation-" + rest[-1][1:][:32].lower()
    if rest == ["metadata"] or rest[0] == ".well-known":
        return "metadata"
    if "_history" in rest:
        return "history"
    level = {1: "type", 2: "instance"}.get(len(rest), "instance")
    if len(rest) == 2 and rest[1] == "_search":
        return "search"
    table = {
        ("type", "GET"): "search",
        ("type", "POST"): "create",
        ("type", "PUT"): "conditional-update",
        ("type", "DELETE"): "conditional-delete",
        ("instance", "GET"): "read",
        ("instance", "PUT"): "update",
        ("instance", "DELETE"): "delete",
        ("instance", "PATCH"): "patch",
    }
    return table.get((level, method), "other")


class MetricsMiddleware:
    """ASGI middleware: one counter increment and one histogram observation per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        interaction = http_interaction(scope["method"], scope["path"])
        status = {"code": 500}
        start = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_SECONDS.labels(interaction).observe(time.perf_counter() - start)
            HTTP_REQUESTS.labels(interaction, f"{status['code'] // 100}xx").inc()
            if status["code"] >= 500:
                STORE_ERRORS.labels("http").inc()


def _msa_code(ack: bytes | None) -> str:
    if not ack:
        return "none"
    for segment in ack.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA"):
            fields = segment.split(segment[3:4] or b"|")
            return fields[1].decode("ascii", "replace")[:2] if len(fields) > 1 else "none"
    return "none"


def _message_type(raw: bytes) -> str:
    head = raw.lstrip(b"\x0b\r\n").split(b"\r", 1)[0]
    if not head.startswith(b"MSH") or len(head) < 8:
        return "unknown"
    fields = head.split(head[3:4])
    if len(fields) <= 8:
        return "unknown"
    comp = fields[8].split(head[4:5] or b"^")
    label = b"^".join(comp[:2]).decode("ascii", "replace")
    return label[:16] if label.replace("^", "").isalnum() else "unknown"


def timed_mllp(handle: Callable[[bytes, Any], bytes]) -> Callable[[bytes, Any], bytes]:
    """Wrap an MLLP message handler (frame → ACK) with the ACK-time and outcome metrics."""

    def wrapped(raw: bytes, peer: Any) -> bytes:
        start = time.perf_counter()
        ack = b""
        try:
            ack = handle(raw, peer)
            return ack
        finally:
            MLLP_ACK_SECONDS.observe(time.perf_counter() - start)
            code = _msa_code(ack)
            MLLP_MESSAGES.labels(_message_type(raw), code).inc()
            if code == "none":
                STORE_ERRORS.labels("mllp").inc()

    return wrapped


def timed_find(handler: Callable[[Any], Iterator[Any]]) -> Callable[[Any], Iterator[Any]]:
    """Wrap a pynetdicom C-FIND handler generator: time, items returned, final status."""

    def wrapped(event: Any) -> Iterator[Any]:
        from fhirmwl.dicom.tally import FindTally  # here: fhirmwl.dicom imports this module
        from fhirmwl.ops.logs import CONTEXT, bind

        start = time.perf_counter()
        assoc = event.assoc
        token = bind(
            door="dicom",
            peer=f"{assoc.requestor.address}:{assoc.requestor.port}",
            calling_ae=str(assoc.requestor.ae_title).strip(),
            association=str(assoc.native_id or ""),
        )
        tally = FindTally()
        try:
            yield from tally.count(handler(event))
        finally:
            CFIND_SECONDS.observe(time.perf_counter() - start)
            CFIND_ITEMS.observe(tally.items(event))
            CFIND_REQUESTS.labels(tally.final).inc()
            if tally.final.startswith("C"):
                STORE_ERRORS.labels("dicom").inc()
            CONTEXT.reset(token)

    return wrapped


class StoreCollector(Collector):
    """Figures read from the store at scrape time (shared by every process on one database)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._collect()
        except Exception:  # noqa: BLE001 - a scrape must not fail because one table is absent
            log.warning("metrics: store figures unavailable", exc_info=True)
            up = GaugeMetricFamily("fhirmwl_store_up", "1 when the store answered the scrape")
            up.add_metric([], 0)
            yield up

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        from fhirmwl.notify.outbox import pending_count
        from fhirmwl.store.migrations import current_version

        now = time.time()
        with self.services.store.read() as tx:
            conn = tx.conn
            stations = conn.execute(
                "SELECT station_aet, COUNT(*) FROM worklist GROUP BY station_aet"
            ).fetchall()
            last_event = conn.execute("SELECT MAX(event_no) FROM notify_event").fetchone()[0] or 0
            unnumbered = pending_count(tx)
            subs = conn.execute(
                "SELECT sub_id, cursor, error_count, last_sent FROM notify_sub"
            ).fetchall()
            oldest = {
                row[0]: row[1]
                for row in conn.execute(
                    "SELECT s.sub_id, MIN(e.created) FROM notify_sub s JOIN notify_event e "
                    "ON e.event_no > s.cursor GROUP BY s.sub_id"
                ).fetchall()
            }
        up = GaugeMetricFamily("fhirmwl_store_up", "1 when the store answered the scrape")
        up.add_metric([], 1)
        yield up
        version = GaugeMetricFamily("fhirmwl_schema_version", "applied schema version")
        version.add_metric([], current_version(self.services.store.db))
        yield version
        size = GaugeMetricFamily(
            "fhirmwl_worklist_items", "worklist items by station AE title", labels=["station"]
        )
        for station, count in stations:
            size.add_metric([str(station or "")[:16]], count)
        yield size
        depth = GaugeMetricFamily(
            "fhirmwl_outbox_pending_events",
            "notification events not yet delivered, per subscription",
            labels=["subscription"],
        )
        errors = GaugeMetricFamily(
            "fhirmwl_outbox_delivery_errors",
            "consecutive delivery errors, per subscription",
            labels=["subscription"],
        )
        lag = GaugeMetricFamily(
            "fhirmwl_outbox_lag_seconds",
            "age of the oldest undelivered event, per subscription (0 when none)",
            labels=["subscription"],
        )
        for sub_id, cursor, error_count, _last_sent in subs:
            depth.add_metric([sub_id], max(0, last_event - int(cursor)))
            errors.add_metric([sub_id], error_count)
            lag.add_metric([sub_id], _age(oldest.get(sub_id), now))
        yield depth
        yield errors
        yield lag
        staged = GaugeMetricFamily(
            "fhirmwl_outbox_unnumbered_events",
            "PostgreSQL: committed events not numbered yet (normally 0; see notify.outbox)",
        )
        staged.add_metric([], unnumbered)
        yield staged
        yield from self._destinations(last_event)

    def _destinations(self, last_event: int) -> Iterator[GaugeMetricFamily]:
        """Outbound HL7 destinations: events not yet turned into messages, messages not yet
        acknowledged, consecutive errors."""
        with self.services.store.read() as tx:
            try:
                dests = tx.conn.execute(
                    "SELECT name, cursor, error_count FROM hl7_out_dest"
                ).fetchall()
                pending = dict(
                    tx.conn.execute(
                        "SELECT dest, COUNT(*) FROM hl7_out_log WHERE status = 'pending' "
                        "GROUP BY dest"
                    ).fetchall()
                )
            except Exception:  # noqa: BLE001 - outbound HL7 not installed in this store
                return
        events = GaugeMetricFamily(
            "fhirmwl_hl7_out_pending_events",
            "outbox events not yet turned into messages, per outbound HL7 destination",
            labels=["destination"],
        )
        messages = GaugeMetricFamily(
            "fhirmwl_hl7_out_pending_messages",
            "outbound HL7 messages waiting for an AA, per destination",
            labels=["destination"],
        )
        errors = GaugeMetricFamily(
            "fhirmwl_hl7_out_delivery_errors",
            "consecutive failed sends, per outbound HL7 destination",
            labels=["destination"],
        )
        for name, cursor, error_count in dests:
            events.add_metric([name], max(0, last_event - int(cursor)))
            messages.add_metric([name], int(pending.get(name, 0)))
            errors.add_metric([name], error_count)
        yield events
        yield messages
        yield errors


def _age(created: str | None, now: float) -> float:
    if not created:
        return 0.0
    from datetime import datetime

    try:
        return max(0.0, now - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0.0


def render(services: Services) -> tuple[bytes, str]:
    """The exposition text: process-wide door metrics plus this store's figures."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(StoreCollector(services))
    return generate_latest(REGISTRY) + generate_latest(scrape), CONTENT_TYPE_LATEST
