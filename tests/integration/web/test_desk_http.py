"""The desk over HTTP on a running broker (SQLite and PostgreSQL): worklist filters in the URL,
the order page and its actions through the order service, CSRF, message search and replay,
subscriptions, status, escaping of peer strings and names in several scripts."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from pathlib import Path

import httpx

from fhirmwl.config import load_settings
from fhirmwl.runtime import Runtime
from tests.conftest import free_port
from tests.integration.web.conftest import Desk, require_corpus, today
from tests.integration.web.messages import ack_code, omi

ROW = re.compile(r'<tr data-task="([^"]+)">')


def _rows(html: str) -> list[str]:
    return ROW.findall(html)


def _iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def _order_url(desk: Desk, task_id: str) -> str:
    r = desk.http.get(f"/ui/task/{task_id}")
    assert r.status_code == 303
    return r.headers["location"].split("#")[0]


def test_root_redirects_to_the_worklist(desk: Desk) -> None:
    r = desk.http.get("/", follow_redirects=True)
    assert r.status_code == 200
    assert str(r.url).endswith("/ui/worklist")
    assert "<h1>Worklist</h1>" in r.text


def test_filters_come_from_the_url_and_default_to_today(desk: Desk) -> None:
    day = today()
    desk.send_ok(omi("DOE^JANE", day, station="CT01", modality="CT")[0])
    desk.send_ok(omi("ROE^RICHARD", day, station="MR01", modality="MR")[0])
    desk.send_ok(omi("POE^EDGAR", "20300102", station="CT01", modality="CT")[0])

    default = desk.http.get("/ui/worklist").text
    assert len(_rows(default)) == 2  # today in Europe/Berlin
    assert '<option value="CT01"><option value="MR01"></datalist>' in default  # suggestions
    assert f'value="{_iso(day)}"' in default

    ct = desk.http.get(f"/ui/worklist?date={_iso(day)}&station=CT01&modality=CT&status=requested")
    assert ct.status_code == 200
    assert len(_rows(ct.text)) == 1 and "DOE, JANE" in ct.text and "ROE" not in ct.text
    assert len(_rows(desk.http.get("/ui/worklist?date=&station=CT01").text)) == 2
    ranged = desk.http.get(f"/ui/worklist?date={_iso(day)}&to=2030-01-02").text
    assert len(_rows(ranged)) == 3
    assert len(_rows(desk.http.get("/ui/worklist?date=&status=in-progress").text)) == 0
    assert len(_rows(desk.http.get("/ui/worklist?date=&patient=edg").text)) == 1

    bad = desk.http.get("/ui/worklist?date=2026-13-01")
    assert bad.status_code == 400 and 'role="alert"' in bad.text and "2026-13-01" in bad.text
    assert desk.http.get("/ui/worklist?status=bogus").status_code == 400


def test_sorting_and_paging(desk: Desk) -> None:
    day = today()
    for i, name in enumerate(["CHARLIE^C", "ALPHA^A", "BRAVO^B"]):
        desk.send_ok(omi(name, day, time=f"{10 + i:02d}00")[0])
    by_start = desk.http.get("/ui/worklist").text
    assert [n for n in ("CHARLIE", "ALPHA", "BRAVO") if n in by_start] == [
        "CHARLIE",
        "ALPHA",
        "BRAVO",
    ]
    assert by_start.index("CHARLIE") < by_start.index("ALPHA") < by_start.index("BRAVO")
    by_name = desk.http.get("/ui/worklist?sort=patient&dir=desc").text
    assert by_name.index("CHARLIE") < by_name.index("BRAVO") < by_name.index("ALPHA")
    assert 'aria-sort="descending"' in by_name
    page2 = desk.http.get("/ui/worklist?sort=patient&size=2&page=2").text
    assert _rows(page2) and "CHARLIE" in page2 and "ALPHA" not in page2
    assert "page 2 of 2" in page2 and 'rel="prev"' in page2


def test_peer_strings_are_escaped(desk: Desk) -> None:
    desk.send_ok(omi("<script>alert(1)</script>^X", today(), desc="<b>CT</b> head")[0])
    html = desk.http.get("/ui/worklist").text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>CT</b>" not in html
    (task,) = _rows(html)
    order = desk.http.get(_order_url(desk, task)).text
    assert "<script>alert" not in order and "&lt;script&gt;alert(1)" in order


def test_names_in_several_scripts(desk: Desk) -> None:
    hl7 = require_corpus()
    desk.send_ok(omi("NGUYỄN^THỊ HƯƠNG", today(), station="US01", modality="US")[0])
    for name in (
        "tw_OMI-O23_UTF8-CJK-name_minimal.hl7",
        "ssmix2_OMG-01_radiology-order_ISO2022JP.hl7",
    ):
        desk.send_ok((hl7 / name).read_bytes())
    html = unescape(desk.http.get("/ui/worklist?date=").text)
    assert "NGUYỄN, THỊ HƯƠNG" in html
    assert "患者, 太郎" in html  # ISO-2022-JP (MSH-18 ISO IR87) decoded, stored, shown
    jp = unescape(desk.http.get("/ui/messages?type=OMG").text)
    log_id = re.findall(r'href="/ui/messages/(\d+)"', jp)[0]
    assert "東京都港区" in unescape(desk.http.get(f"/ui/messages/{log_id}").text)
    # The Taiwanese order has no procedure code: not on the worklist, and the page says why.
    tw = unescape(desk.http.get("/ui/messages?text=楊嘉翔").text)
    log_id = re.findall(r'href="/ui/messages/(\d+)"', tw)[0]
    shown = desk.http.get(f"/ui/messages/{log_id}").text
    task = re.findall(r'href="/fhir/Task/([^"]+)"', shown)[0]
    order = unescape(desk.http.get(f"/ui/task/{task}", follow_redirects=True).text)
    assert "楊嘉翔" in order
    assert "Why not on the worklist:</strong> missing Requested Procedure Description" in order


def test_order_page_shows_graph_item_messages_and_history(desk: Desk) -> None:
    message, acc, cid = omi("DOE^JANE", today())
    desk.send_ok(message)
    (task,) = _rows(desk.http.get("/ui/worklist").text)
    html = desk.http.get(_order_url(desk, task)).text
    assert f"Order {acc}" in html
    for rtype in ("ServiceRequest/", "Task/", "Patient/", "Device/"):
        assert rtype in html
    assert "(0010,0010)" in html and "PatientName" in html and "DOE^JANE" in html
    assert "(0040,0001)" in html and "ScheduledStationAETitle" in html
    assert "on the worklist" in html and "Why not on the worklist" not in html
    assert cid in html and "OMI^O23" in html and "a-AA" in html
    assert "POST" in html  # history
    # The patient's access history: the HL7 message that created the order (DCM Order Record).
    access = html.split('id="h-access"', 1)[1].split("</section>", 1)[0]
    assert "Order Record" in access and "RIS" in access


def _post(desk: Desk, url: str, **form: str) -> object:
    return desk.http.post(url, data={"csrf": desk.csrf(), **form})


def test_actions_go_through_the_order_service(desk: Desk) -> None:
    desk.send_ok(omi("DOE^JANE", today(), station="CT01")[0])
    (task,) = _rows(desk.http.get("/ui/worklist").text)
    order = _order_url(desk, task)

    r = _post(desk, f"{order}/reschedule", task=task, start="2030-03-04T11:30")
    assert r.status_code == 303 and "done=rescheduled" in r.headers["location"]
    moved = desk.http.get("/ui/worklist?date=2030-03-04").text
    assert _rows(moved) == [task] and "2030-03-04 11:30" in moved

    r = _post(desk, f"{order}/station", task=task, station="CT02")
    assert r.status_code == 303
    assert _rows(desk.http.get("/ui/worklist?date=2030-03-04&station=CT02").text) == [task]

    bad = _post(desk, f"{order}/station", task=task, station="BAD\\AE")
    assert bad.status_code == 400 and 'role="alert"' in bad.text and "AE title" in bad.text

    r = _post(desk, f"{order}/status", task=task, status="in-progress")
    assert r.status_code == 303
    assert "STARTED" in desk.http.get("/ui/worklist?date=2030-03-04").text
    back = _post(desk, f"{order}/status", task=task, status="requested")
    assert back.status_code == 409 and 'role="alert"' in back.text

    moved_running = _post(desk, f"{order}/reschedule", task=task, start="2030-03-05T08:00")
    assert moved_running.status_code == 409 and "in-progress" in moved_running.text

    done = _post(desk, f"{order}/status", task=task, status="completed")
    assert done.status_code == 303
    page = desk.http.get(order).text
    assert "not on the worklist" in page and "Task.status &#39;completed&#39;" in page
    assert _rows(desk.http.get("/ui/worklist?date=").text) == []


def test_cancel_removes_the_step_and_explains_why(desk: Desk) -> None:
    desk.send_ok(omi("DOE^JANE", today(), placer="PFIND1")[0])
    (task,) = _rows(desk.http.get("/ui/worklist").text)
    order = _order_url(desk, task)
    r = _post(desk, f"{order}/cancel", reason="patient declined")
    assert r.status_code == 303 and "done=cancelled" in r.headers["location"]
    page = desk.http.get(r.headers["location"]).text
    assert "The order was cancelled." in page and "revoked" in page
    assert "Why not on the worklist" in page and "cancelled" in page
    assert _rows(desk.http.get("/ui/worklist").text) == []
    # Off the worklist, the order is still found by its numbers.
    for number in ("AFIND1", "PFIND1", "RPPFIND1", "SPSPFIND1"):
        found = desk.http.get(f"/ui/find?q={number}")
        assert found.status_code == 303 and found.headers["location"] == order, number
    missing = desk.http.get("/ui/find?q=NOSUCH")
    assert missing.status_code == 200 and "No order has this identifier" in missing.text


def test_posts_need_the_csrf_token_and_same_origin(desk: Desk) -> None:
    desk.send_ok(omi("DOE^JANE", today())[0])
    (task,) = _rows(desk.http.get("/ui/worklist").text)
    order = _order_url(desk, task)
    token = desk.csrf()
    assert desk.http.post(f"{order}/cancel", data={}).status_code == 403
    assert desk.http.post(f"{order}/cancel", data={"csrf": "x" * 43}).status_code == 403
    foreign = desk.http.post(
        f"{order}/cancel", data={"csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403 and "cross-origin" in foreign.text
    assert len(_rows(desk.http.get("/ui/worklist").text)) == 1  # nothing happened


def test_message_search_and_replay(desk: Desk) -> None:
    message, acc, cid = omi("DOE^JANE", today())
    desk.send_ok(message)
    bad = message.replace(b"OMI^O23^OMI_O23", b"ZZZ^Z99").replace(cid.encode(), b"CBAD1")
    (ack,) = desk.send(bad)
    assert ack_code(ack) != "AA"
    assert cid in desk.http.get(f"/ui/messages?control={cid}").text
    assert "CBAD1" not in desk.http.get(f"/ui/messages?control={cid}").text
    assert (
        "CBAD1"
        in desk.http.get("/ui/messages?ack=AR").text + desk.http.get("/ui/messages?ack=AE").text
    )
    assert cid in desk.http.get(f"/ui/messages?type=OMI&date={_iso(today())}").text
    assert cid not in desk.http.get("/ui/messages?date=2001-01-01").text
    assert cid in desk.http.get(f"/ui/messages?text={acc}").text
    first = desk.http.get("/ui/messages?size=1").text  # paging: newest first, then older
    assert "CBAD1" in first and cid not in first and 'rel="next"' in first
    older = re.findall(r'href="/ui/messages\?([^"]+)" rel="next"', first)[0]
    assert cid in desk.http.get(f"/ui/messages?{unescape(older)}").text
    assert desk.http.get("/ui/messages?before=x").status_code == 400
    (log_id,) = re.findall(
        r'href="/ui/messages/(\d+)"', desk.http.get(f"/ui/messages?control={cid}").text
    )
    replay = desk.http.post(f"/ui/messages/{log_id}/replay", data={"csrf": desk.csrf()})
    assert replay.status_code == 200 and "ACK of the replay" in replay.text
    assert "MSA|AA" in replay.text
    assert len(_rows(desk.http.get("/ui/worklist").text)) == 1  # a retransmission


def test_subscriptions_and_status(desk: Desk, port: int) -> None:
    sub = {
        "resourceType": "Subscription",
        "status": "active",
        "topic": "http://fhirmwl.org/fhir/SubscriptionTopic/order-created",
        "channelType": {"code": "rest-hook"},
        "endpoint": f"http://127.0.0.1:{port}/nobody-listens",
        "content": "id-only",
    }
    topic = desk.http.get("/fhir/SubscriptionTopic").json()["entry"][0]["resource"]["url"]
    sub["topic"] = topic
    created = desk.http.post(
        "/fhir/Subscription", json=sub, headers={"Content-Type": "application/fhir+json"}
    )
    assert created.status_code == 201, created.text
    page = desk.http.get("/ui/subscriptions").text
    assert created.json()["id"] in page and "/nobody-listens" in page
    status = desk.http.get("/ui/status").text
    assert "MLLP (HL7 v2)" in status and str(desk.settings.mllp_port) in status
    listeners = dict(re.findall(r"<td>([^<]+)</td><td><span class=\"badge \w+\">([^<]+)<", status))
    dicom = "accepting" if desk.settings.dicom else "off"  # measured, not read off the settings
    assert listeners == {
        "HTTP (FHIR API, desk)": "accepting",
        "MLLP (HL7 v2)": "accepting",
        "DICOM (C-FIND worklist)": dicom,
    }
    assert "Subscription resources" in status


def test_the_documented_url_and_the_web_switch(desk: Desk, tmp_path: Path) -> None:
    r = desk.http.get("/ui/worklist?date=2026-12-01&station=CT01&modality=CT&status=requested")
    assert r.status_code == 200
    for value in ('value="2026-12-01"', 'value="CT01"', 'value="CT"', 'value="requested" selected'):
        assert value in r.text
    config = tmp_path / "fhirmwl.toml"
    config.write_text("[fhirmwl]\nweb = false   # no desk at /ui/\n", "utf-8")
    settings = load_settings(
        config,
        db=f"sqlite:///{tmp_path / 'off.db'}",
        http_port=free_port(),
        mllp=False,
        dicom=False,
    )
    assert settings.web is False
    runtime = Runtime(settings)
    runtime.start()
    try:
        base = f"http://127.0.0.1:{settings.http_port}"
        assert httpx.get(f"{base}/ui/worklist").status_code == 404
        assert httpx.get(f"{base}/fhir/metadata").status_code == 200
    finally:
        runtime.stop()


def test_a_step_hidden_by_retention_says_so(start_desk: Callable[..., Desk]) -> None:
    desk = start_desk(worklist_retention_days=30)
    desk.send_ok(omi("OLD^OSCAR", "20200102")[0])
    assert _rows(desk.http.get("/ui/worklist?date=").text) == []  # as C-FIND sees it
    found = re.findall(r'href="/ui/messages/(\d+)"', desk.http.get("/ui/messages").text)
    shown = desk.http.get(f"/ui/messages/{found[0]}").text
    task = re.findall(r'href="/fhir/Task/([^"]+)"', shown)[0]
    order = desk.http.get(f"/ui/task/{task}", follow_redirects=True).text
    assert "not on the worklist" in order
    assert "hidden by worklist_retention_days" in order
    assert "(0010,0010)" in order  # the stored item is still shown


def test_the_order_page_lists_a_refused_message_about_it(desk: Desk) -> None:
    desk.send_ok(omi("DOE^JANE", today(), placer="PREF1")[0])
    (task,) = _rows(desk.http.get("/ui/worklist").text)
    order = _order_url(desk, task)
    assert _post(desk, f"{order}/status", task=task, status="in-progress").status_code == 303
    cancel, _, cid = omi("DOE^JANE", today(), placer="PREF1", orc1="CA")
    (ack,) = desk.send(cancel)
    assert ack_code(ack) == "AE"
    page = unescape(desk.http.get(order).text)
    assert cid in page and "refused" in page and "cannot be cancelled" in page
