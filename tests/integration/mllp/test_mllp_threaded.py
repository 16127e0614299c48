"""The threaded listener the runtime starts: sync start/stop, a blocking handler on a pool."""

from __future__ import annotations

import threading

from fhirmwl.mapping.v2_to_fhir import MappingContext
from fhirmwl.mapping.v2_to_fhir.intake import evaluate
from fhirmwl.mllp import PeerInfo, ThreadedMLLPListener, send_messages

MSG = b"MSH|^~\\&|A|B|C|D|20250101||ADT^A08|T1|P|2.5\rPID|||P1^^^H^MR||DOE^JANE\r"


def test_blocking_handler_runs_off_the_event_loop() -> None:
    threads: set[str] = set()

    def handler(payload: bytes, peer: PeerInfo) -> bytes:
        threads.add(threading.current_thread().name)
        return evaluate(payload, MappingContext()).ack

    listener = ThreadedMLLPListener(handler, "127.0.0.1", 0, workers=2)
    listener.start()
    try:
        acks = send_messages("127.0.0.1", listener.port, [MSG, MSG])
    finally:
        listener.stop()
    assert [a.split(b"\r")[1] for a in acks] == [b"MSA|AA|T1", b"MSA|AA|T1"]
    assert threads and all(t.startswith("mllp-work") for t in threads)
