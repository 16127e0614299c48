"""The guide's seven resource profiles as differential StructureDefinitions.

Each profile restates the draft guide's constraints (spec digest §2) with the completions that
``docs/conformance.md`` lists (I-7 identifier slices, I-8/I-11 resolvable discriminators, I-9
fixed modality input type, I-10 canonical binding, I-14 study based on the RP or the ISR).
Identifier systems and codes come from ``fhirmwl.fhir.model`` so the validator and the mappings
agree.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import (
    VS_MODALITY,
    cc_pattern,
    constraint,
    el,
    ref_type,
    slicing,
    structure_definition,
)
from fhirmwl.fhir.model import (
    ACSN,
    DCM,
    DCM_MODALITY_CODE,
    DICOM_UID_SYSTEM,
    FILL,
    PLAC,
    PROFILE_ISR,
    PROFILE_PATIENT,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_STATION,
    PROFILE_STUDY,
    PROFILE_VISIT,
    RPID,
    SPSID,
)

SNOMED = "http://snomed.info/sct"
_BY_TYPE = "identifiers are told apart by their type"


def _sh_length(key: str, what: str) -> dict[str, Any]:
    """DICOM SH values are at most 16 characters; an identifier that maps to one must fit."""
    return constraint(
        key, f"{what} maps to a DICOM SH value: at most 16 characters", "length() <= 16"
    )


def _identifier_slice(
    base: str, name: str, code: tuple[str, str], display: str, key: str | None = None
) -> list[dict[str, Any]]:
    sid = f"{base}.identifier:{name}"
    value: dict[str, Any] = {"min": 1}
    if key:
        value["constraint"] = [_sh_length(key, f"The {display}")]
    return [
        el(sid, min=1 if name == "accessionNumber" else 0, max="1", short=display),
        el(f"{sid}.type", min=1, patternCodeableConcept=cc_pattern(code[0], code[1])),
        el(f"{sid}.value", **value),
    ]


def imaging_service_request() -> dict[str, Any]:
    b = "ServiceRequest"
    elements = [
        el(f"{b}.identifier", min=1, slicing=slicing("value", "type", desc=_BY_TYPE)),
        *_identifier_slice(b, "accessionNumber", ACSN, "Accession Number (0008,0050)", "isr-1"),
        *_identifier_slice(b, "placerOrder", PLAC, "Placer Order Number (0040,2016)"),
        *_identifier_slice(b, "fillerOrder", FILL, "Filler Order Number (0040,2017)"),
        el(f"{b}.intent", fixedCode="order"),
        el(f"{b}.category", patternCodeableConcept=cc_pattern(SNOMED, "363679005", "Imaging")),
        el(f"{b}.subject", type=ref_type(PROFILE_PATIENT)),
    ]
    return structure_definition(
        "imaging-service-request",
        "ImagingServiceRequestProfile",
        "Imaging Service Request",
        b,
        "The DICOM Imaging Service Request (PS3.3 C.4.12): carries the Accession Number.",
        elements,
    )


def _based_on(b: str, name: str, profile: str, mn: int) -> list[dict[str, Any]]:
    return [el(f"{b}.basedOn:{name}", min=mn, max="1", type=ref_type(profile))]


def imaging_requested_procedure() -> dict[str, Any]:
    b = "ServiceRequest"
    elements = [
        el(f"{b}.identifier", slicing=slicing("value", "type", desc=_BY_TYPE)),
        *_identifier_slice(
            b, "requestedProcedureId", RPID, "Requested Procedure ID (0040,1001)", "rp-1"
        ),
        el(f"{b}.intent", fixedCode="order"),
        el(f"{b}.basedOn", min=1, slicing=slicing("profile", "resolve()")),
        *_based_on(b, "imagingServiceRequestRef", PROFILE_ISR, 1),
        el(f"{b}.subject", type=ref_type(PROFILE_PATIENT)),
        el(f"{b}.encounter", type=ref_type(PROFILE_VISIT)),
    ]
    return structure_definition(
        "imaging-requested-procedure",
        "ImagingRequestedProcedureProfile",
        "Imaging Requested Procedure",
        b,
        "The DICOM Requested Procedure (PS3.3 C.4.11), based on one Imaging Service Request.",
        elements,
    )


def imaging_scheduled_procedure_step() -> dict[str, Any]:
    b = "Task"
    sps1 = constraint(
        "sps-1",
        "Scheduled Procedure Step Start Date/Time (0040,0002/0003) is DICOM type 1",
        "start.exists()",
    )
    elements = [
        el(f"{b}.identifier", slicing=slicing("value", "type", desc=_BY_TYPE)),
        *_identifier_slice(b, "spsId", SPSID, "Scheduled Procedure Step ID (0040,0009)", "sps-2"),
        el(f"{b}.basedOn", min=1, slicing=slicing("profile", "resolve()")),
        *_based_on(b, "requestedProcedureRef", PROFILE_RP, 1),
        el(f"{b}.intent", fixedCode="plan"),
        el(f"{b}.code", min=1),
        el(f"{b}.code.coding", short="Scheduled Protocol Code Sequence (0040,0008)"),
        el(f"{b}.code.text", short="Scheduled Procedure Step Description (0040,0007)"),
        el(f"{b}.input", min=1, slicing=slicing("value", "type")),
        el(f"{b}.input:modality", min=1, max="1", short="Modality (0008,0060)"),
        el(
            f"{b}.input:modality.type",
            patternCodeableConcept=cc_pattern(DCM, DCM_MODALITY_CODE, "Modality"),
        ),
        el(
            f"{b}.input:modality.value[x]",
            type=[{"code": "CodeableConcept"}],
            binding={"strength": "required", "valueSet": VS_MODALITY},
        ),
        el(
            f"{b}.requestedPeriod",
            min=1,
            short="SPS Start Date / Start Time (0040,0002/0003)",
            constraint=[sps1],
        ),
        el(
            f"{b}.requestedPerformer",
            min=1,
            slicing=slicing("profile", "reference.resolve()"),
        ),
        el(
            f"{b}.requestedPerformer:scheduledStation",
            min=1,
            max="*",  # deviation: (0040,0001) is AE VM 1-n (see docs/conformance.md)
            type=ref_type(PROFILE_STATION, code="CodeableReference"),
        ),
        el(f"{b}.for", type=ref_type(PROFILE_PATIENT)),
        el(f"{b}.encounter", type=ref_type(PROFILE_VISIT)),
    ]
    return structure_definition(
        "imaging-scheduled-procedure-step",
        "ImagingScheduledProcedureStepProfile",
        "Imaging Scheduled Procedure Step",
        b,
        "The DICOM Scheduled Procedure Step (PS3.3 C.4.10): one worklist item per Task.",
        elements,
    )


def imaging_patient() -> dict[str, Any]:
    warn = constraint(
        "ipat-1",
        "Patient ID (0010,0020) is DICOM type 1: give at least one identifier with a value",
        "identifier.value.exists()",
        severity="warning",
    )
    return structure_definition(
        "imaging-patient",
        "ImagingPatientProfile",
        "Imaging Patient",
        "Patient",
        "The patient of an imaging order (PS3.3 C.2.2 / C.2.3).",
        [el("Patient", constraint=[warn])],
    )


def imaging_visit() -> dict[str, Any]:
    return structure_definition(
        "imaging-visit",
        "ImagingVisitProfile",
        "Imaging Visit",
        "Encounter",
        "The visit of an imaging order (PS3.3 C.3.2 / C.3.3).",
        [el("Encounter.subject", type=ref_type(PROFILE_PATIENT))],
    )


def scheduled_station() -> dict[str, Any]:
    b = "Device"
    aet = constraint(
        "aet-1",
        "The Scheduled Station AE Title (0040,0001) is 1 to 16 characters without a backslash",
        "length() <= 16 and contains('\\\\').not()",
    )
    return structure_definition(
        "scheduled-station",
        "ScheduledStationProfile",
        "Scheduled Station",
        b,
        "A modality or station, addressed by its DICOM AE title.",
        [
            el(f"{b}.name", min=1, slicing=slicing("value", "type")),
            el(f"{b}.name:aeTitle", min=1, max="1", short="Scheduled Station AE Title"),
            el(f"{b}.name:aeTitle.value", min=1, constraint=[aet]),
            el(f"{b}.name:aeTitle.type", fixedCode="registered-name"),
            el(f"{b}.name:stationName", min=0, max="1", short="Scheduled Station Name"),
            el(f"{b}.name:stationName.type", fixedCode="user-friendly-name"),
        ],
    )


def requested_procedure_imaging_study() -> dict[str, Any]:
    b = "ImagingStudy"
    uid = constraint(
        "study-1",
        "The Study Instance UID is written urn:oid:<DICOM UID> (at most 64 characters)",
        "matches('^urn:oid:[0-2](\\\\.(0|[1-9][0-9]*))+$') and length() <= 72",
    )
    based_on = constraint(
        "study-2",
        "basedOn references the Requested Procedure or the Imaging Service Request (at least "
        "one; both ServiceRequests, told apart by the basedOn slices)",
        "basedOn.where(type = 'ServiceRequest' or reference.startsWith('urn:') or "
        "reference.matches('(^|/)ServiceRequest/[A-Za-z0-9\\\\-\\\\.]{1,64}(/_history/.*)?$'))"
        ".exists()",
    )
    return structure_definition(
        "requested-procedure-imaging-study",
        "RequestedProcedureImagingStudyProfile",
        "Requested Procedure Imaging Study",
        b,
        "The study a Requested Procedure will produce: holds its Study Instance UID.",
        [
            el(b, constraint=[based_on]),
            el(f"{b}.status", fixedCode="registered"),
            el(f"{b}.identifier", min=1, slicing=slicing("value", "system")),
            el(f"{b}.identifier:studyInstanceUid", min=1, max="1"),
            el(f"{b}.identifier:studyInstanceUid.system", min=1, fixedUri=DICOM_UID_SYSTEM),
            el(f"{b}.identifier:studyInstanceUid.value", min=1, constraint=[uid]),
            el(f"{b}.basedOn", slicing=slicing("profile", "resolve()")),
            # I-14 revised: the guide's example points at the ISR only; either slice may carry
            # the link, study-2 requires at least one of them.
            *_based_on(b, "requestedProcedureRef", PROFILE_RP, 0),
            *_based_on(b, "imagingServiceRequestRef", PROFILE_ISR, 0),
            el(f"{b}.subject", type=ref_type(PROFILE_PATIENT)),
            el(f"{b}.encounter", type=ref_type(PROFILE_VISIT)),
        ],
    )


def resource_profiles() -> list[dict[str, Any]]:
    return [
        imaging_service_request(),
        imaging_requested_procedure(),
        imaging_scheduled_procedure_step(),
        imaging_patient(),
        imaging_visit(),
        scheduled_station(),
        requested_procedure_imaging_study(),
    ]


PROFILE_URLS = (
    PROFILE_ISR,
    PROFILE_RP,
    PROFILE_SPS,
    PROFILE_PATIENT,
    PROFILE_VISIT,
    PROFILE_STATION,
    PROFILE_STUDY,
)
