"""Which stored order an order group refers to, and which Bundle entries belong to the group.

Orders are matched on the keys the sender owns (placer order number ORC-2/OBR-2, filler order
number ORC-3/OBR-3) and then the accession number, through the store's unique-identifier table,
so a repeated NW or a late XO lands on the order that already exists instead of creating a twin.
The mapped transaction Bundle holds the entries of every group of a message; ``group_entries``
finds one group's entries by following ``basedOn`` from its ImagingServiceRequest (RP → ISR,
Task → RP, ImagingStudy → RP/ISR), so that groups handled by the order lifecycle (cancel, hold …)
can be taken out of the Bundle and the others applied as a whole.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.fhir import model
from fhirmwl.mapping.v2_to_fhir import OrderGroup
from fhirmwl.services.resources import lock_identifier
from fhirmwl.store import Tx


def match_order(tx: Tx, group: OrderGroup) -> str | None:
    """Id of the stored ImagingServiceRequest with the group's placer, filler or accession; on a
    miss the sender's key is locked and looked up again (concurrent NW for one order)."""
    found = _match(tx, group)
    key = group.placer if group.placer and group.placer[1] else group.filler
    if found is None and key and key[1] and lock_identifier(tx, "ServiceRequest", *key):
        found = _match(tx, group)
    return found


def _match(tx: Tx, group: OrderGroup) -> str | None:
    keys: list[tuple[tuple[str, str], tuple[str, str] | None]] = [
        (model.PLAC, group.placer),
        (model.FILL, group.filler),
    ]
    if not group.accession_generated:
        keys.append((model.ACSN, group.accession))
    for code, key in keys:
        if key and key[1]:
            found = tx.find_unique(code[1], key[0] or "", key[1])
            if found and found[0] == "ServiceRequest":
                return found[1]
    return None


def _based_on(resource: dict[str, Any]) -> set[str]:
    return {str(b.get("reference") or "") for b in resource.get("basedOn") or []}


def group_entries(bundle: dict[str, Any], isr_full_url: str) -> list[dict[str, Any]]:
    """The ISR entry of a group and every entry hanging off it through ``basedOn``."""
    members = {isr_full_url}
    out: list[dict[str, Any]] = []
    grew = True
    while grew:
        grew = False
        for entry in bundle.get("entry") or []:
            if any(entry is e for e in out):
                continue
            url = str(entry.get("fullUrl"))
            if url in members or _based_on(entry.get("resource") or {}) & members:
                out.append(entry)
                members.add(url)
                grew = True
    return out


def entry_kind(entry: dict[str, Any]) -> str:
    return str((entry.get("resource") or {}).get("resourceType", ""))


def generated_codes(resource: dict[str, Any]) -> set[str]:
    return {
        str(t.get("code"))
        for t in (resource.get("meta") or {}).get("tag") or []
        if t.get("system") == model.GENERATED_TAG_SYSTEM
    }
