"""DICOM JSON worklist items as PS3.19 Native DICOM Model XML, in a ``multipart/related`` body.

PS3.18 lets a DICOMweb search answer ``multipart/related; type="application/dicom+xml"``, one
XML document per result. pydicom has no XML writer, so the few rules needed here are written
out: ``DicomAttribute`` with ``tag``/``vr``/``keyword``, numbered ``Value``, ``PersonName``
with component elements, numbered ``Item`` for sequences, ``InlineBinary`` (PS3.19 A.1).
Pure; ElementTree does the escaping.
"""

from __future__ import annotations

import uuid
from typing import Any
from xml.etree import ElementTree as ET

from pydicom.datadict import keyword_for_tag

XML_MEDIA = "application/dicom+xml"
_PN_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def native_xml(item: dict[str, Any]) -> bytes:
    """One item as a ``NativeDicomModel`` document (UTF-8, with XML declaration)."""
    root = ET.Element("NativeDicomModel", {"xml:space": "preserve"})
    _attributes(root, item)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _attributes(parent: ET.Element, item: dict[str, Any]) -> None:
    for key in sorted(item):
        entry = item[key]
        vr = entry.get("vr", "UN")
        attrs = {"tag": key, "vr": vr}
        keyword = keyword_for_tag(int(key, 16))
        if keyword:
            attrs["keyword"] = keyword
        elem = ET.SubElement(parent, "DicomAttribute", attrs)
        if "InlineBinary" in entry:
            ET.SubElement(elem, "InlineBinary").text = entry["InlineBinary"]
            continue
        for number, value in enumerate(entry.get("Value") or [], start=1):
            if vr == "SQ":
                _attributes(ET.SubElement(elem, "Item", {"number": str(number)}), value)
            elif vr == "PN":
                _person_name(ET.SubElement(elem, "PersonName", {"number": str(number)}), value)
            else:
                ET.SubElement(elem, "Value", {"number": str(number)}).text = str(value)


def _person_name(elem: ET.Element, value: dict[str, str] | str) -> None:
    groups = value if isinstance(value, dict) else {"Alphabetic": value}
    for group in _PN_GROUPS:
        text = groups.get(group)
        if not text:
            continue
        group_elem = ET.SubElement(elem, group)
        for part, comp in zip(_PN_PARTS, text.split("^"), strict=False):
            if comp:
                ET.SubElement(group_elem, part).text = comp


def multipart_related(parts: list[bytes], media: str = XML_MEDIA) -> tuple[bytes, str]:
    """``(body, content type)`` of a ``multipart/related`` message holding ``parts``."""
    boundary = uuid.uuid4().hex
    chunks = [
        b"--" + boundary.encode() + b"\r\nContent-Type: " + media.encode() + b"\r\n\r\n" + p
        for p in parts
    ]
    body = b"\r\n".join(chunks) + b"\r\n--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="{media}"; boundary={boundary}'
