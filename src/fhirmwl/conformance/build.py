"""Regenerate the published conformance JSON from the ``defs_*`` modules.

Run ``python -m fhirmwl.conformance.build`` after editing a definition; a unit test fails when
the committed files under ``resources/`` differ from what the definitions produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fhirmwl.conformance.defs_bundles import bundle_profiles
from fhirmwl.conformance.defs_capabilities import capability_statements
from fhirmwl.conformance.defs_maps import fhir_to_dicom_conceptmap
from fhirmwl.conformance.defs_operations import operation_definitions, search_parameters
from fhirmwl.conformance.defs_profiles import resource_profiles
from fhirmwl.conformance.defs_terminology import terminology_resources
from fhirmwl.conformance.defs_v2map import v2_to_fhir_conceptmap

RESOURCE_DIR = Path(__file__).with_name("resources")


def build_all() -> list[dict[str, Any]]:
    """Every conformance resource we publish, as FHIR R5 JSON dicts."""
    return [
        *resource_profiles(),
        *bundle_profiles(),
        *terminology_resources(),
        fhir_to_dicom_conceptmap(),
        v2_to_fhir_conceptmap(),
        *operation_definitions(),
        *search_parameters(),
        *capability_statements(),
    ]


def file_name(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def render(resource: dict[str, Any]) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path = RESOURCE_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for resource in build_all():
        path = directory / file_name(resource)
        path.write_text(render(resource), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path.name)
