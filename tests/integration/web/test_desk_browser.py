"""The desk in a real headless Chromium (Debian's package, driven by Playwright for Python):
filters reflected in the URL, keyboard use, an order sent over MLLP appearing without a reload,
a cancel on the order page disappearing from the worklist and from DCMTK ``findscu``, names in
several scripts, a ``<script>`` patient name staying text, and no console errors anywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.conftest import REPO
from tests.integration.web.conftest import Desk, require_corpus, today
from tests.integration.web.messages import omi

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.browser]


def _rows(pg: Any) -> Any:
    return pg.locator("table.worklist tbody tr[data-task]")


def test_filters_sorting_and_keyboard(desk: Desk, page: Any) -> None:
    day = today()
    desk.send_ok(omi("BETA^BERT", day, station="CT01", modality="CT")[0])
    desk.send_ok(omi("ALPHA^ANNA", day, station="CT01", modality="CT", time="1000")[0])
    desk.send_ok(omi("GAMMA^GUS", day, station="MR01", modality="MR")[0])
    page.goto(f"{desk.base}/")
    assert page.url.endswith("/ui/worklist")
    assert _rows(page).count() == 3
    page.get_by_label("Station AE").fill("CT01")
    page.get_by_label("Modality").fill("CT")
    page.get_by_label("Status").select_option("requested")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(re.compile(r"station=CT01"))
    assert "modality=CT" in page.url and "status=requested" in page.url
    assert f"date={day[:4]}-{day[4:6]}-{day[6:]}" in page.url
    assert _rows(page).count() == 2
    page.get_by_role("link", name="Patient name").click()
    page.wait_for_url(re.compile(r"sort=patient"))
    assert "station=CT01" in page.url  # sorting keeps the filters
    assert _rows(page).first.inner_text().find("ALPHA, ANNA") >= 0
    # Bookmarkable: the same URL in a fresh page gives the same view.
    again = page.context.new_page()
    again.goto(page.url)
    assert _rows(again).count() == 2
    again.close()
    # Keyboard: "/" jumps to the patient filter, arrows walk the rows, Enter opens one.
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "patient-filter"
    page.locator("h1").click()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.closest('tr').dataset.task")
    assert focused == _rows(page).nth(1).get_attribute("data-task")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/ui/order/"))
    assert page.get_by_role("heading", name="Scheduled procedure steps").is_visible()


def test_an_order_sent_over_mllp_appears_live(desk: Desk, page: Any) -> None:
    desk.send_ok(omi("FIRST^FRED", today())[0])
    page.goto(f"{desk.base}/ui/worklist")
    _wait_live(page)
    page.evaluate("window.notReloaded = true")
    started = time.monotonic()
    desk.send_ok(omi("LATER^LUCY", today(), time="1100")[0])
    page.locator("tr[data-task]", has_text="LATER, LUCY").wait_for(timeout=15000)
    print(f"new MLLP order visible in the browser after {time.monotonic() - started:.2f} s")
    assert page.evaluate("window.notReloaded") is True
    assert _rows(page).count() == 2
    assert "1 new" in page.locator("#live").inner_text()


def test_the_order_page_notices_a_change_made_elsewhere(desk: Desk, page: Any) -> None:
    message, acc, _ = omi("OTHER^OTTO", today())
    desk.send_ok(message)
    page.goto(f"{desk.base}/ui/worklist")
    page.get_by_role("link", name=acc).click()
    page.wait_for_url(re.compile(r"/ui/order/"))
    _wait_live(page)
    assert page.locator("#order-live").is_hidden()
    isr_id = page.url.split("/ui/order/")[1].split("?")[0].split("#")[0]
    r = desk.http.post(f"/fhir/ServiceRequest/{isr_id}/$cancel-order")
    assert r.status_code == 200, r.text
    page.locator("#order-live").wait_for(state="visible", timeout=15000)
    page.locator("#order-live a").click()
    assert page.locator(".badge.off").first.is_visible()


def _wait_live(page: Any) -> None:
    """The page's live badge says "Live" (a locator wait: no script evaluation, which the
    desk's Content-Security-Policy may refuse)."""
    page.locator("#live", has_text=re.compile(r"^\s*Live")).wait_for(timeout=15000)


