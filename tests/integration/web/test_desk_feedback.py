"""Modality feedback and outbound HL7 in the desk over HTTP (SQLite and PostgreSQL).

A real order over MLLP, a real modality (pynetdicom: MWL C-FIND, MPPS N-CREATE / N-SET) and a
real MLLP receiver as the outbound destination: the order page shows the step status the MPPS
moved, the performed procedure step (modality, station, start/end, series and instances from the
ImagingStudy) and the outbound messages with their ACKs; the status page shows each
destination's queue and the last error of one that is down. Peer strings are escaped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import free_port
from tests.integration.mpps.test_mpps_scp import Modality, final, in_progress
from tests.integration.outbound.conftest import Receiver
from tests.integration.web.conftest import Desk, today
from tests.integration.web.messages import omi

NUM = re.compile(r'<td class="num">(\d+)</td>')


@pytest.fixture
def pacs() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _section(html: str, heading_id: str) -> str:
    return html.split(f'id="{heading_id}"', 1)[1].split("</section>", 1)[0]


def _wait(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_performed_steps_and_outbound_messages_on_the_desk(
    db_url: str, start_desk: Callable[..., Desk], pacs: Receiver
) -> None:
    down = free_port()  # a destination nobody listens on: its error shows on the status page
    desk = start_desk(
        db_url,
        dicom=True,
        hl7_destinations=[
            {"name": "pacs", "host": "127.0.0.1", "port": pacs.port},
            {"name": "ris", "host": "127.0.0.1", "port": down, "timeout": 2},
        ],
    )
    message, acc, _ = omi("DOE^JANE", today(), station="CT1")
    desk.send_ok(message)
    [sent] = pacs.wait_for(1)
    control_id = next(s for s in sent if s[0] == "MSH")[9]

    modality = Modality(desk.settings.dicom_port)
    try:
        [item] = [i for i in modality.worklist() if i.AccessionNumber == acc]
        step = in_progress(item, patient_id=item.PatientID)
        step.PerformedProcedureStepDescription = "<b>CT & contrast</b>"
        status, uid = modality.create(step)
        assert status.Status == 0x0000
        r = desk.http.get("/ui/worklist?date=")
        assert r.status_code == 200
        task_row = r.text.split('<tr data-task="', 1)[1].split('"', 1)[0]
        order_url = desk.http.get(f"/ui/task/{task_row}").headers["location"].split("#")[0]

        html = desk.http.get(order_url).text
        assert f"Task/{task_row}" in html and "t-in-progress" in html
        performed = _section(html, "h-performed")
        assert "p-in-progress" in performed and "PPS ID PPS1" in performed
        assert "<td>CT</td><td>CT1</td>" in performed
        assert "2030-01-01T09:05" in performed
        assert "&lt;b&gt;CT &amp; contrast&lt;/b&gt;" in performed and "<b>CT" not in performed

        assert modality.set(uid, final("COMPLETED", series=2, images=3)).Status == 0x0000
    finally:
        modality.close()

    html = desk.http.get(order_url).text
    assert "t-completed" in html
    performed = _section(html, "h-performed")
    assert "p-completed" in performed and "T09:20" in performed
    assert '<td class="num">2</td><td class="num">6</td>' in performed

    _wait(lambda: len(pacs.received) >= 2)  # the roll-up to completed: XO with ORC-5 CM
    outbound = _section(desk.http.get(order_url).text, "h-outbound")
    assert control_id in outbound and "procedure-scheduled" in outbound
    assert "procedure-updated" in outbound
    pacs_rows = [row for row in outbound.split("<tr>")[2:] if "<td>pacs</td>" in row]
    assert pacs_rows and all("o-accepted" in r and "a-AA" in r for r in pacs_rows)
    ris_rows = [row for row in outbound.split("<tr>")[2:] if "<td>ris</td>" in row]
    assert ris_rows and "o-pending" in ris_rows[0]

    def ris_failed() -> bool:
        return "ConnectionRefusedError" in desk.http.get("/ui/status").text

    _wait(ris_failed)
    status_page = _section(desk.http.get("/ui/status").text, "h-outbound")
    rows = {r.split("</th>")[0]: r for r in status_page.split('<th scope="row">')[1:]}
    assert set(rows) == {"pacs", "ris"}
    counts = {name: [int(n) for n in NUM.findall(row)] for name, row in rows.items()}
    assert counts["pacs"][:2] == [0, 0] and counts["pacs"][2] >= 2  # pending, rejected, accepted
    assert counts["ris"][0] >= 2 and counts["ris"][2] == 0
    assert "ConnectionRefusedError" in rows["ris"]


def test_the_desk_without_destinations_or_performed_steps(desk: Desk) -> None:
    message, _, _ = omi("ROE^RICHARD", today())
    desk.send_ok(message)
    task = desk.http.get("/ui/worklist").text.split('<tr data-task="', 1)[1].split('"', 1)[0]
    html = desk.http.get(desk.http.get(f"/ui/task/{task}").headers["location"]).text
    assert "No performed procedure step reported" in _section(html, "h-performed")
    assert "No HL7 message was sent about this order" in _section(html, "h-outbound")
    assert "No HL7 destination configured" in desk.http.get("/ui/status").text
