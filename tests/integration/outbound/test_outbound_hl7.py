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
