"""Operations and search parameters we publish (spec digest §4.3, issues I-5 and I-3).

The guide's OperationDefinitions use ``http://tbd/…`` URLs, names with spaces and a cancel
operation without input; these are the completed versions the API implements. ``mwl-query`` is
the FHIR worklist query of the guide's use case 2 (inputs named by DICOM keyword).
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_bundles import PROFILE_CREATE_ORDER_BUNDLE, PROFILE_ORDER_BUNDLE
from fhirmwl.conformance.defs_common import meta

# DICOM keyword → VR for the $mwl-query inputs (DICOM matching syntax passed verbatim).
MWL_QUERY_KEYS: dict[str, str] = {
    "ScheduledStationAETitle": "AE",
    "ScheduledStationName": "SH",
    "ScheduledProcedureStepStartDate": "DA",
    "ScheduledProcedureStepStartTime": "TM",
    "Modality": "CS",
    "ScheduledPerformingPhysicianName": "PN",
    "ScheduledProcedureStepID": "SH",
    "ScheduledProcedureStepLocation": "SH",
    "ScheduledProcedureStepStatus": "CS",
    "PatientID": "LO",
    "IssuerOfPatientID": "LO",
    "PatientName": "PN",
    "PatientBirthDate": "DA",
    "PatientSex": "CS",
    "AccessionNumber": "SH",
    "RequestedProcedureID": "SH",
    "StudyInstanceUID": "UI",
    "AdmissionID": "LO",
    "ReferringPhysicianName": "PN",
}


def _param(name: str, use: str, mn: int, mx: str, ptype: str, doc: str, **extra: Any):
    out: dict[str, Any] = {
        "name": name,
        "use": use,
        "min": mn,
        "max": mx,
        "documentation": doc,
        "type": ptype,
    }
    out.update(extra)
    return out


def _opdef(rid: str, name: str, title: str, description: str, **flags: Any) -> dict[str, Any]:
    op = meta("OperationDefinition", rid, name, title, description)
    op.update({"kind": "operation", "code": rid, "affectsState": True})
    op.update({"system": False, "type": False, "instance": False})
    op.update(flags)
    return op


def _order_in(doc: str) -> dict[str, Any]:
    return _param("order", "in", 1, "1", "Bundle", doc, targetProfile=[PROFILE_CREATE_ORDER_BUNDLE])


def _order_out(doc: str) -> dict[str, Any]:
    return _param("return", "out", 1, "1", "Bundle", doc, targetProfile=[PROFILE_ORDER_BUNDLE])


def create_order() -> dict[str, Any]:
    return _opdef(
        "create-order",
        "CreateOrder",
        "Create an imaging order",
        "Creates an order graph in one transaction; assigns Accession Number, Requested "
        "Procedure IDs, SPS IDs and Study Instance UIDs when absent (RAD-2/RAD-4 NW).",
        system=True,
        parameter=[
            _order_in("Transaction Bundle: 1 ISR, 1..* RP, 0..* Task and their context."),
            _order_out("The persisted order graph, including server-created Tasks and studies."),
        ],
    )


def update_order() -> dict[str, Any]:
    return _opdef(
        "update-order",
        "UpdateOrder",
        "Change an imaging order",
        "Replaces the resources of an order while none of its steps has started "
        "(RAD-13 XO); otherwise 409 with an OperationOutcome (business-rule).",
        instance=True,
        resource=["ServiceRequest"],
        parameter=[
            _order_in("Transaction Bundle with the changed resources of the order graph."),
            _order_out("The order graph after the change."),
        ],
    )


def cancel_order() -> dict[str, Any]:
    reason = _param(
        "reason", "in", 0, "1", "CodeableConcept", "Why the order is cancelled (ORC-16)."
    )
    outcome = _param("outcome", "out", 0, "1", "OperationOutcome", "Warnings, e.g. discontinued.")
    bundle = _param(
        "bundle",
        "out",
        0,
        "1",
        "Bundle",
        "The order graph after the cancel.",
        targetProfile=[PROFILE_ORDER_BUNDLE],
    )
    return _opdef(
        "cancel-order",
        "CancelOrder",
        "Cancel an imaging order",
        "Revokes the Imaging Service Request and its Requested Procedures and cancels the "
        "steps that have not started (RAD-2/RAD-13 CA; DC when a step already started).",
        instance=True,
        resource=["ServiceRequest"],
        parameter=[reason, bundle, outcome],
    )


def mwl_query() -> dict[str, Any]:
    params = [
        _param(key, "in", 0, "1", "string", f"DICOM {key} ({vr}) with DICOM matching syntax.")
        for key, vr in MWL_QUERY_KEYS.items()
    ]
    params.append(_param("_count", "in", 0, "1", "integer", "Page size."))
    params.append(
        _param("return", "out", 1, "1", "Bundle", "Searchset: one Task per step + context.")
    )
    return _opdef(
        "mwl-query",
        "MwlQuery",
        "FHIR Modality Worklist query",
        "Worklist query with C-FIND matching semantics; inputs are named by DICOM keyword.",
        affectsState=False,
        type=True,
        resource=["Task"],
        parameter=params,
    )


def _search_param(code: str, ptype: str, expression: str, description: str) -> dict[str, Any]:
    name = "".join(part.capitalize() for part in code.split("-"))
    sp = meta("SearchParameter", code, f"Task{name}", f"Task {code}", description)
    sp.update(
        {
            "code": code,
            "base": ["Task"],
            "type": ptype,
            "expression": expression,
            "processingMode": "normal",
        }
    )
    return sp


def search_parameters() -> list[dict[str, Any]]:
    return [
        _search_param(
            "requested-period",
            "date",
            "Task.requestedPeriod.start",
            "Scheduled Procedure Step start (0040,0002/0003) as an instant: prefixes compare the"
            " start itself (ge/lt bound it), not the open-ended period",
        ),
        _search_param(
            "modality",
            "token",
            "Task.input.where(type.coding.where(code = '121139').exists())"
            ".value.ofType(CodeableConcept)",
            "Modality (0008,0060) of the scheduled step",
        ),
        _search_param(
            "station-aet",
            "token",
            "Task.requestedPerformer.reference.resolve().ofType(Device)"
            ".name.where(type = 'registered-name').value",
            "Scheduled Station AE Title (0040,0001) of the requested performer Device",
        ),
    ]


def operation_definitions() -> list[dict[str, Any]]:
    return [create_order(), update_order(), cancel_order(), mwl_query()]
