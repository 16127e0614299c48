"""Configuration loading: layouts, precedence and sources, and errors that name the problem."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhirmwl.config import ConfigError, Settings, load_settings, load_sources
from fhirmwl.demo import demo_bundle, demo_start


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("FHIRMWL_") and not key.startswith(("FHIRMWL_TEST", "FHIRMWL_REQ")):
            monkeypatch.delenv(key)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text,named",
    [
        ("[fhirmwl]\nhttp_prot = 1\n", "'fhirmwl.http_prot' (did you mean 'fhirmwl.http_port'?)"),
        ("htp_port = 1\n", "'htp_port' (did you mean 'http_port'?)"),
        ("[fhirmwl]\n[dicom_charset]\nA = 'B'\n", "section 'dicom_charset'"),
        ("[[station_rule]]\nae_title = 'X'\n", "section 'station_rule'"),
        ("[[station_rules]]\nae_title = 'X'\nmodalty = 'CT'\n", "'modalty'"),
        ("[orders]\nslot_minute = 5\n", "'slot_minute'"),
        ("[fhirmwl.v2]\ndefault_station = 'X'\n", "'default_station'"),
        ("http_port = 'eighty'\n", "http_port must be an integer"),
        ("mllp = 'perhaps'\n", "mllp must be true or false"),
        ("ae_title = 12\n", "ae_title must be a string"),
        ("http_port = 1\n[fhirmwl]\nhttp_port = 2\n", "http_port is given twice"),
        ("[dicom_charsets]\n[fhirmwl.dicom_charsets]\n", "[dicom_charsets] is given twice"),
        ("station_rules = { ae_title = 'X' }\n", "array of tables"),
        ("timezone = 'Mars/Olympus'\n", "'Mars/Olympus' is not an IANA time zone"),
        ("validation = 'sometimes'\n", "validation must be strict, lenient or off"),
        ("[fhirmwl\n", "not valid TOML"),
    ],
)
def test_bad_configuration_is_an_error_naming_it(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(_file(tmp_path, text))
    assert named in err.value.message


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(tmp_path / "absent.toml")


def test_precedence_and_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "[fhirmwl]\nhttp-port = 9000\nmllp_port = 9001\ndicom_port = 9002\n")
    monkeypatch.setenv("FHIRMWL_MLLP_PORT", "9101")
    monkeypatch.setenv("FHIRMWL_DICOM_PORT", "9102")
    settings, sources = load_sources(path, dicom_port=9202, host=None)
    assert (settings.http_port, settings.mllp_port, settings.dicom_port) == (9000, 9101, 9202)
    assert sources["http_port"] == "file"
    assert sources["mllp_port"] == "env"
    assert sources["dicom_port"] == "cli"
    assert sources["host"] == "default" and settings.host == "127.0.0.1"
    assert "[v2]" not in sources  # no section given: nothing claims to come from the file


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FHIRMWL_CONFIG", str(_file(tmp_path, "[notify]\nmax_events = 7\n")))
    assert load_settings().extra["notify"] == {"max_events": 7}


def test_every_settings_field_is_an_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader has no list of its own: a field added to Settings is configurable at once."""
    samples = {"int": "7", "bool": "off", "str": "x", "float": "2.5"}
    expected: dict[str, Any] = {"int": 7, "bool": False, "str": "x", "float": 2.5}
    samples["list[dict[str, Any]]"], expected["list[dict[str, Any]]"] = "[]", []
    names = [f for f in fields(Settings) if f.name not in ("extra", "validation", "timezone")]
    for f in names:
        monkeypatch.setenv(f"FHIRMWL_{f.name.upper()}", samples[str(f.type)])
    settings, sources = load_sources()
    for f in names:
        assert getattr(settings, f.name) == expected[str(f.type)], f.name
        assert sources[f.name] == "env"


def test_unknown_command_line_setting() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'http_prot'"):
        load_settings(None, http_prot=1)


def test_serve_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    text = "[fhirmwl]\ndb = 'sqlite:///x.db'\n[dicom_charset]\nOLDCT = 'ISO_IR 100'\n"
    path = _file(tmp_path, text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRMWL_")}
    out = subprocess.run(
        [sys.executable, "-m", "fhirmwl.cli", "serve", "--config", str(path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "configuration error" in out.stderr and "'dicom_charset'" in out.stderr
    assert not (tmp_path / "x.db").exists()  # nothing started


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Pacific/Auckland", "America/Los_Angeles"])
def test_demo_schedules_today_in_the_configured_time_zone(tz: str) -> None:
    now = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)  # 22:00 UTC put 8 of 12 orders on tomorrow
    today = now.astimezone(ZoneInfo(tz)).date()
    start = demo_start(tz, now)
    for n in range(12):
        bundle = demo_bundle(n, start)
        [task] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Task"]
        when = datetime.fromisoformat(task["requestedPeriod"]["start"].replace("Z", "+00:00"))
        assert when.astimezone(ZoneInfo(tz)).date() == today, (n, when)
    assert start.astimezone(UTC) - now < timedelta(days=1)


def test_a_misspelt_environment_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FHIRMWL_HTTP_PROT", "9999")
    monkeypatch.setenv("FHIRMWL_TOKEN", "not a setting but read by the CLI client")
    with caplog.at_level("WARNING", logger="fhirmwl.config"):
        settings = load_settings()
    assert settings.http_port == Settings().http_port  # ignored, as before
    warned = [r.getMessage() for r in caplog.records if r.name == "fhirmwl.config"]
    assert warned == [
        "FHIRMWL_HTTP_PROT is not a setting and is ignored (did you mean FHIRMWL_HTTP_PORT?)"
    ]
    shown = subprocess.run(
        [sys.executable, "-m", "fhirmwl.cli", "config", "show"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    ).stdout
    assert "# warning: FHIRMWL_HTTP_PROT is not a setting" in shown
    assert "FHIRMWL_TOKEN" not in shown
