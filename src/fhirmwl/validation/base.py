"""Checks against the R5 base definition, shared with the write path (``fhir.structure``).

``$validate``, the CLI and the order Bundle check report exactly what a create/update would
refuse: the ``fhir.resources`` models (elements, datatypes, primitive formats) plus the base
rules they do not enforce (ele-1, required code bindings, id syntax), in FHIR wording.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir.structure import rerooted, structure_issues
from fhirmwl.validation.issues import Issue

_BASE = "FHIR R5 base definition"


def check_base(resource: dict[str, Any], root_expr: str | None = None) -> list[Issue]:
    """Data-type and structure issues of ``resource`` against its R5 resource type."""
    rtype = resource.get("resourceType")
    root = root_expr or str(rtype)
    if not isinstance(rtype, str) or not rtype[:1].isupper():
        return [Issue("error", "structure", f"{_BASE}: unknown resourceType {rtype!r}", root)]
    try:
        found = structure_issues(rtype, resource)
    except (KeyError, ValueError):
        return [Issue("error", "structure", f"{_BASE}: unknown resourceType {rtype!r}", root)]
    return [
        Issue(i["severity"], i["code"], f"{_BASE}: {i['diagnostics']}", i["expression"][0])
        for i in rerooted(found, rtype, root)
    ]