def _findscu(port: int, accession: str, out: Path) -> list[Any]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args = ["findscu", "-W", "-aet", "DESKTEST", "-aec", "FHIRMWL", "-X", "-od", str(out)]
    for key in (f"AccessionNumber={accession}", "PatientName", "ScheduledProcedureStepSequence"):
        args += ["-k", key]
    subprocess.run([*args, "127.0.0.1", str(port)], check=True, capture_output=True, timeout=30)
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("findscu") is None, reason="DCMTK findscu not installed")
def test_cancel_on_the_order_page_leaves_the_worklist_and_findscu(
    start_desk: Callable[..., Desk], page: Any, tmp_path: Path
) -> None:
    desk = start_desk(dicom=True)
    message, acc, _ = omi("CANCEL^CARL", today())
    desk.send_ok(message)
    (item,) = _findscu(desk.settings.dicom_port, acc, tmp_path / "before")
    assert str(item.PatientName) == "CANCEL^CARL"

    watcher = page.context.new_page()  # a second desk keeps the worklist open
    watcher.goto(f"{desk.base}/ui/worklist")
    _wait_live(watcher)
    page.goto(f"{desk.base}/ui/worklist")
    page.get_by_role("link", name=acc).click()
    page.wait_for_url(re.compile(r"/ui/order/"))
    assert page.locator(".badge.on").first.is_visible()
    page.get_by_label("Reason").fill("patient declined")
    page.get_by_role("button", name="Cancel order").click()
    page.get_by_text("The order was cancelled.").wait_for()
    assert page.locator(".badge.off").first.is_visible()
    assert "Task.status 'cancelled'" in page.locator(".why").first.inner_text()

    watcher.locator("td.empty").wait_for(timeout=15000)  # gone without a reload
    assert _rows(watcher).count() == 0
    watcher.close()
    page.goto(f"{desk.base}/ui/worklist")
    assert _rows(page).count() == 0
    assert _findscu(desk.settings.dicom_port, acc, tmp_path / "after") == []


def test_names_in_several_scripts_and_a_script_name(desk: Desk, page: Any) -> None:
    hl7 = require_corpus()
    desk.send_ok(omi("NGUYỄN^THỊ HƯƠNG", today())[0])
    desk.send_ok(omi("<script>alert('x')</script>^EVE", today())[0])
    desk.send_ok((hl7 / "ssmix2_OMG-01_radiology-order_ISO2022JP.hl7").read_bytes())
    page.goto(f"{desk.base}/ui/worklist?date=")
    names = page.locator("td.name").all_inner_texts()
    assert "NGUYỄN, THỊ HƯƠNG" in names
    assert "患者, 太郎" in names
    assert "<script>alert('x')</script>, EVE" in names  # shown as text, never run
    page.get_by_role("link", name="HL7 messages").click()
    page.get_by_label("Type").fill("OMG")
    page.get_by_role("button", name="Search").click()
    page.locator("tbody a").first.click()
    assert "東京都港区" in page.locator("pre.hl7").first.inner_text()


def test_every_page_renders_without_console_errors(desk: Desk, page: Any) -> None:
    desk.send_ok(omi("DOE^JANE", today())[0])
    for path, heading in (
        ("/ui/worklist", "Worklist"),
        ("/ui/messages", "HL7 messages"),
        ("/ui/subscriptions", "Subscriptions"),
        ("/ui/status", "Status"),
    ):
        page.goto(f"{desk.base}{path}")
        assert page.get_by_role("heading", level=1).inner_text().startswith(heading)
    page.goto(f"{desk.base}/ui/messages")
    page.locator("tbody a").first.click()
    page.get_by_role("button", name="Replay through the intake").click()
    assert "MSA|AA" in page.locator("pre.hl7").first.inner_text()


def test_screenshot_script_writes_every_page(browser: Any, tmp_path: Path) -> None:
    script = REPO / "scripts" / "desk_screenshots.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, timeout=300, cwd=REPO
    )
    shots = sorted(p.name for p in tmp_path.glob("*.png"))
    assert shots == [
        f"desk-{n}.png"
        for n in ("login", "messages", "order", "status", "subscriptions", "worklist")
    ]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))
