"""What the desk login costs per page request: ``GET /ui/worklist?partial=1`` (the fragment an
open desk re-fetches after each change) on ``fhirmwl serve`` without authentication, then with
``--auth builtin`` and a logged-in user (the session row read and the remembered token on every
request). Also times one whole login (form, scrypt check, code, token, session). Prints
figures; asserts nothing.

    python bench/desk_session.py --n 1000
"""

from __future__ import annotations

import argparse
import html
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import Server, summary_ms

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _login(http: httpx.Client, base: str, name: str, password: str) -> None:
    form = http.get(f"{base}/ui/worklist", follow_redirects=True)
    fields = {k: html.unescape(v) for k, v in HIDDEN.findall(form.text)}
    fields.update(username=name, password=password)
    page = http.post(str(form.url.copy_with(query=None)), data=fields, follow_redirects=True)
    assert page.status_code == 200, page.status_code


def _timed(http: httpx.Client, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = http.get(path)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for auth in ("off", "builtin"):
            db = f"sqlite:///{Path(tmp) / f'{auth}.db'}"
            extra = ["--auth", "builtin"] if auth == "builtin" else []
            if auth == "builtin":
                cli = [sys.executable, "-m", "fhirmwl.cli", "user", "add", "bench", "--db", db]
                cli += ["--scope", "user/*.rs", "--password-stdin"]
                subprocess.run(cli, input="bench-password\n", text=True, check=True)
            server = Server(db, "--no-mllp", "--no-dicom", *extra)
            base = f"http://127.0.0.1:{server.port}"
            try:
                with httpx.Client(base_url=base, timeout=60) as http:
                    if auth == "builtin":
                        logins = []
                        for _ in range(5):
                            http.cookies.clear()
                            start = time.perf_counter()
                            _login(http, base, "bench", "bench-password")
                            logins.append(time.perf_counter() - start)
                        print(f"login (5 runs)              {summary_ms(logins)}")
                    _timed(http, "/ui/worklist?partial=1", 50)  # warm-up
                    times = _timed(http, "/ui/worklist?partial=1", args.n)
                    print(f"partial worklist, auth {auth:7} {summary_ms(times)}")
            finally:
                server.stop()


if __name__ == "__main__":
    main()
