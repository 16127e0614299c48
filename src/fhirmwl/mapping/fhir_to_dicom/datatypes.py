"""FHIR datatype ↔ DICOM value conversions used by the worklist item mapping and its inverse.

HumanName ↔ PN (with the alphabetic/ideographic/phonetic component groups carried by the
``iso21090-EN-representation`` extension), instants ↔ local DA/TM, gender ↔ sex code, Coding ↔
Code Sequence item, identifier system ↔ issuer attributes. All pure.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from pydicom.dataset import Dataset

from fhirmwl.mapping.fhir_to_dicom.context import coding_scheme_for, system_for_scheme
from fhirmwl.mapping.fhir_to_dicom.jsonds import JsonDataset

EN_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
GROUP_ORDER = ("ABC", "IDE", "SYL")
SEX_FOR_GENDER = {"male": "M", "female": "F", "other": "O"}
GENDER_FOR_SEX = {"M": "male", "F": "female", "O": "other"}


def _representation(name: dict[str, Any]) -> str:
    for ext in name.get("extension") or []:
        if ext.get("url") == EN_REPRESENTATION:
            return str(ext.get("valueCode") or "ABC")
    return "ABC"


def _components(name: dict[str, Any]) -> str:
    given = list(name.get("given") or [])
    parts = [
        name.get("family") or "",
        given[0] if given else "",
        " ".join(given[1:]),
        " ".join(name.get("prefix") or []),
        " ".join(name.get("suffix") or []),
    ]
    if not any(parts) and name.get("text"):
        parts[0] = name["text"]
    return "^".join(parts).rstrip("^")


def human_names_to_pn(names: list[dict[str, Any]] | None) -> str:
    """PN from the preferred HumanName (official, else usual, else first) and its siblings with
    an ideographic/phonetic representation extension."""
    names = [n for n in names or [] if n.get("use") not in ("old", "anonymous")]
    if not names:
        return ""
    groups: dict[str, str] = {}
    for use in ("official", "usual", None):
        for name in names:
            if use is None or name.get("use") == use:
                groups.setdefault(_representation(name), _components(name))
    values = [groups.get(r, "") for r in GROUP_ORDER]
    return "=".join(values).rstrip("=")


def pn_to_human_names(pn: str, use: str = "official") -> list[dict[str, Any]]:
    names = []
    for representation, group in zip(GROUP_ORDER, str(pn).split("="), strict=False):
        if not group.strip("^ "):
            continue
        parts = (group.split("^") + [""] * 5)[:5]
        name: dict[str, Any] = {"use": use}
        if representation != "ABC":
            name["extension"] = [{"url": EN_REPRESENTATION, "valueCode": representation}]
        if parts[0]:
            name["family"] = parts[0]
        given = [p for p in [parts[1], *parts[2].split(" ")] if p]
        if given:
            name["given"] = given
        if parts[3]:
            name["prefix"] = parts[3].split(" ")
        if parts[4]:
            name["suffix"] = parts[4].split(" ")
        names.append(name)
    return names


def local_da_tm(value: str | None, tz: ZoneInfo) -> tuple[str, str]:
    """FHIR date/dateTime/instant → (DA, TM) on the modality's wall clock (``tz``)."""
    if not value:
        return "", ""
    if len(value) <= 10:  # date only: YYYY, YYYY-MM or YYYY-MM-DD
        return value.replace("-", "").ljust(8, "0")[:8] if len(value) == 10 else "", ""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    local = moment.astimezone(tz)
    tm = local.strftime("%H%M%S")
    if local.microsecond:
        tm += f".{local.microsecond:06d}".rstrip("0")
    return local.strftime("%Y%m%d"), tm


def da_tm_to_fhir(da: str, tm: str, tz: ZoneInfo) -> str | None:
    """Local DA/TM → FHIR dateTime with the zone's offset (date only when TM is empty)."""
    if len(da) != 8:
        return None
    day = date(int(da[:4]), int(da[4:6]), int(da[6:8]))
    if not tm:
        return day.isoformat()
    whole = (tm.replace(":", "").split(".")[0] + "000000")[:6]
    moment = datetime.combine(day, time(int(whole[:2]), int(whole[2:4]), int(whole[4:6])), tz)
    return moment.isoformat()


def birth_date_to_da(value: str | None) -> str:
    return value.replace("-", "") if value and len(value) == 10 else ""


def code_item(coding: dict[str, Any]) -> JsonDataset:
    """Code Sequence Macro item from a FHIR Coding."""
    item = JsonDataset()
    code = str(coding.get("code") or "")
    if len(code) > 16:
        item.LongCodeValue = code
    else:
        item.CodeValue = code
    item.CodingSchemeDesignator = coding_scheme_for(coding.get("system"))
    if coding.get("version"):
        item.CodingSchemeVersion = coding["version"]
    item.CodeMeaning = str(coding.get("display") or code)[:64]
    return item


def item_to_coding(item: Dataset) -> dict[str, Any]:
    coding: dict[str, Any] = {
        "system": system_for_scheme(str(item.get("CodingSchemeDesignator", ""))),
        "code": str(item.get("CodeValue") or item.get("LongCodeValue") or ""),
    }
    if item.get("CodeMeaning"):
        coding["display"] = str(item.CodeMeaning)
    return coding


def issuer_item(system: str | None, assigner: str | None = None) -> JsonDataset | None:
    """Issuer macro item ((0040,0031)/(0040,0032)/(0040,0033)) from an identifier system."""
    if not system and not assigner:
        return None
    item = JsonDataset()
    if system and system.startswith("urn:oid:"):
        item.UniversalEntityID, item.UniversalEntityIDType = system[8:], "ISO"
    elif system and system.startswith("urn:uuid:"):
        item.UniversalEntityID, item.UniversalEntityIDType = system[9:], "UUID"
    elif system and system.startswith("urn:fhirmwl:issuer:"):
        item.LocalNamespaceEntityID = system[len("urn:fhirmwl:issuer:") :][:64]
    elif system and not system.startswith("urn:fhirmwl:"):
        item.UniversalEntityID, item.UniversalEntityIDType = system, "URI"
    if assigner and "LocalNamespaceEntityID" not in item:
        item.LocalNamespaceEntityID = assigner[:64]
    return item if len(item) else None


def ref(reference: dict[str, Any] | None) -> str | None:
    return (reference or {}).get("reference")
