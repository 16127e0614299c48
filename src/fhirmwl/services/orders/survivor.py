"""Orders for a retired patient identifier attach to the surviving Patient.

After an A40 merge the merged Patient stays (``active`` false, ``link`` ``replaced-by`` the
surviving one); after an A47 the changed identifier stays on its Patient with ``use`` ``old``.
A later order that still names the retired identifier would otherwise update the merged Patient
(or overwrite the current identifier with the old one) and hang the order on it. Before the
order is stored, ``attach_to_survivors`` resolves every conditional Patient entry and reference
of the Bundle: when it names a retired identifier, the entry is dropped (the surviving record is
not overwritten with the old demographics) and references point to the surviving Patient,
reported as an information finding.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.services.orders.context import OrderContext
from fhirmwl.services.orders.steps import Finding
from fhirmwl.store import Tx

_MAX_LINKS = 5


def _query(entry: dict[str, Any]) -> str | None:
    request = entry.get("request") or {}
    url = str(request.get("url") or "")
    if str(request.get("method")).upper() == "PUT" and url.startswith("Patient?"):
        return url.partition("?")[2]
    if str(request.get("method")).upper() == "POST" and request.get("ifNoneExist"):
        return str(request["ifNoneExist"])
    return None


def _retired(patient: dict[str, Any], query: str) -> bool:
    value = query.rpartition("|")[2] if "|" in query else query.partition("=")[2]
    return any(
        i.get("use") == "old" and i.get("value") == value for i in patient.get("identifier") or []
    )


def survivor_of(tx: Tx, patient_id: str, query: str) -> str | None:
    """The surviving Patient id when ``query`` names a retired identifier, else None."""
    current, moved = patient_id, False
    for _ in range(_MAX_LINKS):
        patient = tx.get("Patient", current)
        nxt = next(
            (
                str((lk.get("other") or {}).get("reference", "")).partition("/")[2]
                for lk in patient.get("link") or []
                if lk.get("type") == "replaced-by"
            ),
            "",
        )
        if patient.get("active") is not False or not nxt:
            break
        current, moved = nxt, True
    if moved or _retired(tx.get("Patient", patient_id), query):
        return current
    return None


def attach_to_survivors(tx: Tx, bundle: dict[str, Any], ctx: OrderContext) -> list[Finding]:
    from fhirmwl.services.bundles import rewrite_references

    mapping: dict[str, str] = {}
    dropped: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for entry in bundle.get("entry") or []:
        if (entry.get("resource") or {}).get("resourceType") != "Patient":
            continue
        query = _query(entry)
        ids = ctx.resources.find(tx, "Patient", query) if query else []
        survivor = survivor_of(tx, ids[0], str(query)) if len(ids) == 1 else None
        if survivor is None:
            continue
        target = f"Patient/{survivor}"
        mapping[str(entry.get("fullUrl"))] = mapping[f"Patient?{query}"] = target
        dropped.append(entry)
        text = (
            f"patient identifier {query} was retired by a merge; the order is attached to {target}"
        )
        findings.append(Finding("patient", text, "Patient.identifier", "", "0", "information"))
    if mapping:
        bundle["entry"] = [
            dict(e, resource=rewrite_references(e.get("resource"), mapping))
            for e in bundle.get("entry") or []
            if not any(e is d for d in dropped)
        ]
    return findings
