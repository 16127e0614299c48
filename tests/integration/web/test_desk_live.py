"""Live updates: a change committed by one ``serve`` process reaches the desk of another
through the shared store (Server-Sent Events fed by the outbox cursor), and the stream ends
when the server stops."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from tests.integration.web.conftest import Desk, today
from tests.integration.web.messages import omi


def _events(desk: Desk, until: Callable[[list[str]], bool], opened: threading.Event) -> list[str]:
    seen: list[str] = []
    client = httpx.Client(base_url=desk.base, timeout=httpx.Timeout(30, read=30))
    with client, client.stream("GET", "/ui/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                seen.append(line[7:])
                opened.set()
            if until(seen):
                break
    return seen


def test_a_change_in_another_process_reaches_the_desk(
    db_url: str, start_desk: Callable[..., Desk]
) -> None:
    viewer = start_desk(db_url)
    writer = start_desk(db_url)  # a second broker on the same database
    opened = threading.Event()
    result: list[list[str]] = []
    thread = threading.Thread(
        target=lambda: result.append(_events(viewer, lambda s: "change" in s, opened))
    )
    thread.start()
    assert opened.wait(30), "no hello event"
    writer.send_ok(omi("LIVE^LARA", today())[0])
    thread.join(30)
    assert not thread.is_alive(), "no change event after the other process committed"
    assert result == [["hello", "change"]]
    partial = viewer.http.get("/ui/worklist?partial=1").text
    assert "LIVE, LARA" in partial and "<html" not in partial


def test_the_stream_ends_when_the_server_stops(start_desk: Callable[..., Desk]) -> None:
    desk = start_desk()
    opened = threading.Event()
    thread = threading.Thread(target=lambda: _events(desk, lambda s: False, opened))
    thread.start()
    assert opened.wait(30)
    desk.runtime.stop()
    thread.join(20)
    assert not thread.is_alive()


def test_open_streams_are_limited(
    start_desk: Callable[..., Desk], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhirmwl.web import feed

    monkeypatch.setattr(feed, "MAX_STREAMS", 1)
    desk = start_desk()
    opened = threading.Event()
    done = threading.Event()
    thread = threading.Thread(target=lambda: _events(desk, lambda s: done.is_set(), opened))
    thread.start()
    try:
        assert opened.wait(30)
        refused = desk.http.get("/ui/events")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    finally:
        done.set()
        desk.runtime.stop()
        thread.join(20)
    assert not thread.is_alive()
