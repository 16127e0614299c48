"""``[[dicom_peers]]`` rules: a calling AE title bound to networks and a certificate subject."""

from __future__ import annotations

import pytest

from fhirmwl.dicom.admission import PeerRule, parse_peer_rules


def test_dicom_peer_rule_matching() -> None:
    (rule,) = parse_peer_rules([{"ae_title": "CT01", "hosts": ["10.1.2.0/24"], "cert_subject": ""}])
    assert rule.admits("CT01", "10.1.2.7", None)
    assert rule.admits("CT01", "::ffff:10.1.2.7", "CN=any")  # dual-stack listener
    assert not rule.admits("CT01", "10.1.3.7", None)
    assert not rule.admits("CT02", "10.1.2.7", None)
    assert not rule.admits("CT01", "not-an-address", None)
    bound = PeerRule("MR01", (), "CN=mr01,O=Radiology")
    assert bound.admits("MR01", "192.0.2.1", "CN=mr01,O=Radiology")
    assert not bound.admits("MR01", "192.0.2.1", "CN=mr01")
    assert not bound.admits("MR01", "192.0.2.1", None)
    with pytest.raises(ValueError, match="unknown keys"):
        parse_peer_rules([{"ae_title": "CT01", "host": ["10.0.0.1"]}])
    with pytest.raises(ValueError, match="hosts"):
        parse_peer_rules([{"ae_title": "CT01", "hosts": ["10.0.0.300"]}])


def test_http_clients_bind_titles_for_http() -> None:
    (rule,) = parse_peer_rules([{"ae_title": "CT01", "http_clients": ["ct01-app"]}])
    assert rule.http_clients == ("ct01-app",)
    assert rule.admits("CT01", "192.0.2.1", None)  # C-FIND ignores http_clients
    with pytest.raises(ValueError, match="http_clients"):
        parse_peer_rules([{"ae_title": "CT01", "http_clients": "ct01-app"}])
