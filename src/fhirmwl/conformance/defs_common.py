"""Small builders shared by the conformance-resource definitions.

The published JSON under ``resources/`` is generated from the ``defs_*`` modules by
``python -m fhirmwl.conformance.build``; these helpers keep those definitions short and keep
the metadata every artefact carries (status, version, publisher) in one place.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.model import CANON

VERSION = "0.1.0"
PUBLISHER = "fhirmwl (completion of the HL7 Imaging ServiceRequest draft guide)"
CORE = "http://hl7.org/fhir/StructureDefinition"
VS_MODALITY = f"{CANON}/ValueSet/dicom-cid-33-modality"
DICOM_PART6 = "http://dicom.nema.org/medical/dicom/current/output/chtml/part06/chapter_6.html"


def canonical(resource_type: str, rid: str) -> str:
    return f"{CANON}/{resource_type}/{rid}"


def meta(resource_type: str, rid: str, name: str, title: str, description: str) -> dict[str, Any]:
    """Header common to every canonical resource we publish."""
    return {
        "resourceType": resource_type,
        "id": rid,
        "url": canonical(resource_type, rid),
        "version": VERSION,
        "name": name,
        "title": title,
        "status": "draft",
        "experimental": True,
        "publisher": PUBLISHER,
        "description": description,
    }


def path_of(element_id: str) -> str:
    """ElementDefinition.path from an element id (drop the ``:sliceName`` parts)."""
    return ".".join(part.split(":")[0] for part in element_id.split("."))


def el(element_id: str, **props: Any) -> dict[str, Any]:
    """One differential ElementDefinition; ``sliceName`` is derived from the id."""
    out: dict[str, Any] = {"id": element_id, "path": path_of(element_id)}
    last = element_id.split(".")[-1]
    if ":" in last:
        out["sliceName"] = last.split(":", 1)[1]
    if "min" in props:
        out["min"] = props.pop("min")
    if "max" in props:
        out["max"] = props.pop("max")
    out.update(props)
    return out


def slicing(disc_type: str, path: str, rules: str = "open", desc: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "discriminator": [{"type": disc_type, "path": path}],
        "ordered": False,
        "rules": rules,
    }
    if desc:
        out["description"] = desc
    return out


def ref_type(*target_profiles: str, code: str = "Reference") -> list[dict[str, Any]]:
    return [{"code": code, "targetProfile": list(target_profiles)}]


def cc_pattern(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def constraint(key: str, human: str, expression: str, severity: str = "error") -> dict[str, Any]:
    return {"key": key, "severity": severity, "human": human, "expression": expression}


def structure_definition(
    rid: str, name: str, title: str, rtype: str, description: str, elements: list[dict[str, Any]]
) -> dict[str, Any]:
    sd = meta("StructureDefinition", rid, name, title, description)
    root_given = bool(elements) and elements[0]["id"] == rtype
    sd.update(
        {
            "fhirVersion": "5.0.0",
            "kind": "resource",
            "abstract": False,
            "type": rtype,
            "baseDefinition": f"{CORE}/{rtype}",
            "derivation": "constraint",
            "differential": {"element": elements if root_given else [el(rtype), *elements]},
        }
    )
    return sd
