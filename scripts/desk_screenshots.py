#!/usr/bin/env python3
"""Regenerate the web desk screenshots in docs/img/ (README and docs/web.md show them).

Starts a broker on a temporary SQLite database and free loopback ports, loads the demo worklist,
an order with a Vietnamese name over MLLP, the Japanese (ISO-2022-JP) order of the shared corpus
when present, a message the intake refuses and a Subscription whose endpoint is down, then
photographs each page at 1280x800 in Debian's Chromium through Playwright; then a second broker
with authentication on for the login form and the worklist of a logged-in read-only user.

    python scripts/desk_screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import re
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import sync_playwright

from fhirmwl.config import load_settings
from fhirmwl.demo import load_demo
from fhirmwl.mllp import send_messages
from fhirmwl.runtime import Runtime
from fhirmwl.security.users import add_user

REPO = Path(__file__).resolve().parents[1]
CORPUS_JP = REPO.parent / "shared/corpus/hl7/ssmix2_OMG-01_radiology-order_ISO2022JP.hl7"
TZ = "Europe/Berlin"
VIETNAMESE = (
    "MSH|^~\\&|RIS|HOSP|MWL|HOSP|{day}080000||OMI^O23^OMI_O23|VN{day}|P|2.5.1||||||UNICODE UTF-8\r"
    "PID|||VN0001^^^HOSP^MR||NGUYỄN^THỊ HƯƠNG||19850412|F\r"
    "ORC|NW|VN{day}^RIS|||SC||||{day}080000\r"
    "TQ1|1||||||{day}071500||S\r"
    "OBR|1|VN{day}^RIS||US01^US abdomen^LOCAL\r"
    "IPC|VN{day}^HOSP|RPVN1|2.25.4711{day}|SPSVN1|US|US01^US abdomen^LOCAL|US01||US01\r"
)
REFUSED = "MSH|^~\\&|LAB|HOSP|MWL|HOSP|{day}090000||ORU^R01|BAD{day}|P|2.5.1\rPID|||X\r"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(runtime: Runtime, base: str) -> None:
    load_demo(runtime.services)
    day = datetime.now(ZoneInfo(TZ)).strftime("%Y%m%d")
    messages = [VIETNAMESE.format(day=day).encode(), REFUSED.format(day=day).encode()]
    if CORPUS_JP.exists():
        messages.append(CORPUS_JP.read_bytes())
    send_messages("127.0.0.1", runtime.settings.mllp_port, messages, 30)
    topics = httpx.get(f"{base}/fhir/SubscriptionTopic").json()["entry"]
    sub = {
        "resourceType": "Subscription",
        "status": "active",
        "topic": topics[0]["resource"]["url"],
        "channelType": {"code": "rest-hook"},
        "endpoint": f"http://127.0.0.1:{_port()}/ris/notifications",
        "content": "id-only",
        "filterBy": [{"filterParameter": "modality", "value": "CT"}],
    }
    httpx.post(f"{base}/fhir/Subscription", json=sub)


def shoot(out: Path, chromium: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            None, db=f"sqlite:///{tmp}/desk.db", http_port=_port(), mllp_port=_port(),
            dicom=False, timezone=TZ,
        )  # fmt: skip
        runtime = Runtime(settings)
        runtime.start()
        try:
            base = f"http://127.0.0.1:{settings.http_port}"
            _load(runtime, base)
            time.sleep(1.5)  # let the dispatcher try the dead endpoint once
            shots = _pages(base, out, chromium)
        finally:
            runtime.stop()
        return shots + _login(Path(tmp), out, chromium)


def _login(tmp: Path, out: Path, chromium: str) -> list[Path]:
    """The built-in server's login form, then the desk header of a logged-in reader."""
    settings = load_settings(
        None, db=f"sqlite:///{tmp}/login.db", http_port=_port(), mllp=False, dicom=False,
        timezone=TZ, auth="builtin",
    )  # fmt: skip
    runtime = Runtime(settings)
    runtime.start()
    try:
        load_demo(runtime.services)
        add_user(runtime.services.store.db, "reader", "reader-password", "user/*.rs")
        base = f"http://127.0.0.1:{settings.http_port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/ui/worklist")
            page.wait_for_url(re.compile(r"/auth/authorize\?"))
            page.get_by_label("User name").fill("reader")
            shot = out / "desk-login.png"
            page.screenshot(path=str(shot))
            page.get_by_label("Password").fill("reader-password")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(re.compile(r"/ui/worklist$"))
            browser.close()
        return [shot]
    finally:
        runtime.stop()


def _pages(base: str, out: Path, chromium: str) -> list[Path]:
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        def snap(name: str) -> None:
            path = out / f"desk-{name}.png"
            page.screenshot(path=str(path))
            shots.append(path)

        page.goto(f"{base}/ui/worklist")
        # a locator wait: the desk's CSP (no 'unsafe-eval') may refuse a string predicate
        page.locator("#live", has_text=re.compile(r"\S")).wait_for(timeout=15000)
        snap("worklist")
        page.locator("tr[data-task]", has_text="NGUYỄN").locator("a").click()
        page.wait_for_url("**/ui/order/**")
        page.locator("details > summary", has_text="as a modality receives it").first.click()
        page.evaluate("window.scrollTo(0, 0)")
        snap("order")
        page.goto(f"{base}/ui/messages")
        snap("messages")
        page.goto(f"{base}/ui/subscriptions")
        snap("subscriptions")
        page.goto(f"{base}/ui/status")
        snap("status")
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    for path in shoot(args.out, args.chromium):
        print(path)


if __name__ == "__main__":
    main()
