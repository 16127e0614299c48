"""How the desk finds an external server's authorization and token endpoints: a small loopback
HTTP server publishes metadata at one of the three places the desk looks, in order; explicit
settings win without any request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from fhirmwl.config import load_settings
from fhirmwl.security.access import Unauthorized
from fhirmwl.web.login import DeskLogin


class Metadata:
    def __init__(self) -> None:
        self.documents: dict[str, dict[str, str]] = {}
        self.asked: list[str] = []


@pytest.fixture
def idp() -> Iterator[tuple[str, Metadata]]:
    meta = Metadata()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            meta.asked.append(self.path)
            document = meta.documents.get(self.path)
            body = json.dumps(document).encode() if document else b"{}"
            self.send_response(200 if document else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", meta
    server.shutdown()
    server.server_close()
    thread.join()


def _desk(base: str, **settings: Any) -> DeskLogin:
    loaded = load_settings(
        None,
        auth_jwks=f"{base}/certs",
        auth_issuer=f"{base}/realms/imaging",
        auth_audience=f"{base}/fhir",
        **settings,
    )
    services = SimpleNamespace(settings=loaded, auth=(None, None), store=SimpleNamespace(db=None))
    return DeskLogin(services)


ENDPOINTS = {"authorization_endpoint": "https://idp/authorize", "token_endpoint": "https://idp/t"}


@pytest.mark.parametrize(
    ("path", "tries"),
    [
        ("/realms/imaging/.well-known/openid-configuration", 1),
        ("/realms/imaging/.well-known/oauth-authorization-server", 2),
        ("/fhir/.well-known/smart-configuration", 3),
    ],
)
def test_endpoints_are_discovered_in_order(
    idp: tuple[str, Metadata], path: str, tries: int
) -> None:
    base, meta = idp
    meta.documents[path] = ENDPOINTS
    desk = _desk(base)
    assert desk.endpoints() == ("https://idp/authorize", "https://idp/t")
    assert len(meta.asked) == tries and meta.asked[-1] == path
    desk.endpoints()
    assert len(meta.asked) == tries  # found once, kept


def test_settings_win_and_nothing_found_is_an_error(idp: tuple[str, Metadata]) -> None:
    base, meta = idp
    explicit = _desk(base, auth_authorize_url="https://a/auth", auth_token_url="https://a/token")
    assert explicit.endpoints() == ("https://a/auth", "https://a/token")
    assert meta.asked == []
    with pytest.raises(Unauthorized, match="auth_authorize_url"):
        _desk(base).endpoints()
    assert len(meta.asked) == 3
