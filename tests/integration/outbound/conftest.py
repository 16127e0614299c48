"""An MLLP receiver on loopback (a real TCP server) standing in for a PACS or a RIS."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from fhirmwl.hl7v2.message import parse_message
from fhirmwl.mllp.framing import Frame, FrameDecoder, frame
from tests.conftest import free_port
from tests.integration.orders.conftest import catalogue_file

__all__ = ["Receiver", "catalogue_file", "receiver"]


class Receiver:
    """Records every framed message and answers an original-mode ACK (``answer``: AA/AE/AR)."""

    def __init__(
        self,
        port: int | None = None,
        answer: str = "AA",
        delay: float = 0.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.port = port or free_port()
        self.answer, self.delay, self.tls = answer, delay, tls
        self.received: list[str] = []
        self.peers: list[str] = []  # TLS: the subject of each verified client certificate
        self.server: socket.socket | None = None
        self.stopping = threading.Event()

    def start(self) -> Receiver:
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self.server is not None
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client refused our certificate (or sent none we accept)
                conn.close()
                return
            cert = conn.getpeercert()
            if cert:
                self.peers.append(str(dict(x[0] for x in cert["subject"]).get("commonName")))
        decoder = FrameDecoder()
        with conn:
            conn.settimeout(0.2)
            while not self.stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                for event in decoder.feed(data):
                    if isinstance(event, Frame):
                        self._reply(conn, event.payload.decode("utf-8"))

    def _reply(self, conn: socket.socket, text: str) -> None:
        if self.delay:
            time.sleep(self.delay)
        control = parse_message(text.encode("utf-8")).control_id
        self.received.append(text)
        ack = (
            f"MSH|^~\\&|PACS||FHIRMWL||20300101000000||ACK^O23^ACK|A{control}|P|2.5.1\r"
            f"MSA|{self.answer}|{control}|{'ok' if self.answer == 'AA' else 'refused by test'}\r"
        )
        conn.sendall(frame(ack.encode("utf-8")))

    def messages(self) -> list[list[list[str]]]:
        """Each message as segments of fields."""
        return [[seg.split("|") for seg in m.split("\r") if seg] for m in self.received]

    def wait_for(self, count: int, timeout: float = 20) -> list[list[list[str]]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received) < count:
            time.sleep(0.05)
        return self.messages()

    def stop(self) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def orc(message: list[list[str]]) -> list[tuple[str, str]]:
    """(ORC-1, ORC-5) of each ORC segment."""
    return [(s[1], s[5]) for s in message if s[0] == "ORC"]


def segment(message: list[list[str]], name: str) -> list[str]:
    return next(s for s in message if s[0] == name)
