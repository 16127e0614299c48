"""``security.worklist_peers``: which AE title an HTTP worklist request acts as (pure)."""

from __future__ import annotations

import pytest

from fhirmwl.dicom.admission import parse_peer_rules
from fhirmwl.dicom.scp import AccessPolicy
from fhirmwl.errors import BadRequest
from fhirmwl.security.access import Forbidden
from fhirmwl.security.worklist_peers import WorklistPeers, token_client
from fhirmwl.worklist.query import SCHEDULED_STATION_AE, WorklistQuery

RULES = parse_peer_rules(
    [
        {"ae_title": "CT01", "hosts": ["10.1.0.0/16"], "http_clients": ["ct-app"]},
        {"ae_title": "MR01", "cert_subject": "CN=mr01", "http_clients": ["gw"]},
        {"ae_title": "US01", "http_clients": ["gw"]},
        {"ae_title": "CR01"},
    ]
)


def test_no_rule_no_check() -> None:
    open_ = WorklistPeers(AccessPolicy(), authenticated=False)
    assert not open_.active
    assert open_.title("192.0.2.1", None, "ANYTHING") is None
    q = WorklistQuery.from_keywords({"PatientName": "A*"})
    assert open_.narrow(q, None) is q


def test_token_client_claims() -> None:
    assert token_client({"client_id": "a", "azp": "b", "sub": "c"}) == "a"
    assert token_client({"azp": "b", "sub": "c"}) == "b"
    assert token_client({"sub": "c"}) == "c"
    assert token_client(None) is None


def test_bound_titles_with_tokens() -> None:
    peers = WorklistPeers(AccessPolicy(peers=RULES), authenticated=True)
    assert peers.title("10.1.2.3", {"client_id": "ct-app"}, None) == "CT01"
    with pytest.raises(Forbidden, match="bound to no AE title"):
        peers.title("10.2.0.1", {"client_id": "ct-app"}, None)  # outside the rule's hosts
    with pytest.raises(Forbidden, match="several"):
        peers.title("10.1.2.3", {"client_id": "gw"}, None)
    assert peers.title("10.1.2.3", {"client_id": "gw"}, "MR01") == "MR01"  # token, not cert
    with pytest.raises(Forbidden, match="not bound"):
        peers.title("10.1.2.3", {"client_id": "gw"}, "CT01")
    with pytest.raises(Forbidden):
        peers.title("10.1.2.3", {"client_id": "someone"}, "CR01")  # no http_clients: no binding


def test_declared_titles_without_authentication() -> None:
    peers = WorklistPeers(AccessPolicy(peers=RULES), authenticated=False)
    assert peers.title("192.0.2.1", None, " CR01 ") == "CR01"
    for title in ("CT01", "MR01", "US01", "XX01"):  # credentials an anonymous request lacks
        with pytest.raises(Forbidden):
            peers.title("10.1.2.3", None, title)
    with pytest.raises(Forbidden, match="X-Calling-AE-Title"):
        peers.title("10.1.2.3", None, None)
    with pytest.raises(BadRequest):
        peers.title("10.1.2.3", None, "A" * 17)
    listed = WorklistPeers(AccessPolicy(allowed_calling_aets=frozenset({"CT01"})), False)
    assert listed.title("192.0.2.1", None, "CT01") == "CT01"
    with pytest.raises(Forbidden, match="dicom_allowed_aets"):
        listed.title("192.0.2.1", None, "CT02")


def test_restriction_narrows_like_c_find() -> None:
    peers = WorklistPeers(AccessPolicy(restrict_to_own_station=True), authenticated=False)
    title = peers.title("127.0.0.1", None, "CT01")
    open_query = WorklistQuery.from_keywords({"ScheduledProcedureStepSequence.Modality": "CT"})
    narrowed = peers.narrow(open_query, title)
    assert narrowed is not None
    station = narrowed.sps_key(SCHEDULED_STATION_AE)
    assert station is not None and station.values == ("CT01",)
    other = WorklistQuery.from_keywords(
        {"ScheduledProcedureStepSequence.ScheduledStationAETitle": "MR01"}
    )
    assert peers.narrow(other, title) is None
