"""Every TOML example in README.md and docs/*.md loads, and its values arrive where they act.

A configuration example is loaded through ``load_sources`` from a real file and each key it
sets must come back as the effective value with source ``file``; a procedure catalogue example
(``[procedures.…]``) goes through the catalogue parser. The README example then runs a real
broker: an ORM over MLLP without a station gets the ``[[station_rules]]`` AE title, and a C-FIND
from the calling AE configured in ``[dicom_charsets]`` is answered in ISO_IR 100.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from fhirmwl.config import SECTIONS, load_settings, load_sources
from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from fhirmwl.services.orders.catalogue import parse_catalogue
from tests.conftest import REPO, free_port
from tests.integration.dicom.mwl_scu import associate, find
from tests.integration.mllp_service.messages import msa, orm

_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.S | re.M)


def toml_examples() -> list[tuple[str, str]]:
    out = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for n, match in enumerate(_BLOCK.finditer(doc.read_text(encoding="utf-8")), 1):
            out.append((f"{doc.relative_to(REPO)}#{n}", match.group(1)))
    return out


EXAMPLES = toml_examples()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("FHIRMWL_") and not key.startswith(("FHIRMWL_TEST", "FHIRMWL_REQ")):
            monkeypatch.delenv(key)


def _expected(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat settings, sections) a file states, whatever its layout."""
    flat: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    for layer in (data, data.get("fhirmwl") or {}):
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key in SECTIONS:
                sections[key] = value
            elif key != "fhirmwl":
                flat[key] = value
    return flat, sections


def test_the_docs_have_examples() -> None:
    names = [name for name, _ in EXAMPLES]
    assert any(n.startswith("README.md") for n in names)
    assert sum(n.startswith("docs/configuration.md") for n in names) >= 4


@pytest.mark.parametrize("name,text", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_example_loads_and_values_arrive(name: str, text: str, tmp_path: Path) -> None:
    data = tomllib.loads(text)
    if "procedures" in data:  # a procedure catalogue (docs/workflow.md), not a config file
        catalogue = parse_catalogue(data, name)
        assert catalogue.procedures
        return
    path = tmp_path / "fhirmwl.toml"
    path.write_text(text, encoding="utf-8")
    settings, sources = load_sources(path)
    flat, sections = _expected(data)
    assert flat or sections, name
    for key, value in flat.items():
        assert getattr(settings, key) == value, key
        assert sources[key] == "file"
    for key, value in sections.items():
        assert settings.extra[key] == value, key
        assert sources[f"[{key}]"] == "file"


def test_config_show_command_from_docs(tmp_path: Path) -> None:
    """``FHIRMWL_HTTP_PORT=8081 fhirmwl config show --config fhirmwl.toml`` (docs/configuration)."""
    readme = next(text for name, text in EXAMPLES if name.startswith("README.md"))
    (tmp_path / "fhirmwl.toml").write_text(readme.replace("postgres@", "fhirmwl:secret@"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRMWL_")}
    env["FHIRMWL_HTTP_PORT"] = "8081"
    cmd = [sys.executable, "-m", "fhirmwl.cli", "config", "show", "--config", "fhirmwl.toml"]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert "http_port = 8081  # env" in lines
    assert 'timezone = "Europe/Berlin"  # file' in lines
    assert 'host = "127.0.0.1"  # default' in lines
    assert "[dicom_charsets]  # file" in lines
    assert "secret" not in out.stdout and "fhirmwl:***@" in out.stdout
    again = tmp_path / "shown.toml"  # the output is a configuration file itself
    again.write_text(out.stdout)
    reloaded = load_settings(again)
    assert reloaded.http_port == 8081
    assert reloaded.extra["station_rules"] == [{"modality": "CT", "ae_title": "CT01"}]


@pytest.fixture
def readme_broker(tmp_path: Path) -> Iterator[Runtime]:
    readme = next(text for name, text in EXAMPLES if name.startswith("README.md"))
    path = tmp_path / "fhirmwl.toml"
    path.write_text(readme, encoding="utf-8")
    settings = load_settings(
        path,
        db=f"sqlite:///{tmp_path / 'readme.db'}",
        http_port=free_port(),
        mllp_port=free_port(),
        dicom_port=free_port(),
    )
    runtime = Runtime(settings)
    runtime.start()
    yield runtime
    runtime.stop()


def _query() -> Dataset:
    sps = Dataset()
    sps.ScheduledStationAETitle = ""
    sps.Modality = "CT"
    ds = Dataset()
    ds.PatientName = ""
    ds.AccessionNumber = "ACCCFG1"
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def test_readme_example_charset_and_station_rule_arrive(readme_broker: Runtime) -> None:
    settings = readme_broker.settings
    assert settings.timezone == "Europe/Berlin"
    [ack] = send_messages("127.0.0.1", settings.mllp_port, [orm("NW", "CFG1", "CFGC1")])
    assert msa(ack)[0] == "AA"
    for calling, charset in (("OLDCT", "ISO_IR 100"), ("CT01", "ISO_IR 192")):
        assoc = associate(settings.dicom_port, calling)
        assert assoc.is_established
        try:
            results, final = find(assoc, _query())
        finally:
            assoc.release()
        assert final.Status == 0x0000
        assert len(results) == 1, calling
        assert results[0].SpecificCharacterSet == charset
        sps = results[0].ScheduledProcedureStepSequence[0]
        assert sps.ScheduledStationAETitle == "CT01"  # [[station_rules]] modality CT
    refused = associate(settings.dicom_port, "NOTLISTED")  # dicom_allowed_aets arrived too
    assert not refused.is_established
