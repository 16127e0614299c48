"""C-FIND's access rules on the HTTP worklist forms: for the same peer, C-FIND, ``$mwl-query``
(DICOM JSON and Bundle), the DICOMweb MWL-RS and UPS-RS searches return the same steps, and a
peer C-FIND would not admit is refused over HTTP too (docs/worklist-query.md §4).

A running broker with ``dicom_restrict_station`` and ``[[dicom_peers]]`` is loaded with the
generated worklist (4 stations); once without authentication (the peer names its title in
``X-Calling-AE-Title``), once with bearer tokens of an external issuer (the title is the one
``http_clients`` binds to the token's client)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind
from tests.conftest import running_broker
from tests.integration.security.keys import ISSUER, Signer, access_claims
from wlq_worklist import steps, transactions

from fhirmwl.runtime import Runtime

DOC = Path(__file__).resolve().parents[3] / "docs" / "worklist-query.md"
# The TOML example of docs/worklist-query.md §4, as written.
(PEERS,) = [
    b for b in re.findall(r"```toml\n(.*?)```", DOC.read_text("utf-8"), re.S) if "http_clients" in b
]
ANONYMOUS_PEERS = PEERS.replace('http_clients = ["mr01-app", "gateway"]\n', "").replace(
    'http_clients = ["ct01-app"]\n', ""
)
SPS_TAG, SPS_ID_TAG = "00400100", "00400009"
WEB = "/dicomweb/modality-scheduled-procedure-steps"
# (station key of the query, modality key): own station, none, a wildcard, another station
QUERIES = [("", ""), ("{own}", ""), ("*01", ""), ("CT02", ""), ("", "MR")]


def _expected(title: str, station: str, modality: str) -> set[str]:
    if station not in ("", "{own}", "*01"):
        return set()  # another station: C-FIND answers nothing
    return {
        s.sps_id for s in steps() if s.station == title and (not modality or s.modality == modality)
    }


def _c_find(port: int, calling: str, station: str, modality: str) -> set[str] | None:
    ae = AE(ae_title=calling)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="FHIRMWL")
    if not assoc.is_established:
        return None
    ds = Dataset()
    ds.PatientName = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.Modality = modality
    sps.ScheduledProcedureStepID = ""
    ds.ScheduledProcedureStepSequence = [sps]
    found = set()
    try:
        for status, item in assoc.send_c_find(ds, ModalityWorklistInformationFind):
            assert status is not None
            if status.Status in (0xFF00, 0xFF01):
                found.add(str(item.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID))
            else:
                assert status.Status == 0x0000, hex(status.Status)
    finally:
        assoc.release()
    return found


def _sps_ids(items: list[dict[str, Any]]) -> set[str]:
    return {str(i[SPS_TAG]["Value"][0][SPS_ID_TAG]["Value"][0]) for i in items}


def _http_forms(
    http: httpx.Client, base: str, headers: dict[str, str], station: str, modality: str
) -> dict[str, set[str] | int]:
    """The SPS IDs each HTTP form answers, or its status code when it refuses."""
    params = {"_count": "1000"}
    if station:
        params["ScheduledStationAETitle"] = station
    if modality:
        params["Modality"] = modality
    out: dict[str, set[str] | int] = {}
    r = http.get(
        "/Task/$mwl-query", params=params, headers=headers | {"Accept": "application/dicom+json"}
    )
    out["mwl-query dicom+json"] = _sps_ids(r.json()) if r.status_code == 200 else r.status_code
    r = http.post("/Task/$mwl-query", data=params, headers=headers)
    if r.status_code == 200:
        tasks = [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]
        out["mwl-query Bundle"] = {t["identifier"][0]["value"] for t in tasks}
    else:
        out["mwl-query Bundle"] = r.status_code
    web = {k: v for k, v in params.items() if k != "_count"}
    web = {("00400100." + k if k != "_count" else k): v for k, v in web.items()}
    r = http.get(f"{base}{WEB}", params=web, headers=headers)
    out["dicomweb"] = (
        _sps_ids(r.json())
        if r.status_code == 200
        else set()
        if r.status_code == 204
        else r.status_code
    )
    return out


def _load(runtime: Runtime, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=runtime.settings.fhir_base, timeout=60, headers=headers) as c:
        for bundle in transactions(steps()):
            r = c.post("", json=bundle)
            assert r.status_code == 200, r.text[:500]


@pytest.fixture
def anonymous(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    config = tmp_path / "fhirmwl.toml"
    config.write_text(ANONYMOUS_PEERS)
    with running_broker(db_url, dicom=True, config=config, timezone="UTC") as runtime:
        _load(runtime, {})
        yield runtime


def test_same_answer_for_the_same_peer_without_authentication(anonymous: Runtime) -> None:
    base = anonymous.settings.fhir_base.removesuffix("/fhir")
    port = anonymous.settings.dicom_port
    with httpx.Client(base_url=anonymous.settings.fhir_base, timeout=60) as http:
        for title in ("CT01", "MR01"):
            for station, modality in QUERIES:
                key = station.format(own=title)
                expected = _expected(title, station, modality)
                assert _c_find(port, title, key, modality) == expected
                answers = _http_forms(http, base, {"X-Calling-AE-Title": title}, key, modality)
                assert answers == dict.fromkeys(answers, expected), (title, station, modality)
            assert _expected(title, "", ""), "the generated worklist has steps on every station"
        # a title no rule admits (C-FIND: association rejected) and no title at all: 403
        assert _c_find(port, "CT02", "", "") is None
        for headers in ({"X-Calling-AE-Title": "CT02"}, {}):
            answers = _http_forms(http, base, headers, "", "")
            assert answers == dict.fromkeys(answers, 403)
        r = http.get("/Task/$mwl-query", headers={"X-Calling-AE-Title": "CT02"})
        assert "no [[dicom_peers]] rule admits AE title 'CT02'" in r.text
        r = http.get(f"{base}/dicomweb/workitems", headers={"X-Calling-AE-Title": "CT02"})
        assert r.status_code == 403
        ups = http.get(f"{base}/dicomweb/workitems", headers={"X-Calling-AE-Title": "MR01"})
        codes = {i["00404025"]["Value"][0]["00080100"]["Value"][0] for i in ups.json()}
        assert codes == {"MR01"}  # UPS-RS: the station's own workitems only
        r = http.get("/Task/$mwl-query", headers={"X-Calling-AE-Title": "CT01\\MR01"})
        assert r.status_code == 400


@pytest.fixture
def idp(tmp_path: Path) -> Signer:
    signer = Signer(tmp_path / "jwks.json")
    signer.add_key("k1", "ES256")
    return signer


@pytest.fixture
def authenticated(db_url: str, tmp_path: Path, idp: Signer) -> Iterator[Runtime]:
    config = tmp_path / "fhirmwl.toml"
    config.write_text(PEERS)
    with running_broker(
        db_url,
        dicom=True,
        config=config,
        timezone="UTC",
        auth_jwks=str(idp.path),
        auth_issuer=ISSUER,
    ) as runtime:
        writer = _bearer(runtime, idp, "ris-1", "system/*.cruds")
        _load(runtime, writer)
        yield runtime


def _bearer(
    runtime: Runtime, idp: Signer, client: str, scope: str = "system/Task.s"
) -> dict[str, str]:
    claims = access_claims(runtime.settings.fhir_base, scope, client_id=client)
    return {"Authorization": f"Bearer {idp.sign(claims, 'k1')}"}


def test_same_answer_for_the_same_peer_with_tokens(authenticated: Runtime, idp: Signer) -> None:
    base = authenticated.settings.fhir_base.removesuffix("/fhir")
    port = authenticated.settings.dicom_port
    scope = "system/Task.s system/ServiceRequest.r system/Patient.r system/Encounter.r"
    scope += " system/Device.r system/ImagingStudy.r"
    with httpx.Client(base_url=authenticated.settings.fhir_base, timeout=60) as http:
        for client, title in (("ct01-app", "CT01"), ("mr01-app", "MR01")):
            headers = _bearer(authenticated, idp, client, scope)
            for station, modality in QUERIES:
                key = station.format(own=title)
                expected = _expected(title, station, modality)
                assert _c_find(port, title, key, modality) == expected
                answers = _http_forms(http, base, headers, key, modality)
                assert answers == dict.fromkeys(answers, expected), (client, station, modality)
        ct01 = _bearer(authenticated, idp, "ct01-app", scope)
        # a title the client is not bound to, and a client bound to none: 403
        for headers in (
            ct01 | {"X-Calling-AE-Title": "MR01"},
            _bearer(authenticated, idp, "ris-1", scope),
        ):
            answers = _http_forms(http, base, headers, "", "")
            assert answers == dict.fromkeys(answers, 403)
        # a gateway bound to two titles names the one it speaks for
        gateway = _bearer(authenticated, idp, "gateway", scope)
        r = http.get("/Task/$mwl-query", headers=gateway)
        assert r.status_code == 403 and "X-Calling-AE-Title" in r.text
        answers = _http_forms(http, base, gateway | {"X-Calling-AE-Title": "US01"}, "", "")
        assert answers == dict.fromkeys(answers, _expected("US01", "", ""))
