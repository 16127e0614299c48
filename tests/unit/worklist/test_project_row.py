"""Projection of items onto requested keys, and the index row builder."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset
from test_matching import item, query

from fhirmwl.worklist import ROW_COLUMNS, WorklistQuery, project, worklist_row


def test_project_returns_exactly_requested_keys() -> None:
    ds = item()
    ds.PatientBirthDate = "19700101"
    identifier = query(
        {"Modality": "", "ScheduledStationAETitle": ""}, PatientName="", PatientSex=""
    )
    out = project(ds, WorklistQuery.from_dataset(identifier))
    assert [e.keyword for e in out] == [
        "PatientName",
        "PatientSex",
        "ScheduledProcedureStepSequence",
    ]
    assert out["PatientSex"].is_empty  # absent -> zero length
    sps = out.ScheduledProcedureStepSequence[0]
    assert [e.keyword for e in sps] == ["Modality", "ScheduledStationAETitle"]


def test_universal_sequence_returns_whole_sequence() -> None:
    identifier = Dataset()
    identifier.ScheduledProcedureStepSequence = []
    out = project(item(), identifier)
    assert out.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime == "101500"


def test_absent_sequences() -> None:
    identifier = Dataset()
    identifier.ReferencedStudySequence = []  # type 2 -> present, empty
    identifier.RequestedProcedureCodeSequence = [Dataset()]  # type 1C -> left out
    out = project(item(), identifier)
    assert "ReferencedStudySequence" in out and len(out.ReferencedStudySequence) == 0
    assert "RequestedProcedureCodeSequence" not in out


def test_nested_code_sequence_projection() -> None:
    ds = item()
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X1", "99L", "Head"
    ds.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence = [code]
    identifier = query({"ScheduledProtocolCodeSequence": [Dataset()]})
    identifier.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue = ""
    out = project(ds, identifier)
    got = out.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0]
    assert [e.keyword for e in got] == ["CodeValue"] and got.CodeValue == "X1"


def test_worklist_row_columns_and_local_time() -> None:
    ds = item(name="Müller^Jörg", station=["AA32", "AA33"], physician="House^G")
    row = worklist_row(ds, "task-1", tz=ZoneInfo("Europe/Berlin"))
    assert tuple(row) == ROW_COLUMNS
    assert row["station_aet"] == "\\"  # several stations: decided in Python
    assert row["sps_start_date"] == "20240705" and row["sps_start_time"] == "101500"
    assert row["sps_start_utc"] == "2024-07-05T08:15:00Z"
    assert row["patient_name_norm"] == "MÜLLER^JÖRG"
    assert row["performing_physician_norm"] == "HOUSE^G"
    assert Dataset.from_json(row["item_json"]).PatientName == "Müller^Jörg"
