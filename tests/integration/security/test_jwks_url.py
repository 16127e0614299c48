"""``JwksSource`` on a JWKS URL served over loopback HTTP: the cache, the refetch on an unknown
``kid`` (rotation), its rate limit, and an issuer that goes down."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fhirmwl.security.tokens import InvalidToken, JwksSource
from tests.integration.security.keys import Signer


class JwksServer:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.fetches = 0
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                outer.fetches += 1
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = outer.signer.path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/certs"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[JwksServer]:
    signer = Signer(tmp_path / "jwks.json")
    signer.add_key("k1", "RS256")
    server = JwksServer(signer)
    yield server
    server.close()


def test_cache_and_refetch_on_unknown_kid(served: JwksServer) -> None:
    source = JwksSource(served.url, min_refetch=0)
    assert source.key("k1").key_id == "k1"
    assert source.key("k1") is not None and served.fetches == 1  # cached
    served.signer.add_key("k2", "ES256")  # rotation: a new key is published
    assert source.key("k2").key_id == "k2"
    assert served.fetches == 2


def test_unknown_kid_refetch_is_rate_limited(served: JwksServer) -> None:
    source = JwksSource(served.url, min_refetch=3600)
    source.key("k1")
    for _ in range(5):  # a flood of tokens with invented kids costs no fetches
        with pytest.raises(InvalidToken, match="not in the issuer's JWKS"):
            source.key("invented")
    assert served.fetches == 1


def test_issuer_down_keeps_known_keys(served: JwksServer) -> None:
    source = JwksSource(served.url, min_refetch=0, max_age=0)
    source.key("k1")
    served.down = True
    assert source.key("k1").key_id == "k1"  # max_age passed, refetch failed: old keys stay
    with pytest.raises(InvalidToken):
        source.key("k2")


def test_unreachable_jwks_is_a_clear_401(served: JwksServer) -> None:
    served.down = True
    with pytest.raises(InvalidToken, match="cannot load the issuer's JWKS"):
        JwksSource(served.url).key("k1")
