"""v2 data types → FHIR data types (TS/DTM, CX, EI, XPN, XCN, CWE), per the V2-to-FHIR IG maps.

The IG targets R4; the R5 differences (CodeableReference for codes and reasons, `actor` in place of
`individual`) are applied by the resource builders, not here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhirmwl.hl7v2.errors import DATA_TYPE_ERROR, ErrorLocation, V2Error
from fhirmwl.hl7v2.message import Segment
from fhirmwl.mapping.v2_to_fhir.context import MappingContext

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")
CODE_SYSTEMS = {
    "LN": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "RADLEX": "http://www.radlex.org",
    "RID": "http://www.radlex.org",
    "UCUM": "http://unitsofmeasure.org",
}


def ts_to_fhir(value: str, tz: str, location: ErrorLocation | None = None) -> str | None:
    """v2 TS/DTM → FHIR dateTime; a time without offset is read in zone ``tz``.

    Raises `V2Error` (AE, table 0357 code 102) when the value is not a v2 date/time.
    """
    value = value.strip()
    if not value or value == '""':
        return None
    m = _TS.match(value)
    if not m:
        raise V2Error(DATA_TYPE_ERROR, f"not a v2 date/time: {value!r}", location)
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    try:
        datetime(int(y), int(mo or 1), int(d or 1), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError as exc:
        raise V2Error(DATA_TYPE_ERROR, f"invalid date/time {value!r}: {exc}", location) from exc
    if mo is None:
        return y
    if d is None:
        return f"{y}-{mo}"
    if hh is None:
        return f"{y}-{mo}-{d}"
    base = f"{y}-{mo}-{d}T{hh}:{mi or '00'}:{ss or '00'}{frac or ''}"
    if off:
        return f"{base}{off[:3]}:{off[3:]}"
    naive = datetime.fromisoformat(f"{y}-{mo}-{d}T{hh}:{mi or '00'}:{ss or '00'}")
    offset = naive.replace(tzinfo=ZoneInfo(tz)).strftime("%z") or "+0000"
    return f"{base}{offset[:3]}:{offset[3:]}"


def date_to_fhir(value: str, location: ErrorLocation | None = None) -> str | None:
    """v2 DT/TS → FHIR date (date part only, e.g. PID-7 → Patient.birthDate)."""
    value = value.strip()
    if not value or value == '""':
        return None
    result = ts_to_fhir(value[:8], "UTC", location)
    return result


def code_system(name: str) -> str | None:
    name = name.strip()
    if not name:
        return None
    upper = name.upper()
    if upper in CODE_SYSTEMS:
        return CODE_SYSTEMS[upper]
    m = re.fullmatch(r"HL7?(\d{4})", upper)
    if m:
        return f"http://terminology.hl7.org/CodeSystem/v2-{m.group(1)}"
    if re.fullmatch(r"\d+(\.\d+)+", name):
        return f"urn:oid:{name}"
    return f"urn:fhirmwl:v2-coding-system:{name}"


def coding(code: str, display: str, system: str) -> dict[str, Any] | None:
    if not code and not display:
        return None
    c: dict[str, Any] = {}
    sys_url = code_system(system)
    if sys_url:
        c["system"] = sys_url
    if code:
        c["code"] = code
    if display:
        c["display"] = display
    return c


def cwe(seg: Segment, n: int, rep: int = 1, *, alternate: bool = True) -> dict[str, Any] | None:
    """CWE/CE → CodeableConcept (components 1–3, and 4–6 as a second coding)."""
    comps = [seg.comp(n, i, rep) for i in range(1, 10)]
    codings = [coding(comps[0], comps[1], comps[2])]
    if alternate:
        codings.append(coding(comps[3], comps[4], comps[5]))
    cc: dict[str, Any] = {}
    found = [c for c in codings if c and c.get("code")]
    if found:
        cc["coding"] = found
    text = comps[8] or comps[1] or (comps[4] if alternate else "")
    if text:
        cc["text"] = text
    return cc or None


def hd_system(seg: Segment, n: int, c: int, rep: int, ctx: MappingContext, default: str) -> str:
    """System from an HD component held as sub-components (CX-4, XCN-9) of field ``n``."""
    subs = seg.subcomponents(n, c, rep) + ["", "", ""]
    return ctx.systems.for_issuer(subs[0], subs[1], subs[2], default)


def ei(seg: Segment, n: int, ctx: MappingContext, default: str, rep: int = 1) -> tuple[str, str]:
    """EI → (system, value): EI-1 value, EI-2..4 assigning authority."""
    value = seg.comp(n, 1, rep)
    system = ctx.systems.for_issuer(
        seg.comp(n, 2, rep), seg.comp(n, 3, rep), seg.comp(n, 4, rep), default
    )
    return system, value


def cx(seg: Segment, n: int, rep: int, ctx: MappingContext, default: str) -> dict[str, Any] | None:
    """CX → Identifier (CX-1 value, CX-4 system, CX-5 type)."""
    value = seg.comp(n, 1, rep)
    if not value or value == '""':
        return None
    ident: dict[str, Any] = {}
    type_code = seg.comp(n, 5, rep)
    if type_code:
        ident["type"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": type_code}
            ]
        }
    ident["system"] = hd_system(seg, n, 4, rep, ctx, default)
    ident["value"] = value
    return ident


_NAME_USE = {"L": "official", "D": "usual", "M": "maiden", "N": "nickname", "A": "usual"}


def xpn(seg: Segment, n: int, rep: int = 1, offset: int = 0) -> dict[str, Any] | None:
    """XPN (offset 0) or the name part of XCN (offset 1) → HumanName."""
    family = seg.comp(n, 1 + offset, rep, sub=1)
    given = [g for g in (seg.comp(n, 2 + offset, rep), seg.comp(n, 3 + offset, rep)) if g]
    name: dict[str, Any] = {}
    if family and family != '""':
        name["family"] = family
    if given:
        name["given"] = given
    suffix = [s for s in (seg.comp(n, 4 + offset, rep), seg.comp(n, 6 + offset, rep)) if s]
    if suffix:
        name["suffix"] = suffix
    prefix = seg.comp(n, 5 + offset, rep)
    if prefix:
        name["prefix"] = [prefix]
    use = _NAME_USE.get(seg.comp(n, 7 + offset, rep).upper())
    if name and use:
        name["use"] = use
    return name or None


def xcn(seg: Segment, n: int, ctx: MappingContext, rep: int = 1) -> dict[str, Any] | None:
    """XCN → Practitioner content (identifier + name), or None when empty."""
    pid = seg.comp(n, 1, rep, sub=1)
    name = xpn(seg, n, rep, offset=1)
    if not pid and not name:
        return None
    res: dict[str, Any] = {"resourceType": "Practitioner"}
    if pid:
        system = hd_system(seg, n, 9, rep, ctx, ctx.systems.practitioner)
        res["identifier"] = [{"system": system, "value": pid}]
    if name:
        res["name"] = [name]
    return res


def display_name(name: dict[str, Any] | None) -> str:
    if not name:
        return ""
    parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
    return " ".join(p for p in parts if p)
