"""The registry of supported resource types and search parameters.

The CapabilityStatement, the index row builder and the search parser all read this one table, so
``/metadata`` cannot claim a parameter that is not indexed, and an indexed parameter cannot be
missing from ``/metadata``. Paths are simple dotted element paths (no FHIRPath engine on the hot
write path); a trailing ``[Type]`` keeps only references to that resource type.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhirmwl.fhir.model import CANON


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # token | string | date | reference | uri
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    definition: str | None = None
    description: str = ""
    # Served from a column of the worklist index instead of idx_* rows (values that live on
    # another resource of the step's graph, e.g. the station AE title on the Device).
    worklist_column: str | None = None
    # Date parameter whose values are instants (a scheduled start), compared as points: every
    # prefix becomes one bound on the indexed lower value, so ranges use the index.
    point: bool = False

    @property
    def url(self) -> str:
        return self.definition or f"http://hl7.org/fhir/SearchParameter/{self.name}"


def _p(
    name: str,
    type_: str,
    *paths: str,
    targets: tuple[str, ...] = (),
    ours: bool = False,
    doc: str = "",
) -> SearchParam:
    definition = f"{CANON}/SearchParameter/{name}" if ours else None
    return SearchParam(name, type_, paths, targets, definition, doc)


_PATIENT = ("Patient",)
_SR = ("ServiceRequest",)

SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {}


def _register(resource_type: str, *params: SearchParam) -> None:
    SEARCH_PARAMS[resource_type] = {p.name: p for p in params}


_register(
    "Patient",
    _p("identifier", "token", "identifier"),
    _p("name", "string", "name"),
    _p("family", "string", "name.family"),
    _p("given", "string", "name.given"),
    _p("birthdate", "date", "birthDate"),
    _p("gender", "token", "gender"),
    _p("active", "token", "active"),
    _p("link", "reference", "link.other", targets=_PATIENT),
)
_register(
    "Encounter",
    _p("identifier", "token", "identifier"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("status", "token", "status"),
    _p("class", "token", "class"),
    _p("date", "date", "actualPeriod"),
    _p("location", "reference", "location.location", targets=("Location",)),
)
_register(
    "ServiceRequest",
    _p("identifier", "token", "identifier"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("encounter", "reference", "encounter", targets=("Encounter",)),
    _p("status", "token", "status"),
    _p("intent", "token", "intent"),
    _p("priority", "token", "priority"),
    _p("category", "token", "category"),
    _p("code", "token", "code.concept"),
    _p("based-on", "reference", "basedOn", targets=("ServiceRequest", "CarePlan")),
    _p(
        "requester",
        "reference",
        "requester",
        targets=("Practitioner", "PractitionerRole", "Organization", "Patient", "Device"),
    ),
    _p(
        "performer",
        "reference",
        "performer",
        targets=("Practitioner", "PractitionerRole", "Organization", "Device"),
    ),
    _p("authored", "date", "authoredOn"),
    _p("occurrence", "date", "occurrenceDateTime", "occurrencePeriod"),
    _p("profile", "uri", "meta.profile"),
)
_register(
    "Task",
    _p("identifier", "token", "identifier"),
    _p("status", "token", "status"),
    _p("intent", "token", "intent"),
    _p("priority", "token", "priority"),
    _p("code", "token", "code"),
    _p("business-status", "token", "businessStatus"),
    _p("subject", "reference", "for", targets=_PATIENT),
    _p("patient", "reference", "for[Patient]", targets=_PATIENT),
    _p("encounter", "reference", "encounter", targets=("Encounter",)),
    _p("based-on", "reference", "basedOn", targets=_SR),
    _p("focus", "reference", "focus", targets=_SR),
    _p("part-of", "reference", "partOf", targets=("Task",)),
    _p(
        "owner",
        "reference",
        "owner",
        targets=("Practitioner", "PractitionerRole", "Organization", "Device"),
    ),
    _p(
        "requested-performer-reference",
        "reference",
        "requestedPerformer.reference",
        targets=("Device", "Practitioner", "PractitionerRole", "Organization"),
    ),
    _p("authored-on", "date", "authoredOn"),
    _p("period", "date", "executionPeriod"),
    SearchParam(
        "requested-period",
        "date",
        ("requestedPeriod.start",),
        definition=f"{CANON}/SearchParameter/requested-period",
        description="Scheduled Procedure Step start (Task.requestedPeriod.start), as an instant",
        point=True,
    ),
    _p(
        "modality",
        "token",
        "input.valueCodeableConcept",
        ours=True,
        doc="Modality of the scheduled step (Task.input[modality].valueCodeableConcept)",
    ),
    SearchParam(
        "station-aet",
        "token",
        (),
        definition=f"{CANON}/SearchParameter/station-aet",
        description="Scheduled Station AE Title (0040,0001), from the worklist index",
        worklist_column="station_aet",
    ),
    _p("profile", "uri", "meta.profile"),
)
_register(
    "Device",
    _p("identifier", "token", "identifier"),
    _p("name", "string", "name.value"),
    _p("status", "token", "status"),
    _p("type", "token", "type"),
    _p("location", "reference", "location", targets=("Location",)),
)
_register(
    "ImagingStudy",
    _p("identifier", "token", "identifier"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("encounter", "reference", "encounter", targets=("Encounter",)),
    _p("based-on", "reference", "basedOn", targets=("ServiceRequest", "Task")),
    _p("status", "token", "status"),
    _p("started", "date", "started"),
    _p("modality", "token", "modality"),
)
_register(  # performed procedure steps (MPPS), docs/dicom-conformance.md
    "Procedure",
    _p("identifier", "token", "identifier"),
    _p("status", "token", "status"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("based-on", "reference", "basedOn", targets=_SR),
    _p("date", "date", "occurrencePeriod"),
)
_register(
    "Practitioner",
    _p("identifier", "token", "identifier"),
    _p("name", "string", "name"),
    _p("family", "string", "name.family"),
    _p("given", "string", "name.given"),
)
_register(
    "PractitionerRole",
    _p("identifier", "token", "identifier"),
    _p("practitioner", "reference", "practitioner", targets=("Practitioner",)),
    _p("organization", "reference", "organization", targets=("Organization",)),
    _p("role", "token", "code"),
)
_register(
    "Organization",
    _p("identifier", "token", "identifier"),
    _p("name", "string", "name"),
)
_register(
    "Location",
    _p("identifier", "token", "identifier"),
    _p("name", "string", "name"),
    _p("status", "token", "status"),
)
# Patient-level clinical content of the worklist item (Medical Alerts, Allergies, Pregnancy
# Status, Weight, Size — docs/resource-model.md "Clinical content").
_register(
    "AllergyIntolerance",
    _p("identifier", "token", "identifier"),
    _p("patient", "reference", "patient", targets=_PATIENT),
    _p("clinical-status", "token", "clinicalStatus"),
    _p("verification-status", "token", "verificationStatus"),
    _p("code", "token", "code"),
)
_register(
    "Flag",
    _p("identifier", "token", "identifier"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("status", "token", "status"),
    _p("category", "token", "category"),
    _p("code", "token", "code"),
)
_register(
    "Observation",
    _p("identifier", "token", "identifier"),
    _p("subject", "reference", "subject", targets=_PATIENT),
    _p("patient", "reference", "subject[Patient]", targets=_PATIENT),
    _p("status", "token", "status"),
    _p("code", "token", "code"),
    _p("date", "date", "effectiveDateTime", "effectivePeriod", "issued"),
)
_register(
    "Subscription",
    _p("status", "token", "status"),
    _p("topic", "uri", "topic"),
)

RESOURCE_TYPES: tuple[str, ...] = tuple(SEARCH_PARAMS)

# Parameters every type understands (handled by the store directly, not through index rows).
COMMON_PARAMS = ("_id", "_lastUpdated")

# Result parameters: they shape the answer, they do not filter.
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_offset",
        "_sort",
        "_include",
        "_revinclude",
        "_total",
        "_summary",
        "_elements",
        "_format",
        "_pretty",
    }
)


def param_for(resource_type: str, name: str) -> SearchParam | None:
    return SEARCH_PARAMS.get(resource_type, {}).get(name)
