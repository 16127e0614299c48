"""Table-driven tests of every C-FIND matching type (PS3.4 C.2.2.2) on worklist keys, run
through both the Python matcher and the SQL pre-filter (which must select a superset)."""

from __future__ import annotations

import sqlite3

import pytest
from pydicom.dataset import Dataset

from fhirmwl.worklist import (
    WorklistQuery,
    WorklistQueryError,
    create_worklist_table,
    matches,
    query_to_sql,
    upsert_rows,
    worklist_row,
)


def item(
    name: str = "SMITH^JOHN",
    pid: str = "P1",
    date: str = "20240705",
    time: str = "101500",
    station: str | list[str] = "CT1",
    modality: str = "CT",
    accession: str = "A1",
    uid: str = "1.2.3.4",
    physician: str = "",
) -> Dataset:
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = pid
    ds.AccessionNumber = accession
    ds.StudyInstanceUID = uid
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.Modality = modality
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepStartTime = time
    sps.ScheduledPerformingPhysicianName = physician
    ds.ScheduledProcedureStepSequence = [sps]
    return ds


def query(sps: dict[str, object] | None = None, **top: object) -> Dataset:
    ds = Dataset()
    for keyword, value in top.items():
        setattr(ds, keyword, value)
    if sps is not None:
        seq_item = Dataset()
        for keyword, value in sps.items():
            setattr(seq_item, keyword, value)
        ds.ScheduledProcedureStepSequence = [seq_item]
    return ds


def sql_selects(q: WorklistQuery, ds: Dataset) -> bool:
    conn = sqlite3.connect(":memory:")
    create_worklist_table(conn)
    upsert_rows(conn, [worklist_row(ds, "t1")])
    where, params = query_to_sql(q)
    return conn.execute(f"SELECT count(*) FROM worklist WHERE {where}", params).fetchone()[0] == 1


CASES = [
    # (description, query, item, expected)
    ("universal name", query(PatientName=""), item(), True),
    ("bare * is universal, also for empty", query(PatientName="*"), item(name=""), True),
    ("single value exact", query(PatientID="P1"), item(), True),
    ("single value other", query(PatientID="P2"), item(), False),
    ("single value is case-sensitive (LO)", query(PatientID="p1"), item(), False),
    ("empty entity fails non-universal", query(PatientID="P1"), item(pid=""), False),
    ("PN case-insensitive", query(PatientName="smith^john"), item(), True),
    ("PN trailing empty components", query(PatientName="SMITH^JOHN^^^"), item(), True),
    ("PN prefix wildcard", query(PatientName="SMI*"), item(), True),
    ("PN ? is one character", query(PatientName="SM?TH*"), item(), True),
    ("PN ? never matches zero chars", query(PatientName="SMITH?^JOHN"), item(), False),
    ("literal ? in stored name", query(PatientName="O?BRIEN"), item(name="O?BRIEN"), True),
    ("wildcard mid-string", query(PatientName="*JOHN"), item(), True),
    ("wildcard no match", query(PatientName="JO*"), item(), False),
    ("LIKE specials are literals", query(PatientName="SMITH%"), item(name="SMITHX"), False),
    ("underscore is literal", query(PatientID="P_"), item(pid="PX"), False),
    (
        "Latin-1 name case-insensitive",
        query(PatientName="vanillé*"),
        item(name="VANILLÉ^LAURA"),
        True,
    ),
    (
        "Japanese ideographic group",
        query(PatientName="山田*"),
        item(name="Yamada^Tarou=山田^太郎=やまだ^たろう"),
        True,
    ),
    (
        "Japanese phonetic group exact",
        query(PatientName="やまだ^たろう"),
        item(name="Yamada^Tarou=山田^太郎=やまだ^たろう"),
        True,
    ),
    (
        "component groups are not split",
        query(PatientName="Yamada^Tarou=山田^花子"),
        item(name="Yamada^Tarou=山田^太郎"),
        False,
    ),
    ("UID single", query(StudyInstanceUID="1.2.3.4"), item(), True),
    ("UID list", query(StudyInstanceUID=["9.9", "1.2.3.4"]), item(), True),
    ("UID list miss", query(StudyInstanceUID=["9.9", "1.2.3"]), item(), False),
    ("accession wildcard", query(AccessionNumber="A*"), item(), True),
    ("station single", query({"ScheduledStationAETitle": "CT1"}), item(), True),
    ("station other", query({"ScheduledStationAETitle": "CT2"}), item(), False),
    (
        "multi-valued station: any value",
        query({"ScheduledStationAETitle": "AA33"}),
        item(station=["AA32", "AA33"]),
        True,
    ),
    ("modality", query({"Modality": "MR"}), item(), False),
    ("date single", query({"ScheduledProcedureStepStartDate": "20240705"}), item(), True),
    ("date range", query({"ScheduledProcedureStepStartDate": "20240701-20240705"}), item(), True),
    ("date open end", query({"ScheduledProcedureStepStartDate": "20240706-"}), item(), False),
    ("date open start", query({"ScheduledProcedureStepStartDate": "-20240705"}), item(), True),
    ("time by meaning", query({"ScheduledProcedureStepStartTime": "1015"}), item(), True),
    ("time range", query({"ScheduledProcedureStepStartTime": "1000-1100"}), item(), True),
    ("time open start", query({"ScheduledProcedureStepStartTime": "-1015"}), item(), True),
    ("time open end", query({"ScheduledProcedureStepStartTime": "1016-"}), item(), False),
    (
        "combined date-time: inside",
        query(
            {
                "ScheduledProcedureStepStartDate": "20240704-20240706",
                "ScheduledProcedureStepStartTime": "1800-0900",
            }
        ),
        item(date="20240705", time="030000"),
        True,
    ),
    (
        "combined date-time: across midnight, before start",
        query(
            {
                "ScheduledProcedureStepStartDate": "20240704-20240705",
                "ScheduledProcedureStepStartTime": "2200-0200",
            }
        ),
        item(date="20240704", time="213000"),
        False,
    ),
    (
        "combined date-time: across midnight, after midnight",
        query(
            {
                "ScheduledProcedureStepStartDate": "20240704-20240705",
                "ScheduledProcedureStepStartTime": "2200-0200",
            }
        ),
        item(date="20240705", time="013000"),
        True,
    ),
    (
        "combined date-time: after end",
        query(
            {
                "ScheduledProcedureStepStartDate": "20240704-20240705",
                "ScheduledProcedureStepStartTime": "2200-0200",
            }
        ),
        item(date="20240705", time="023000"),
        False,
    ),
    (
        "single date with time range",
        query(
            {
                "ScheduledProcedureStepStartDate": "20240705",
                "ScheduledProcedureStepStartTime": "1200-",
            }
        ),
        item(),
        False,
    ),
    (
        "empty start time fails range",
        query({"ScheduledProcedureStepStartTime": "-2359"}),
        item(time=""),
        False,
    ),
    (
        "physician wildcard vs empty",
        query({"ScheduledPerformingPhysicianName": "A*"}),
        item(),
        False,
    ),
    ("empty sequence item = universal", query({}), item(), True),
    (
        "sequence: all item keys in one item",
        query({"Modality": "CT", "ScheduledStationAETitle": "CT1"}),
        item(),
        True,
    ),
]


