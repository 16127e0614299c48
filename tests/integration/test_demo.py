"""The demo worklist is valid under strict profile validation and lands on the worklist."""

from __future__ import annotations

from pathlib import Path

from fhirmwl.config import load_settings
from fhirmwl.demo import load_demo
from fhirmwl.wiring import build_services
from fhirmwl.worklist import WorklistQuery


def test_demo_loads_once_and_is_queryable(tmp_path: Path) -> None:
    services = build_services(
        load_settings(None, db=f"sqlite:///{tmp_path / 'd.db'}", validation="strict")
    )
    try:
        assert load_demo(services, count=8) == 8
        assert load_demo(services, count=8) == 0  # not twice
        source = services.worklist()
        items = list(
            source.find(
                WorklistQuery.from_keywords(
                    {"ScheduledProcedureStepSequence.ScheduledStationAETitle": "CT01"}
                )
            )
        )
        assert len(items) == 2
        assert all(i.ScheduledProcedureStepSequence[0].Modality == "CT" for i in items)
    finally:
        services.close()
