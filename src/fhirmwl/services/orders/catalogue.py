"""The procedure catalogue: how the broker schedules a Requested Procedure nobody scheduled.

The guide leaves scheduling to the MWL service: a RIS may send an order with Requested
Procedures but no Scheduled Procedure Steps (Tasks). The catalogue says, per procedure code,
which modality performs it, on which station(s) (AE titles, directly or via a station group),
for how long, with which protocol codes and SPS Description. It is a TOML or JSON file::

    [stations.CT1]            # AE title
    name = "CT Room 1"        # Scheduled Station Name (optional)
    [groups]
    ct = ["CT1", "CT2"]
    [procedures."72254-7"]    # RP code (any system, or "system|code")
    modality = "CT"
    group = "ct"              # or stations = ["CT1"]
    duration = 30             # minutes
    description = "CT abdomen/pelvis with contrast"
    protocol = [{ system = "http://loinc.org", code = "72254-7", display = "..." }]

An empty catalogue is allowed: then every order must carry its own Tasks.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirmwl.errors import BadRequest

MODALITIES = frozenset(
    [
        "AR",
        "AS",
        "ASMT",
        "AU",
        "BDUS",
        "BI",
        "BMD",
        "CD",
        "CF",
        "CP",
        "CR",
        "CS",
        "CT",
        "DD",
        "DF",
        "DG",
        "DM",
        "DOC",
        "DS",
        "DX",
        "EC",
        "ECG",
        "EPS",
        "ES",
        "FA",
        "FID",
        "FS",
        "GM",
        "HC",
        "HD",
        "IO",
        "IOL",
        "IVOCT",
        "IVUS",
        "KER",
        "KO",
        "LEN",
        "LP",
        "LS",
        "MA",
        "MG",
        "MR",
        "MS",
        "NM",
        "OAM",
        "OCT",
        "OP",
        "OPM",
        "OPR",
        "OPT",
        "OPV",
        "OSS",
        "OT",
        "PLAN",
        "PR",
        "PT",
        "PX",
        "REG",
        "RESP",
        "RF",
        "RG",
        "RT",
        "RTDOSE",
        "RTIMAGE",
        "RTPLAN",
        "RTRECORD",
        "RTSTRUCT",
        "RWV",
        "SEG",
        "SM",
        "SMR",
        "SR",
        "SRF",
        "STAIN",
        "TG",
        "US",
        "VA",
        "VF",
        "XA",
        "XC",
    ]
)


@dataclass(frozen=True)
class Station:
    ae_title: str
    name: str = ""


@dataclass(frozen=True)
class Procedure:
    code: str
    modality: str
    stations: tuple[str, ...]
    duration: int | None = None
    description: str = ""
    protocol: tuple[dict[str, str], ...] = ()
    system: str = ""


@dataclass
class Catalogue:
    procedures: dict[str, Procedure] = field(default_factory=dict)
    stations: dict[str, Station] = field(default_factory=dict)
    source: str = "(empty catalogue)"

    def lookup(self, codings: list[dict[str, Any]]) -> Procedure | None:
        """The entry for the first coding found, by ``system|code`` first, then bare code."""
        for coding in codings:
            code, system = coding.get("code"), coding.get("system") or ""
            if not code:
                continue
            found = self.procedures.get(f"{system}|{code}") or self.procedures.get(code)
            if found and (not found.system or found.system == system):
                return found
        return None

    def station(self, ae_title: str) -> Station:
        return self.stations.get(ae_title) or Station(ae_title)


def _procedure(key: str, raw: dict[str, Any], groups: dict[str, list[str]]) -> Procedure:
    where = f"procedures.{key}"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be a table/object")
    modality = str(raw.get("modality", "")).upper()
    if modality not in MODALITIES:
        raise BadRequest(f"{where}.modality {modality!r} is not a DICOM modality (CID 33)")
    stations = list(raw.get("stations") or [])
    if raw.get("group"):
        if raw["group"] not in groups:
            raise BadRequest(f"{where}.group {raw['group']!r} is not defined under [groups]")
        stations += groups[raw["group"]]
    if not stations or not all(isinstance(s, str) and 0 < len(s) <= 16 for s in stations):
        raise BadRequest(f"{where} needs stations (AE titles of 1-16 characters) or a group")
    duration = raw.get("duration")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        raise BadRequest(f"{where}.duration must be a positive number of minutes")
    protocol = raw.get("protocol") or []
    if not isinstance(protocol, list) or not all(
        isinstance(p, dict) and p.get("code") for p in protocol
    ):
        raise BadRequest(f"{where}.protocol must be a list of codings with a code")
    system, _, code = key.rpartition("|")
    return Procedure(
        code=code,
        modality=modality,
        stations=tuple(dict.fromkeys(stations)),
        duration=duration,
        description=str(raw.get("description", "")),
        protocol=tuple({k: str(v) for k, v in p.items()} for p in protocol),
        system=system or str(raw.get("system", "")),
    )


def parse_catalogue(data: dict[str, Any], source: str = "(inline)") -> Catalogue:
    """Check and build a catalogue from its parsed TOML/JSON; BadRequest names the first error."""
    stations_raw = data.get("stations") or {}
    groups = data.get("groups") or {}
    if not isinstance(stations_raw, dict) or not isinstance(groups, dict):
        raise BadRequest("[stations] and [groups] must be tables/objects")
    stations = {ae: Station(ae, str((v or {}).get("name", ""))) for ae, v in stations_raw.items()}
    for name, members in groups.items():
        if not isinstance(members, list) or not members:
            raise BadRequest(f"groups.{name} must be a non-empty list of AE titles")
    procs = data.get("procedures") or {}
    if not isinstance(procs, dict):
        raise BadRequest("[procedures] must be a table/object keyed by procedure code")
    procedures = {key: _procedure(key, raw, groups) for key, raw in procs.items()}
    return Catalogue(procedures, stations, source)


def load_catalogue(path: str | Path | None) -> Catalogue:
    """Read the catalogue file (``.toml`` or ``.json``); no path gives an empty catalogue."""
    if not path:
        return Catalogue()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BadRequest(f"procedure catalogue {p} cannot be read: {exc.strerror}") from None
    try:
        data = json.loads(raw) if p.suffix.lower() == ".json" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"procedure catalogue {p} is not valid {p.suffix[1:]}: {exc}") from None
    return parse_catalogue(data, str(p))