@pytest.mark.parametrize(
    ("identifier", "ds", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matching(identifier: Dataset, ds: Dataset, expected: bool) -> None:
    q = WorklistQuery.from_dataset(identifier)
    assert matches(q, ds) is expected
    if expected:  # SQL must never drop a true match
        assert sql_selects(q, ds)


@pytest.mark.parametrize(
    ("identifier", "ds", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_sql_decides_indexed_keys_exactly(identifier: Dataset, ds: Dataset, expected: bool) -> None:
    """For keys with a column, SQL alone agrees with Python (except PN subtleties)."""
    q = WorklistQuery.from_dataset(identifier)
    sps = identifier.get("ScheduledProcedureStepSequence") or [Dataset()]
    if "PatientName" in identifier or "ScheduledPerformingPhysicianName" in sps[0]:
        pytest.skip("PN rules are finished in Python")
    assert sql_selects(q, ds) is expected


def test_multi_item_sequence_key_is_rejected() -> None:
    identifier = query({"Modality": "CT"})
    identifier.ScheduledProcedureStepSequence.append(Dataset())
    with pytest.raises(WorklistQueryError) as err:
        WorklistQuery.from_dataset(identifier)
    assert err.value.tag == 0x00400100


def test_absent_sps_sequence_is_lenient() -> None:
    assert matches(WorklistQuery.from_dataset(query(PatientID="P1")), item())


def test_from_keywords_equals_dataset_form() -> None:
    q = WorklistQuery.from_keywords(
        {
            "PatientName": "SMI*",
            "ScheduledProcedureStepSequence.Modality": "CT",
            "ScheduledProcedureStepSequence.ScheduledProcedureStepStartDate": "20240701-",
            "00100020": "",
        }
    )
    assert matches(q, item())
    assert not matches(q, item(modality="MR"))
    assert q.key(0x00100020) is not None


def test_restrict_to_station() -> None:
    q = WorklistQuery.from_dataset(query({"Modality": ""})).with_station("CT2")
    assert not matches(q, item())
    assert matches(q, item(station="CT2"))
    explicit = WorklistQuery.from_dataset(query({"ScheduledStationAETitle": "CT1"}))
    assert explicit.with_station("CT2") is explicit
