"""The scope rules of docs/auth.md, one row each: grammar, request → needs, and the decision."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from fhirmwl.errors import BadRequest
from fhirmwl.security.access import (
    Confinement,
    Forbidden,
    classify,
    dicomweb_access,
    names_patient,
    patient_filter,
)
from fhirmwl.security.scopes import Scope, authorize, parse_scope, parse_scopes, within

PARSE = [
    ("system/Task.rs", Scope("system", "Task", "rs")),
    ("system/*.cruds", Scope("system", "*", "cruds")),
    ("user/ServiceRequest.cu", Scope("user", "ServiceRequest", "cu")),
    ("patient/*.rs", Scope("patient", "*", "rs")),
    ("system/*.read", Scope("system", "*", "rs")),  # SMART v1
    ("user/Task.write", Scope("user", "Task", "cud")),  # SMART v1
    ("patient/Patient.*", Scope("patient", "Patient", "cruds")),  # SMART v1
    ("system/Task.sr", None),  # v2 letters must keep the order c r u d s
    ("system/Task.rx", None),
    ("system/Task.", None),
    ("system/Task.rs?status=ready", None),  # granular scopes are not granted
    ("admin/Task.rs", None),
    ("openid", None),
    ("launch/patient", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSE)
def test_parse_scope(text: str, expected: Scope | None) -> None:
    assert parse_scope(text) == expected


ORDER_WRITER = "system/ServiceRequest.c system/Task.c system/ImagingStudy.c system/Patient.c " + (
    "system/Encounter.c"
)
# (granted scopes, method, path, query, allowed, missing scope named in the 403)
RULES = [
    # system/Task.rs: read and search Tasks, nothing else
    ("system/Task.rs", "GET", "Task", "", True, None),
    ("system/Task.rs", "POST", "Task/_search", "", True, None),
    ("system/Task.rs", "GET", "Task/t1", "", True, None),
    ("system/Task.rs", "GET", "Task/t1/_history", "", True, None),
    ("system/Task.rs", "GET", "Task/t1/_history/2", "", True, None),
    ("system/Task.rs", "HEAD", "Task/t1", "", True, None),
    ("system/Task.rs", "POST", "Task", "", False, "system/Task.c"),
    ("system/Task.rs", "PUT", "Task/t1", "", False, "system/Task.u"),
    ("system/Task.rs", "DELETE", "Task/t1", "", False, "system/Task.d"),
    ("system/Task.rs", "DELETE", "Task", "status=requested", False, "system/Task.d"),
    ("system/Task.rs", "GET", "Patient", "", False, "system/Patient.s"),
    ("system/Task.rs", "GET", "Patient/p1", "", False, "system/Patient.r"),
    ("system/Task.rs", "GET", "Task", "_include=Task:patient", False, "system/Patient.r"),
    ("system/Task.rs", "GET", "Task", "_revinclude=Subscription:x", False, "system/Subscription.r"),
    ("system/Task.rs system/Patient.r", "GET", "Task", "_include=Task:patient", True, None),
    ("system/Task.rs", "GET", "Task", "patient.name=Rossi", False, "system/Patient.s"),
    ("system/Task.rs", "GET", "Task", "subject:Patient.name=Rossi", False, "system/Patient.s"),
    ("system/Task.rs system/Patient.s", "GET", "Task", "patient.name=Rossi", True, None),
    ("system/Patient.rs", "GET", "Patient", "_has:Task:patient:status=ready", 0, "system/Task.s"),
    ("system/Patient.rs system/Task.s", "GET", "Patient", "_has:Task:patient:status=x", 1, 0),
    ("system/Task.rs", "GET", "Task", "status=ready&_count=5&_sort=-_lastUpdated", True, None),
    ("system/Task.rs", "GET", "_history", "", False, "system/*.r"),
    ("system/Task.rs", "GET", "Task/$mwl-query", "", True, None),
    ("system/Task.rs", "POST", "$create-order", "", False, "system/ServiceRequest.c"),
    ("system/Task.s", "GET", "Task/t1", "", False, "system/Task.r"),
    ("system/Task.r", "GET", "Task", "", False, "system/Task.s"),
    # system/*.cruds: everything except writing Subscriptions, which need their own scope
    ("system/*.cruds", "POST", "Task", "", True, None),
    ("system/*.cruds", "DELETE", "Task", "status=requested", True, None),
    ("system/*.cruds", "GET", "_history", "", True, None),
    ("system/*.cruds", "POST", "$create-order", "", True, None),
    ("system/*.cruds", "POST", "ServiceRequest/s1/$cancel-order", "", True, None),
    ("system/*.cruds", "POST", "$some-future-op", "", True, None),
    ("system/*.cruds", "GET", "Subscription/x/$status", "", True, None),
    ("system/*.cruds", "POST", "Subscription", "", False, "system/Subscription.c"),
    ("system/*.cruds", "PUT", "Subscription/x", "", False, "system/Subscription.u"),
    ("system/*.cruds", "DELETE", "Subscription/x", "", True, None),
    ("system/*.cruds system/Subscription.c", "POST", "Subscription", "", True, None),
    ("system/Subscription.c", "POST", "Subscription", "", True, None),
    # operations table
    (
        "system/ServiceRequest.c system/Task.c",
        "POST",
        "$create-order",
        "",
        0,
        "system/ImagingStudy.c",
    ),
    ("system/ServiceRequest.c", "POST", "$create-order", "", False, "system/Task.c"),
    (ORDER_WRITER, "POST", "$create-order", "", True, None),
    (
        "system/ServiceRequest.u system/Task.u",
        "POST",
        "ServiceRequest/s/$update-order",
        "",
        True,
        None,
    ),
    (
        "system/ServiceRequest.u",
        "POST",
        "ServiceRequest/s/$cancel-order",
        "",
        False,
        "system/Task.u",
    ),
    ("system/Subscription.r", "GET", "Subscription/x/$events", "", True, None),
    ("system/Task.rs", "POST", "Task/$validate", "", True, None),
    ("system/Task.cruds", "POST", "Task/$unknown-op", "", True, None),
    ("system/Task.rs", "POST", "Task/$unknown-op", "", False, "system/Task.c"),
    ("system/Task.cruds", "POST", "$unknown-op", "", False, "system/*.c"),
    # conditional interactions need search too
    ("system/Task.u", "PUT", "Task", "identifier=x", False, "system/Task.s"),
    ("system/Task.cus", "PUT", "Task", "identifier=x", True, None),
    # user/ scopes act like system/ ones; SMART v1 words
    ("user/*.cruds", "DELETE", "Task/t1", "", True, None),
    ("user/Task.read", "GET", "Task", "", True, None),
    ("user/Task.read", "POST", "Task", "", False, "system/Task.c"),
    ("system/Task.write", "POST", "Task", "", True, None),
    ("system/*.*", "PUT", "Patient/p", "", True, None),
    # scopes that grant nothing
    ("openid fhirUser", "GET", "Task", "", False, "system/Task.s"),
    ("system/Task.rs?status=ready", "GET", "Task", "", False, "system/Task.s"),
    # public
    ("", "GET", "metadata", "", True, None),
]


@pytest.mark.parametrize(("scopes", "method", "path", "query", "allowed", "missing"), RULES)
def test_scope_rules(
    scopes: str, method: str, path: str, query: str, allowed: bool, missing: str | None | int
) -> None:
    access = classify(method, [p for p in path.split("/") if p], parse_qsl(query))
    decision = authorize(parse_scopes(scopes), access.needs)
    assert decision.allowed is bool(allowed)
    if missing:
        assert decision.missing is not None and decision.missing.scope() == missing


def _bundle(*requests: tuple[str, str]) -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {"method": m, "url": u}} for m, u in requests],
    }


BUNDLES = [
    ("system/Task.cruds", [("POST", "Task"), ("GET", "Task?status=ready")], True, None),
    ("system/Task.cruds", [("POST", "Task"), ("DELETE", "Patient/p")], False, "system/Patient.d"),
    ("system/*.cruds", [("POST", "Subscription")], False, "system/Subscription.c"),
    ("system/*.cruds", [("POST", "$create-order"), ("PUT", "Task/t")], True, None),
    ("system/Task.rs", [], True, None),
]


@pytest.mark.parametrize(("scopes", "requests", "allowed", "missing"), BUNDLES)
def test_bundle_entries_each_checked(scopes, requests, allowed, missing) -> None:
    access = classify("POST", [], body=_bundle(*requests))
    decision = authorize(parse_scopes(scopes), access.needs)
    assert decision.allowed is allowed
    if missing:
        assert decision.missing is not None and decision.missing.scope() == missing


def test_bundle_entry_at_the_base_is_refused() -> None:
    with pytest.raises(BadRequest):
        classify("POST", [], body=_bundle(("POST", "/")))


def test_dicomweb_needs_task_search() -> None:
    assert authorize(parse_scopes("system/Task.s"), dicomweb_access().needs).allowed
    assert not authorize(parse_scopes("system/Patient.rs"), dicomweb_access().needs).allowed


# patient/ scopes: (path, query, method, result) with the token's patient "p1"
PATIENT = [
    ("Task", "", "GET", Confinement(param=("patient", "Patient/p1"))),
    ("ServiceRequest", "status=active", "GET", Confinement(param=("patient", "Patient/p1"))),
    ("Patient", "", "GET", Confinement(param=("_id", "p1"))),
    ("Patient/p1", "", "GET", None),
    ("Patient/p2", "", "GET", Forbidden),
    ("Task/t1", "", "GET", Confinement(element="for", reference="Patient/p1")),
    ("ImagingStudy/s1", "", "GET", Confinement(element="subject", reference="Patient/p1")),
    ("Task/t1/_history", "", "GET", Forbidden),
    ("Device/d1", "", "GET", Forbidden),  # no patient compartment
    ("Device", "", "GET", Forbidden),
    ("Task", "_include=Task:owner", "GET", Forbidden),
    ("Task", "", "POST", Forbidden),
    ("Task/t1", "", "PUT", Forbidden),
]


@pytest.mark.parametrize(("path", "query", "method", "expected"), PATIENT)
def test_patient_compartment(path: str, query: str, method: str, expected: object) -> None:
    access = classify(method, path.split("/"), parse_qsl(query))
    decision = authorize(parse_scopes("patient/*.cruds"), access.needs)
    assert decision.allowed and decision.patient_only
    if expected is Forbidden:
        with pytest.raises(Forbidden):
            patient_filter(access, "p1")
    else:
        assert patient_filter(access, "p1") == expected


NAMES = [
    ({"resourceType": "Task", "for": {"reference": "Patient/p1"}}, "for", True),
    ({"resourceType": "Task", "for": {"reference": "Patient/p2"}}, "for", False),
    ({"resourceType": "Task"}, "for", False),
    ({"resourceType": "Task", "for": "Patient/p1"}, "for", False),
    ([], "for", False),
]


@pytest.mark.parametrize(("resource", "element", "expected"), NAMES)
def test_names_patient(resource: object, element: str, expected: bool) -> None:
    assert names_patient(resource, element, "Patient/p1") is expected


def test_patient_scope_without_patient_claim_is_refused() -> None:
    access = classify("GET", ["Task"])
    with pytest.raises(Forbidden, match="patient claim"):
        patient_filter(access, None)


def test_system_scope_beats_patient_scope() -> None:
    decision = authorize(
        parse_scopes("patient/*.rs system/Task.rs"), classify("GET", ["Task"]).needs
    )
    assert decision.allowed and not decision.patient_only


WITHIN = [
    ("system/Task.rs", "system/*.cruds", True),
    ("system/Task.rs", "system/Task.r", False),
    ("user/Task.rs", "system/*.cruds", False),
    ("system/Subscription.c", "system/*.cruds", False),  # Subscription writes are named
    ("system/Subscription.c", "system/Subscription.cruds", True),
    ("system/Subscription.r", "system/*.cruds", True),
    ("system/*.rs", "system/Task.rs", False),
]


@pytest.mark.parametrize(("requested", "registered", "ok"), WITHIN)
def test_requested_scope_within_registration(requested: str, registered: str, ok: bool) -> None:
    wanted = parse_scope(requested)
    assert wanted is not None
    assert within(wanted, parse_scopes(registered)) is ok
