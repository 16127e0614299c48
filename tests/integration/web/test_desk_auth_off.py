"""With authentication on, the desk (which has no login yet) is not served at all."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import running_broker


def test_desk_not_served_while_authentication_is_on(tmp_path: Path) -> None:
    with running_broker(f"sqlite:///{tmp_path / 'd.db'}", auth="builtin") as rt:
        base = f"http://127.0.0.1:{rt.settings.http_port}"
        with httpx.Client(base_url=base) as http:
            assert http.get("/ui/worklist").status_code == 404
            assert http.get("/", follow_redirects=False).status_code == 404
            assert http.get("/fhir/Patient").status_code == 401  # the API stays protected
    with running_broker(f"sqlite:///{tmp_path / 'e.db'}") as rt:
        base = f"http://127.0.0.1:{rt.settings.http_port}"
        assert httpx.get(f"{base}/ui/worklist").status_code == 200
