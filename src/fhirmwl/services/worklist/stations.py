"""Station assignment rules: which Scheduled Station AE Title a step gets when its order names no
station (the most requested feature of folder-based worklist servers).

Rules come from the TOML config, first match wins:

    [[station_rules]]
    modality = "CT"                 # Task.input[modality]
    procedure_code = "36813-4"      # RequestedProcedure.code (any coding code)
    requesting_service = "ER"       # ImagingServiceRequest.requester display / Organization name
    ae_title = "CT_ER_01"

Omitted criteria match anything. HL7 v2 orders that name no station get it at intake (a Device,
tagged as generated); for FHIR orders without a station it is applied when the worklist item is
built, without changing the Task, so a later order update that names a station wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirmwl.mapping.fhir_to_dicom import WorklistGraph


@dataclass(frozen=True)
class StationRule:
    ae_title: str
    modality: str | None = None
    procedure_code: str | None = None
    requesting_service: str | None = None


def _modalities(task: dict[str, Any]) -> set[str]:
    out = set()
    for item in task.get("input") or []:
        for coding in (item.get("valueCodeableConcept") or {}).get("coding") or []:
            if coding.get("code"):
                out.add(coding["code"])
    return out


def _codes(rp: dict[str, Any] | None) -> set[str]:
    concept = ((rp or {}).get("code") or {}).get("concept") or {}
    return {c["code"] for c in concept.get("coding") or [] if c.get("code")}


def _service(isr: dict[str, Any] | None) -> str | None:
    requester = (isr or {}).get("requester") or {}
    return requester.get("display")


class StationRules:
    def __init__(self, rules: list[StationRule]) -> None:
        self.rules = rules

    @classmethod
    def from_settings(cls, raw: list[dict[str, Any]]) -> StationRules:
        rules = []
        for i, item in enumerate(raw or []):
            if not isinstance(item, dict) or not item.get("ae_title"):
                raise ValueError(f"station_rules[{i}] needs an ae_title")
            unknown = set(item) - {"ae_title", "modality", "procedure_code", "requesting_service"}
            if unknown:
                raise ValueError(f"station_rules[{i}] has unknown keys {sorted(unknown)}")
            rules.append(StationRule(**item))
        return cls(rules)

    def station_for(self, graph: WorklistGraph) -> str | None:
        codes = _codes(graph.requested_procedure)
        return self.match(_modalities(graph.task), codes, _service(graph.service_request))

    def for_step(self, modality: str, codes: set[str]) -> str | None:
        """For the HL7 v2 intake, which knows a step's modality and codes before resources."""
        return self.match({modality} if modality else set(), codes, None)

    def match(self, modalities: set[str], codes: set[str], service: str | None) -> str | None:
        for rule in self.rules:
            if rule.modality and rule.modality not in modalities:
                continue
            if rule.procedure_code and rule.procedure_code not in codes:
                continue
            if rule.requesting_service and rule.requesting_service != service:
                continue
            return rule.ae_title
        return None
