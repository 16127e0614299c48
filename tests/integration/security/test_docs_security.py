"""The commands and the TOML example of docs/security.md, run as written (ports aside): a real
``fhirmwl serve`` process with mutual TLS, then curl, ``v2 send``, ``order create``, DCMTK."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhirmwl.config import load_settings
from fhirmwl.security.posture import security_posture, startup_problems
from fhirmwl.security.tls import client_context
from fhirmwl.services.worklist.listener import access_policy
from tests.conftest import free_port
from tests.integration.mllp_service.messages import orm
from tests.integration.orders.conftest import CATALOGUE, order_bundle

DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"
REPO = DOC.parents[1]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def _commands() -> list[list[str]]:
    """Every command of the ```sh blocks, continuation lines joined, comments dropped."""
    out = []
    for block in _blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line:
                out.append(line.split())
    return out


def test_toml_example(tmp_path: Path, certs: Path) -> None:
    (toml,) = _blocks("toml")
    path = tmp_path / "fhirmwl.toml"
    path.write_text(toml, encoding="utf-8")
    settings = load_settings(path)
    assert settings.host == "0.0.0.0" and settings.tls_require_client_cert
    assert settings.dicom_max_associations_per_peer == 4
    assert settings.subscription_allow == "10.20.0.0/16"
    (rule,) = access_policy(settings).peers
    assert (rule.ae_title, rule.cert_subject) == ("CT01", "CN=ct01")
    assert rule.admits("CT01", "127.0.0.1", "CN=ct01")
    assert not rule.admits("CT01", "127.0.0.2", "CN=ct01")
    assert all(p.safe for p in security_posture(settings))  # TLS with client certificates
    assert "cannot load TLS" in startup_problems(settings)[0]  # /etc/fhirmwl/… is not here
    settings.tls_cert, settings.tls_key = str(certs / "server.pem"), str(certs / "server-key.pem")
    settings.tls_client_ca = str(certs / "ca.pem")
    assert startup_problems(settings) == []


def _with_ports(args: list[str], ports: dict[str, int]) -> list[str]:
    """The documented command with the default ports replaced by the test's free ports."""
    text = " ".join(args)
    for default, name in (("8080", "http"), ("2575", "mllp"), ("11112", "dicom")):
        text = text.replace(default, str(ports[name]))
    return text.split()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, int]]:
    commands = _commands()
    fhirmwl = [c for c in commands if c[0] == "fhirmwl"]
    assert fhirmwl[0][:2] == ["fhirmwl", "dev-certs"] and fhirmwl[1][:2] == ["fhirmwl", "serve"]
    python = [sys.executable, "-m", "fhirmwl.cli"]
    subprocess.run([*python, *fhirmwl[0][1:]], cwd=tmp_path, check=True, timeout=60)
    ports = {"http": free_port(), "mllp": free_port(), "dicom": free_port()}
    (tmp_path / "catalogue.toml").write_text(CATALOGUE)
    env = dict(os.environ, FHIRMWL_CATALOGUE=str(tmp_path / "catalogue.toml"))
    env["FHIRMWL_DB"] = f"sqlite:///{tmp_path / 'docs.db'}"
    env.update({f"FHIRMWL_{k.upper()}_PORT": str(v) for k, v in ports.items()})
    proc = subprocess.Popen(
        [*python, *fhirmwl[1][1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    context = client_context(
        str(tmp_path / "certs/ca.pem"),
        str(tmp_path / "certs/client.pem"),
        str(tmp_path / "certs/client-key.pem"),
    )
    url = f"https://127.0.0.1:{ports['http']}/fhir/metadata"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url, verify=context, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        yield ports
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.interop
def test_documented_commands(served: dict[str, int], tmp_path: Path) -> None:
    if shutil.which("echoscu") is None or shutil.which("curl") is None:
        pytest.fail("DCMTK and curl are needed (scripts/install-test-deps.sh)")
    (tmp_path / "message.hl7").write_bytes(orm("NW", "DOC1", "C-DOC-1"))
    (tmp_path / "order.json").write_text(json.dumps(order_bundle()))
    ran = set()
    for args in _commands()[2:]:
        args = _with_ports(args, served)
        if args[0] == "fhirmwl":
            args = [sys.executable, "-m", "fhirmwl.cli", *args[1:]]
        result = subprocess.run(args, cwd=tmp_path, capture_output=True, timeout=120)
        output = (result.stdout + result.stderr).decode(errors="replace")
        assert result.returncode == 0, f"{args}: {output}"
        ran.add(args[0] if "fhirmwl.cli" not in args else args[3])
        if args[0] == "curl":
            assert json.loads(result.stdout)["resourceType"] == "CapabilityStatement"
    assert ran == {"curl", "v2", "order", "echoscu", "findscu"}
    # the client certificate is what lets them in
    bare = subprocess.run(
        ["curl", "--cacert", "certs/ca.pem", f"https://127.0.0.1:{served['http']}/fhir/metadata"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    assert bare.returncode != 0
