"""MPPS state machine and mapping rules (pure): PS3.4 F.7.2 statuses, Task status, Procedure."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from pydicom.dataset import Dataset

from fhirmwl.mpps.model import (
    ERROR_NO_LONGER_UPDATABLE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    MISSING_ATTRIBUTE_VALUE,
    PROCESSING_FAILURE,
    MppsRefusal,
    check_create,
    merge_set,
    performed_step,
    procedure_resource,
    study_counts,
    task_status_for,
)

TZ = ZoneInfo("Europe/Berlin")


def created() -> Dataset:
    ds = Dataset()
    ref = Dataset()
    ref.StudyInstanceUID, ref.AccessionNumber = "1.2.3", "ACC1"
    ref.RequestedProcedureID, ref.ScheduledProcedureStepID = "RP1", "SPS1"
    ds.ScheduledStepAttributesSequence = [ref]
    ds.PatientID = "PAT1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20300101", "0905"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    return ds


def completed(images: int = 2) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    ds.PerformedProcedureStepEndDate, ds.PerformedProcedureStepEndTime = "20300101", "0930"
    series = Dataset()
    series.SeriesInstanceUID, series.Modality = "1.2.3.4", "CT"
    refs = []
    for i in range(images):
        r = Dataset()
        r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", f"9.{i}"
        refs.append(r)
    series.ReferencedImageSequence = refs
    ds.PerformedSeriesSequence = [series]
    return ds


def refusal(call: object, *args: object) -> MppsRefusal:
    with pytest.raises(MppsRefusal) as info:
        call(*args)  # type: ignore[operator]
    return info.value


def test_create_requires_type1_values_and_in_progress() -> None:
    check_create(created())
    ds = created()
    del ds.PerformedStationAETitle
    assert refusal(check_create, ds).status == MISSING_ATTRIBUTE
    ds = created()
    ds.Modality = ""
    assert refusal(check_create, ds).status == MISSING_ATTRIBUTE_VALUE
    ds = created()
    ds.PerformedProcedureStepStatus = "COMPLETED"
    found = refusal(check_create, ds)
    assert found.status == INVALID_ATTRIBUTE_VALUE and found.tags == (0x00400252,)


def test_set_rules() -> None:
    done = merge_set(created(), completed())
    assert done.PerformedProcedureStepStatus == "COMPLETED"
    frozen = refusal(merge_set, done, completed())
    assert (frozen.status, frozen.error_id) == (PROCESSING_FAILURE, ERROR_NO_LONGER_UPDATABLE)
    no_series = completed()
    del no_series.PerformedSeriesSequence
    assert refusal(merge_set, created(), no_series).status == PROCESSING_FAILURE
    same_station = Dataset()
    same_station.PerformedStationAETitle = "CT1"  # the same value again is tolerated
    assert merge_set(created(), same_station).PerformedStationAETitle == "CT1"
    same_station.PerformedStationAETitle = "MR1"
    assert refusal(merge_set, created(), same_station).status == INVALID_ATTRIBUTE_VALUE


def test_task_status_and_procedure() -> None:
    step = performed_step("1.9", merge_set(created(), completed()), TZ)
    assert task_status_for(step) == "completed"
    assert step.start == "2030-01-01T09:05:00+01:00" and step.end == "2030-01-01T09:30:00+01:00"
    proc = procedure_resource(step, ["ServiceRequest/rp"], {"reference": "Patient/p"}, {})
    assert proc["status"] == "completed"
    assert proc["occurrencePeriod"] == {"start": step.start, "end": step.end}
    stopped = completed(images=0)
    stopped.PerformedProcedureStepStatus = "DISCONTINUED"
    assert task_status_for(performed_step("1.9", merge_set(created(), stopped), TZ)) == "cancelled"
    stopped = completed(images=1)
    stopped.PerformedProcedureStepStatus = "DISCONTINUED"
    assert task_status_for(performed_step("1.9", merge_set(created(), stopped), TZ)) == "failed"


def test_study_counts_merge_series_by_uid() -> None:
    step = performed_step("1.9", merge_set(created(), completed(images=3)), TZ)
    study = {"resourceType": "ImagingStudy", "status": "registered", "series": []}
    once = study_counts(study, step, "Procedure/x")
    twice = study_counts(once, step, "Procedure/x")
    assert (twice["numberOfSeries"], twice["numberOfInstances"]) == (1, 3)
    assert twice["partOf"] == [{"reference": "Procedure/x"}] and twice["status"] == "registered"
