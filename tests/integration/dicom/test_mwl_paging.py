"""``$mwl-query`` pages with a keyset cursor: a step removed from the worklist between two pages
does not make the next page skip another step (offset paging would)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from tests.conftest import running_broker

from fhirmwl.dicom.dumpfile import read_worklist_file
from fhirmwl.mapping.fhir_to_dicom import DicomMappingContext, worklist_item_to_fhir


def _sps_ids(bundle: dict[str, object]) -> list[str]:
    out = []
    for entry in bundle.get("entry", []):  # type: ignore[union-attr]
        task = entry["resource"]
        if task["resourceType"] == "Task":
            out += [i["value"] for i in task["identifier"]]
    return out


def test_pages_are_stable_while_the_worklist_changes(mwl_corpus: Path, db_url: str) -> None:
    ctx = DicomMappingContext(timezone=ZoneInfo("UTC"))
    with (
        running_broker(db_url, timezone="UTC") as rt,
        httpx.Client(base_url=rt.settings.fhir_base, timeout=30) as http,
    ):
        for path in sorted(mwl_corpus.glob("dcmtk_wklist*.dump")):
            bundle = worklist_item_to_fhir(read_worklist_file(path), ctx)
            assert http.post("", json=bundle).status_code == 200
        everything = _sps_ids(http.get("Task/$mwl-query", params={"_count": "100"}).json())
        assert len(everything) == 10
        first = http.get("Task/$mwl-query", params={"_count": "3"}).json()
        seen = _sps_ids(first)
        assert seen == everything[:3]
        gone = next(e["resource"]["id"] for e in first["entry"] if e["search"]["mode"] == "match")
        assert http.delete(f"Task/{gone}").status_code in (200, 204)
        url = next(lk["url"] for lk in first["link"] if lk["relation"] == "next")
        assert "_cursor=" in url
        while url:
            page = http.get(url).json()
            seen += _sps_ids(page)
            url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        assert seen == everything  # nothing skipped, nothing twice
        bad = http.get("Task/$mwl-query", params={"_cursor": "nonsense"})
        assert bad.status_code == 400 and "_cursor" in bad.text
