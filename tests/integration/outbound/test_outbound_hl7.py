"""Outbound HL7 v2 to a real MLLP receiver: RAD-4 NW, RAD-13 XO and CA, order status, retries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirmwl.fhir import model
from fhirmwl.mllp import MLLPClient
from fhirmwl.runtime import Runtime
from tests.conftest import running_broker
from tests.integration.orders.conftest import order_bundle
from tests.integration.outbound.conftest import Receiver, orc, segment

ORM = (
    "MSH|^~\\&|RIS|HOSP|BROKER|HOSP|20250101120000||ORM^O01|MSG0001|P|2.3.1||||||8859/1\r"
    "PID|||PAT001^^^HOSP||DOE^JANE||19800101|F\r"
    "PV1||O|RAD^^^HOSP|||||REF01^SMITH^JOHN|||||||||||VIS001^^^HOSP\r"
    "ORC|NW|PLC001^RIS|FIL001^BROKER||SC||^^^20300102090000^^R||20250101115500\r"
    "OBR|1|PLC001^RIS|FIL001^BROKER|CTABD^CT Abdomen^LOCAL^P1^CT abdomen^LOCAL||||||||||||"
    "ORD01^JONES^AMY||ACC0001|RP0001|SPS0001||||CT\r"
    "ZDS|1.2.826.0.1.3680043.10.999.1^BROKER^Application^DICOM\r"
)


def destination(port: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "pacs", "host": "127.0.0.1", "port": port, **extra}]


@pytest.fixture
def broker(db_url: str, catalogue_file: Path, receiver: Receiver) -> Iterator[Runtime]:
    with running_broker(
        db_url,
        mllp=True,
        catalogue=str(catalogue_file),
        hl7_destinations=destination(receiver.port),
    ) as runtime:
        yield runtime


def _api(runtime: Runtime) -> httpx.Client:
    return httpx.Client(base_url=runtime.settings.fhir_base, timeout=30)


def test_http_order_scheduled_rescheduled_cancelled(broker: Runtime, receiver: Receiver) -> None:
    with _api(broker) as api:
        created = api.post("/$create-order", json=order_bundle())
        assert created.status_code == 201, created.text
        isr_id = created.headers["X-Order-Id"]
        [nw] = receiver.wait_for(1)
        assert segment(nw, "MSH")[8] == "OMI^O23^OMI_O23"
        assert orc(nw) == [("NW", "SC")]
        isr = api.get(f"/ServiceRequest/{isr_id}").json()
        task = api.get("/Task").json()["entry"][0]["resource"]
        ipc = segment(nw, "IPC")
        assert ipc[1] == model.identifier_of_type(isr, model.ACSN)["value"]
        assert ipc[4] == model.identifier_of_type(task, model.SPSID)["value"]
        assert (ipc[5].split("^")[0], ipc[9]) == ("CT", "CT1")
        assert segment(nw, "TQ1")[7] == "20300101090000+0000"

        moved = dict(task, requestedPeriod={"start": "2030-01-02T10:00:00Z"})
        url = f"Task/{task['id']}"
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"resource": moved, "request": {"method": "PUT", "url": url}}],
        }
        assert api.post(f"/ServiceRequest/{isr_id}/$update-order", json=bundle).status_code == 200
        xo = receiver.wait_for(2)[1]
        assert orc(xo) == [("XO", "SC")]
        assert segment(xo, "TQ1")[7] == "20300102100000+0000"

        assert api.post(f"/ServiceRequest/{isr_id}/$cancel-order").status_code == 200
        ca = receiver.wait_for(3)[2]
        assert orc(ca) == [("CA", "CA")]
    controls = [int(segment(m, "MSH")[9]) for m in receiver.messages()]
    assert controls == sorted(controls) and len(receiver.messages()) == 3


def test_order_received_over_hl7_is_forwarded(broker: Runtime, receiver: Receiver) -> None:
    async def send() -> bytes:
        async with MLLPClient("127.0.0.1", broker.settings.mllp_port) as client:
            return await client.send(ORM.encode("latin-1"))

    ack = asyncio.run(send())
    assert b"MSA|AA" in ack
    [nw] = receiver.wait_for(1)
    assert orc(nw) == [("NW", "SC")]
    ipc = segment(nw, "IPC")
    assert ipc[1:5] == ["ACC0001", "RP0001", "1.2.826.0.1.3680043.10.999.1", "SPS0001"]
    assert segment(nw, "PID")[3].startswith("PAT001")


def _order(api: httpx.Client) -> str:
    r = api.post("/$create-order", json=order_bundle())
    assert r.status_code == 201, r.text
    return str(r.headers["X-Order-Id"])


def test_receiver_down_at_first_gets_everything_in_order(db_url: str, catalogue_file: Path) -> None:
    late = Receiver()  # its port is free: nothing listens yet
    with running_broker(
        db_url, catalogue=str(catalogue_file), hl7_destinations=destination(late.port)
    ) as runtime:
        with _api(runtime) as api:
            ids = [_order(api) for _ in range(3)]
            api.post(f"/ServiceRequest/{ids[0]}/$cancel-order")
        late.start()
        try:
            got = late.wait_for(4, timeout=40)
        finally:
            late.stop()
    assert [orc(m)[0] for m in got] == [("NW", "SC")] * 3 + [("CA", "CA")]
    placers = [segment(m, "ORC")[2] for m in got]
    assert len(set(placers[:3])) == 3 and placers[3] == placers[0]


def test_refused_message_is_logged_not_retried_forever(
    tmp_path: Path, catalogue_file: Path
) -> None:
    from typer.testing import CliRunner

    from fhirmwl.cli import app

    refusing = Receiver(answer="AE").start()
    db = f"sqlite:///{tmp_path / 'out.db'}"
    dest = destination(refusing.port, max_attempts=2, message_type="ORM^O01")
    try:
        with running_broker(db, catalogue=str(catalogue_file), hl7_destinations=dest) as runtime:
            with _api(runtime) as api:
                _order(api)
                _order(api)
            got = refusing.wait_for(4, timeout=30)  # 2 attempts each, then the next message
    finally:
        refusing.stop()
    assert [segment(m, "MSH")[8] for m in got] == ["ORM^O01^ORM_O01"] * 4
    assert [segment(m, "MSH")[9] for m in got][1] == [segment(m, "MSH")[9] for m in got][0]
    assert segment(got[0], "ZDS")[1].endswith("^FHIRMWL^Application^DICOM")
    result = CliRunner().invoke(app, ["v2", "log", "--outbound", "--db", db])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all("rejected" in line and "AE" in line for line in lines)
    assert "refused by test" in lines[0]
    accepted = ["v2", "log", "--outbound", "--status", "accepted", "--db", db]
    none = CliRunner().invoke(app, accepted)
    assert none.exit_code == 0 and none.output.strip() == ""
    bad = CliRunner().invoke(app, ["v2", "log", "--outbound", "--status", "nonsense", "--db", db])
    assert bad.exit_code == 2


@pytest.mark.slow
def test_no_message_lost_across_kill9(db_url: str, tmp_path: Path, catalogue_file: Path) -> None:
    from tests.integration.orders.conftest import ServeProcess

    slow = Receiver(delay=0.15).start()
    config = tmp_path / "fhirmwl.toml"
    config.write_text(
        f'[[hl7_destinations]]\nname = "pacs"\nhost = "127.0.0.1"\nport = {slow.port}\n'
    )
    server = ServeProcess(db_url, catalogue_file, config=config)
    try:
        server.start()
        with httpx.Client(base_url=server.base, timeout=30) as api:
            ids = [_order(api) for _ in range(10)]
            expected = [
                model.identifier_of_type(api.get(f"/ServiceRequest/{i}").json(), model.PLAC)
                for i in ids
            ]
        slow.wait_for(3)
        server.kill9()  # mid-stream: messages built, some sent, some not acknowledged
        assert len({segment(m, "MSH")[9] for m in slow.messages()}) < 10
        server.start()
        deadline = 60.0
        got = slow.wait_for(10, timeout=deadline)
        while len({segment(m, "MSH")[9] for m in got}) < 10 and deadline > 0:
            deadline -= 1
            got = slow.wait_for(len(got) + 1, timeout=1)
    finally:
        server.stop()
        slow.stop()
    controls = [segment(m, "MSH")[9] for m in got]
    first_seen = list(dict.fromkeys(controls))
    assert len(first_seen) == 10 and first_seen == sorted(first_seen)  # repeats only re-send
    by_control = {segment(m, "MSH")[9]: segment(m, "ORC")[2].split("^")[0] for m in got}
    placers = [by_control[c] for c in first_seen]
    assert placers == [str((p or {}).get("value")) for p in expected]  # creation order
    assert all(orc(m) == [("NW", "SC")] for m in got)


def test_mpps_progress_reaches_the_order_placer(
    db_url: str, catalogue_file: Path, receiver: Receiver
) -> None:
    """MPPS IN PROGRESS / COMPLETED → step-status events → ORC-1 SC with ORC-5 IP, then CM."""
    from tests.integration.mpps.test_mpps_scp import Modality, final, in_progress

    dest = destination(receiver.port, messages=["order-status"], message_type="ORM^O01")
    with running_broker(
        db_url, dicom=True, catalogue=str(catalogue_file), hl7_destinations=dest
    ) as runtime:
        with _api(runtime) as api:
            _order(api)
        modality = Modality(runtime.settings.dicom_port)
        try:
            [item] = modality.worklist()
            status, uid = modality.create(in_progress(item))
            assert status.Status == 0
            assert modality.set(uid, final("COMPLETED")).Status == 0
        finally:
            modality.close()
        got = receiver.wait_for(2)
    assert [orc(m) for m in got] == [[("SC", "IP")], [("SC", "CM")]]


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_on_postgres_send_each_message_once_in_order(
    pg_url: str, tmp_path: Path, catalogue_file: Path, receiver: Receiver
) -> None:
    from tests.integration.orders.conftest import ServeProcess

    config = tmp_path / "fhirmwl.toml"
    config.write_text(
        f'[[hl7_destinations]]\nname = "pacs"\nhost = "127.0.0.1"\nport = {receiver.port}\n'
    )
    servers = [ServeProcess(pg_url, catalogue_file, config=config) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        clients = [httpx.Client(base_url=s.base, timeout=30) for s in servers]
        try:
            for i in range(10):
                _order(clients[i % 2])
        finally:
            for c in clients:
                c.close()
        got = receiver.wait_for(10, timeout=40)
    finally:
        for server in servers:
            server.stop()
    controls = [segment(m, "MSH")[9] for m in got]
    assert len(controls) == 10 and controls == sorted(set(controls))  # once each, in order


def test_destination_filters_by_modality(
    tmp_path: Path, catalogue_file: Path, receiver: Receiver
) -> None:
    mr_only = Receiver().start()
    dests = [
        *destination(receiver.port, modalities=["CT"]),
        {"name": "mr-pacs", "host": "127.0.0.1", "port": mr_only.port, "modalities": ["MR"]},
    ]
    db = f"sqlite:///{tmp_path / 'f.db'}"
    try:
        with running_broker(db, catalogue=str(catalogue_file), hl7_destinations=dests) as rt:
            with _api(rt) as api:
                isr_id = _order(api)  # a CT order (catalogue)
                api.post(f"/ServiceRequest/{isr_id}/$cancel-order")
            got = receiver.wait_for(2)
            from typer.testing import CliRunner

            from fhirmwl.cli import app

            args = ["v2", "log", "--outbound", "--db", db, "--order", isr_id]
            log = CliRunner().invoke(app, args)
    finally:
        mr_only.stop()
    assert [orc(m)[0][0] for m in got] == ["NW", "CA"]
    assert mr_only.received == []  # nothing for the MR destination
    assert log.exit_code == 0 and len(log.output.strip().splitlines()) == 2
    assert all(" pacs " in line and "accepted" in line for line in log.output.splitlines())
