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
from tests.conftest import REPO, free_port
from tests.integration.orders.conftest import CATALOGUE, order_bundle
from tests.integration.security.keys import Signer, access_claims

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
    (toml,) = _blocks("toml")
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
