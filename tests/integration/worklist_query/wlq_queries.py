"""The query table of the consistency test: DICOM keys with C-FIND matching syntax, the expected
steps (computed independently from the generated data) and, where FHIR search can express it,
the equivalent Task search."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wlq_worklist import DCM, MRN, Step

SPS = "ScheduledProcedureStepSequence"
Pred = Callable[[Step], bool]


@dataclass(frozen=True)
class Case:
    id: str
    keys: dict[str, str]
    expect: Pred
    fhir: list[tuple[str, str]] | None = None
    extra: dict[str, str] = field(default_factory=dict)


def sps(**keys: str) -> dict[str, str]:
    return {f"{SPS}.{k}": v for k, v in keys.items()}


def _wild(pattern: str, value: str, fold: bool = False) -> bool:
    if fold:
        pattern, value = pattern.upper(), value.upper()
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def pn(pattern: str) -> Pred:
    return lambda s: _wild(pattern, s.name, fold=True)


def day(d: str) -> list[tuple[str, str]]:
    iso = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    nxt = f"{d[:4]}-{d[4:6]}-{int(d[6:]) + 1:02d}"
    return [("requested-period", f"ge{iso}T00:00:00Z"), ("requested-period", f"lt{nxt}T00:00:00Z")]


def _start(s: Step) -> str:
    return s.date + s.time


UIDS = ("2.25.990003", "2.25.990017", "2.25.990042")

CASES: list[Case] = [
    Case("universal", {}, lambda s: True, []),
    Case(
        "station-single",
        sps(ScheduledStationAETitle="CT01"),
        lambda s: s.station == "CT01",
        [("station-aet", "CT01")],
    ),
    Case(
        "station-wildcard-star",
        sps(ScheduledStationAETitle="CT*"),
        lambda s: s.station.startswith("CT"),
    ),
    Case(
        "station-wildcard-qmark", sps(ScheduledStationAETitle="?R01"), lambda s: s.station == "MR01"
    ),
    Case("station-case-sensitive", sps(ScheduledStationAETitle="ct01"), lambda s: False),
    Case("modality", sps(Modality="MR"), lambda s: s.modality == "MR", [("modality", f"{DCM}|MR")]),
    Case("modality-wildcard", sps(Modality="?T"), lambda s: s.modality == "CT"),
    Case(
        "date-single",
        sps(ScheduledProcedureStepStartDate="20240302"),
        lambda s: s.date == "20240302",
        day("20240302"),
    ),
    Case(
        "date-range",
        sps(ScheduledProcedureStepStartDate="20240301-20240302"),
        lambda s: s.date <= "20240302",
    ),
    Case(
        "date-open-low",
        sps(ScheduledProcedureStepStartDate="20240302-"),
        lambda s: s.date >= "20240302",
    ),
    Case(
        "date-open-high",
        sps(ScheduledProcedureStepStartDate="-20240301"),
        lambda s: s.date <= "20240301",
    ),
    Case(
        "time-range",
        sps(ScheduledProcedureStepStartTime="0800-0930"),
        lambda s: "080000" <= s.time <= "093000",
    ),
    Case(
        "time-single-by-meaning",
        sps(ScheduledProcedureStepStartTime="0800"),
        lambda s: s.time == "080000",
    ),
    Case(
        "date-time-combined",
        sps(
            ScheduledProcedureStepStartDate="20240301-20240302",
            ScheduledProcedureStepStartTime="1000-1200",
        ),
        lambda s: "20240301100000" <= _start(s) <= "20240302120000",
    ),
    Case(
        "date-single-time-range",
        sps(
            ScheduledProcedureStepStartDate="20240303", ScheduledProcedureStepStartTime="0900-1100"
        ),
        lambda s: s.date == "20240303" and "090000" <= s.time <= "110000",
    ),
    Case(
        "typical-station-day-modality",
        sps(
            ScheduledStationAETitle="CT02",
            ScheduledProcedureStepStartDate="20240301",
            Modality="CT",
        ),
        lambda s: s.station == "CT02" and s.date == "20240301",
        [("station-aet", "CT02"), ("modality", "CT"), *day("20240301")],
    ),
    Case(
        "sequence-conflict",
        sps(ScheduledStationAETitle="CT01", Modality="MR"),
        lambda s: False,
        [("station-aet", "CT01"), ("modality", "MR")],
    ),
    Case("name-exact", {"PatientName": "SMITH^JOHN"}, pn("SMITH^JOHN")),
    Case("name-case-insensitive", {"PatientName": "smith^john"}, pn("SMITH^JOHN")),
    Case("name-prefix", {"PatientName": "SM*"}, pn("SM*"), [("patient.family", "SM")]),
    Case("name-qmark", {"PatientName": "SM?TH*"}, pn("SM?TH*")),
    Case("name-contains", {"PatientName": "*ER*"}, pn("*ER*")),
    Case(
        "name-latin1-lower",
        {"PatientName": "müller*"},
        pn("MÜLLER*"),
        [("patient.family", "müller")],
    ),
    Case("name-latin1-accent", {"PatientName": "GARCÍA^JOSÉ"}, pn("GARCÍA^JOSÉ")),
    Case(
        "name-japanese-prefix", {"PatientName": "山田*"}, pn("山田*"), [("patient.family", "山田")]
    ),
    Case("name-japanese-exact", {"PatientName": "山本^花子"}, pn("山本^花子")),
    Case("name-single-star", {"PatientName": "*"}, lambda s: True),
    Case(
        "patient-id",
        {"PatientID": "PID003"},
        lambda s: s.patient_id == "PID003",
        [("patient.identifier", f"{MRN}|PID003")],
    ),
    Case("patient-id-none", {"PatientID": "NOPE"}, lambda s: False),
    Case(
        "birth-date-range",
        {"PatientBirthDate": "19500101-19551231"},
        lambda s: "19500101" <= s.birth_date <= "19551231",
    ),
    Case(
        "accession",
        {"AccessionNumber": "ACC0007"},
        lambda s: s.accession == "ACC0007",
        [("based-on:ServiceRequest.based-on:ServiceRequest.identifier", "ACC0007")],
    ),
    Case(
        "accession-wildcard",
        {"AccessionNumber": "ACC001?"},
        lambda s: _wild("ACC001?", s.accession),
    ),
    Case(
        "requested-procedure-id", {"RequestedProcedureID": "RP0042"}, lambda s: s.rp_id == "RP0042"
    ),
    Case("study-uid", {"StudyInstanceUID": UIDS[0]}, lambda s: s.study_uid == UIDS[0]),
    Case("study-uid-list", {"StudyInstanceUID": "\\".join(UIDS)}, lambda s: s.study_uid in UIDS),
    Case(
        "sps-id",
        sps(ScheduledProcedureStepID="SPS010"),
        lambda s: s.sps_id == "SPS010",
        [("identifier", "SPS010")],
    ),
    Case(
        "sps-id-wildcard",
        sps(ScheduledProcedureStepID="SPS00*"),
        lambda s: s.sps_id.startswith("SPS00"),
    ),
    Case("admission-id-value", {"AdmissionID": "V0001"}, lambda s: s.admission_id == "V0001"),
    Case(
        "admission-empty-fails-nonuniversal",
        {"AdmissionID": "V*", "PatientID": "PID000"},
        lambda s: s.patient_id == "PID000" and s.admission_id != "",
    ),
]

# Return keys every query asks for (zero length = universal), overlaid by the case's keys.
RETURN_KEYS: dict[str, str] = {
    "PatientName": "",
    "PatientID": "",
    "PatientBirthDate": "",
    "AccessionNumber": "",
    "RequestedProcedureID": "",
    "StudyInstanceUID": "",
    "AdmissionID": "",
    **sps(
        ScheduledStationAETitle="",
        ScheduledProcedureStepStartDate="",
        ScheduledProcedureStepStartTime="",
        Modality="",
        ScheduledProcedureStepID="",
    ),
}
