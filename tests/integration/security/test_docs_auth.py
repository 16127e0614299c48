"""Every command and TOML example in docs/auth.md, run as written (bash, the installed
``fhirmwl`` script, curl) against a ``fhirmwl serve`` subprocess. Only the port (8080 → a free
one) and the database (``FHIRMWL_DB``) differ; the other listeners are switched off by env."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fhirmwl.config import load_settings
from fhirmwl.runtime import Runtime
from tests.conftest import REPO, free_port
from tests.integration.orders.conftest import CATALOGUE, order_bundle
from tests.integration.security.keys import Signer, access_claims
from tests.integration.web.test_desk_login import open_form, submit

DOC = REPO / "docs" / "auth.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=f"{bindir}:{os.environ.get('PATH', '')}",
        FHIRMWL_DB=f"sqlite:///{tmp_path / 'broker.db'}",
        FHIRMWL_HTTP_PORT=str(port),
        FHIRMWL_MLLP="false",
        FHIRMWL_DICOM="false",
        FHIRMWL_CATALOGUE=str(tmp_path / "catalogue.toml"),
    )


@contextmanager
def _serve(line: str, env: dict[str, str], cwd: Path, port: int) -> Iterator[None]:
    assert line.startswith("fhirmwl serve")
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "fhirmwl serve exited"
            assert time.monotonic() < deadline, "fhirmwl serve did not come up"
            time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _prepare(tmp_path: Path) -> int:
    (tmp_path / "catalogue.toml").write_text(CATALOGUE)
    (tmp_path / "order.json").write_text(json.dumps(order_bundle()))
    return free_port()


def test_toml_example(tmp_path: Path) -> None:
    toml = _blocks("toml")[0]
    path = tmp_path / "fhirmwl.toml"
    path.write_text(toml)
    settings = load_settings(path)
    assert (settings.auth, settings.auth_token_lifetime) == ("builtin", 300)


def test_builtin_walkthrough(tmp_path: Path) -> None:
    walkthrough = _blocks("sh")[0].replace("8080", str(port := _prepare(tmp_path)))
    serve, *rest = walkthrough.strip().splitlines()
    env = _env(tmp_path, port)
    with _serve(serve, env, tmp_path, port):
        base = f"http://127.0.0.1:{port}/fhir"
        assert httpx.get(f"{base}/Task").status_code == 401
        script = "set -euo pipefail\n" + "\n".join(rest)
        done = subprocess.run(
            ["bash", "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "private key: keys/ris-key.pem" in out
    assert "registered client ris (scope: system/*.cruds)" in out
    assert re.search(r"^ris\tsystem/\*\.cruds\t", out, flags=re.M)
    assert '"resourceType": "Bundle"' in out  # the OrderBundle of order create
    tasks, _ = json.JSONDecoder().raw_decode(out[out.index('{"resourceType":"Bundle"') :])
    assert tasks["total"] == 1  # curl with the token sees the order's Task
    assert out.rstrip().endswith("removed client ris")
    assert oct((tmp_path / "keys" / "ris-key.pem").stat().st_mode & 0o777) == "0o600"


def test_external_issuer_example(tmp_path: Path) -> None:
    port = _prepare(tmp_path)
    (line,) = _blocks("sh")[1].strip().splitlines()
    issuer = re.search(r"--auth-issuer (\S+)", line)
    assert issuer is not None
    idp = Signer(tmp_path / "idp-jwks.json")
    idp.add_key("k1", "ES256")
    with _serve(line, _env(tmp_path, port), tmp_path, port):
        base = f"http://127.0.0.1:{port}/fhir"
        claims = {**access_claims("fhirmwl", "system/Task.rs"), "iss": issuer.group(1)}
        good = idp.sign(claims, "k1")
        assert httpx.get(f"{base}/Task", headers={"Authorization": f"Bearer {good}"}).is_success
        wrong_aud = idp.sign({**claims, "aud": base}, "k1")
        refused = httpx.get(f"{base}/Task", headers={"Authorization": f"Bearer {wrong_aud}"})
        assert refused.status_code == 401


def test_desk_users_example(tmp_path: Path) -> None:
    """``fhirmwl user add|list|remove|set`` as written, and the two users logging in at the desk of
    the ``serve`` line."""
    port = _prepare(tmp_path)
    lines = _blocks("sh")[2].strip().splitlines()
    serve = next(i for i, line in enumerate(lines) if line.startswith("fhirmwl serve"))
    env = _env(tmp_path, port)

    def run(script: list[str]) -> str:
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + "\n".join(script)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    before = run(lines[:serve])
    assert "added user alice (scope: user/*.rs)" in before
    assert "added user bob (scope: user/*.cruds)" in before
    assert re.search(r"^alice\tuser/\*\.rs\t", before, flags=re.M)
    base = f"http://127.0.0.1:{port}"
    with _serve(lines[serve], env, tmp_path, port):
        for name, password in (("alice", "reads-the-worklist"), ("bob", "changes-the-orders")):
            with httpx.Client(timeout=30) as http:
                page = submit(http, open_form(http, f"{base}/ui/worklist"), name, password)
                assert page.status_code == 200 and f">{name}</span>" in page.text
        assert run(lines[serve + 1 :]).strip().splitlines() == [
            "removed user alice",
            "changed the password and scope of user bob (scope: user/*.rs)",
        ]
        with httpx.Client(timeout=30) as http:
            refused = submit(http, open_form(http, f"{base}/ui/worklist"), "alice", "x" * 8)
            assert refused.status_code == 401
        with httpx.Client(timeout=30) as http:
            old = submit(http, open_form(http, f"{base}/ui/worklist"), "bob", "changes-the-orders")
            assert old.status_code == 401
        with httpx.Client(timeout=30) as http:
            page = submit(
                http, open_form(http, f"{base}/ui/worklist"), "bob", "reads-only-from-now"
            )
            assert page.status_code == 200 and ">bob</span>" in page.text
            assert '<span class="who" title="user/*.rs">bob</span>' in page.text


def test_central_broker_examples(tmp_path: Path) -> None:
    """The two TOML files of "another fhirmwl broker as the server", with the example host names
    turned into loopback ports: a user of the central broker logs in at the other one's desk."""
    central, satellite = _blocks("toml")[1:3]
    ports = {"mwl-central": free_port(), "mwl-ct": free_port()}
    runtimes = []
    try:
        for name, text in (("mwl-ct", satellite), ("mwl-central", central)):
            for host, port in ports.items():
                text = text.replace(f"https://{host}.example.org:8443", f"http://127.0.0.1:{port}")
            path = tmp_path / f"{name}.toml"
            path.write_text(text)
            settings = load_settings(
                path,
                db=f"sqlite:///{tmp_path / name}.db",
                http_port=ports[name],
                mllp=False,
                dicom=False,
            )
            runtime = Runtime(settings)
            runtime.start()
            runtimes.append(runtime)
        from fhirmwl.security import users

        users.add_user(runtimes[1].services.store.db, "carol", "carol-password", "user/*.cruds")
        ct = f"http://127.0.0.1:{ports['mwl-ct']}"
        with httpx.Client(timeout=30) as http:
            form = open_form(http, f"{ct}/ui/worklist")
            assert str(form.url).startswith(f"http://127.0.0.1:{ports['mwl-central']}/auth/")
            page = submit(http, form, "carol", "carol-password")
            assert page.status_code == 200 and str(page.url) == f"{ct}/ui/worklist"
            assert http.get(f"{ct}/ui/messages").status_code == 403  # not asked for: *.s
    finally:
        for runtime in reversed(runtimes):
            runtime.stop()
