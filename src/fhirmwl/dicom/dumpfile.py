"""Reader for DCMTK ``dump2dcm`` / ``dcmdump`` text and for Part-10 worklist files.

Folder-based worklists (DCMTK ``wlmscpfs``, Orthanc) are kept as ``.wl`` files or as the dump
text they were written from; ``fhirmwl mwl import`` and the corpus tests read both without
shelling out to ``dump2dcm``. Text values are decoded with the dump's own Specific Character Set
(the file's bytes are in that encoding), so the datasets hold Unicode like every other item.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydicom import dcmread
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

_LINE = re.compile(rb"^\s*\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\)\s+([A-Za-z]{2})?\s*(.*)$")
_INT_VRS = {"US", "UL", "SS", "SL", "SV", "UV"}
_FLOAT_VRS = {"FL", "FD"}
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
_TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT", "DA", "TM", "DT", "AS"}


def read_worklist_file(path: Path) -> Dataset:
    """A ``.wl``/``.dcm`` Part-10 file or a ``.dump``/``.txt`` DCMTK dump, as a Dataset."""
    data = path.read_bytes()
    if data[128:132] == b"DICM" or path.suffix.lower() in (".wl", ".dcm"):
        ds = dcmread(path, force=True)
        ds.file_meta = None  # type: ignore[assignment]
        return _strip_meta(ds)
    return parse_dump(data)


def _strip_meta(ds: Dataset) -> Dataset:
    out = Dataset()
    for elem in ds:
        if elem.tag.group != 0x0002:
            out.add(elem)
    return out


def parse_dump(data: bytes) -> Dataset:
    """Parse DCMTK dump text (bytes in the dataset's character set)."""
    raw = [_parse_line(line) for line in data.splitlines()]
    entries = [e for e in raw if e is not None]
    terms = ["ISO_IR 6"]
    for tag, _vr, value in entries:
        if tag == 0x00080005 and value:
            terms = [v.strip() for v in value.decode("ascii").split("\\")]
    charsets = convert_encodings(terms)
    root = Dataset()
    stack: list[Dataset] = [root]
    seq_stack: list[Sequence] = []
    for tag, vr, value in entries:
        if tag == 0xFFFEE000:
            item = Dataset()
            seq_stack[-1].append(item)
            stack.append(item)
        elif tag == 0xFFFEE00D:
            stack.pop()
        elif tag == 0xFFFEE0DD:
            seq_stack.pop()
        elif vr == "SQ":
            seq = Sequence()
            stack[-1].add(DataElement(tag, "SQ", seq))
            seq_stack.append(seq)
        elif (tag >> 16) not in (0x0000, 0x0002) and vr and tag not in stack[-1]:
            # a repeated tag keeps its first value, as dump2dcm does
            stack[-1].add(DataElement(tag, vr, _value(vr, value, charsets)))
    return root


def _parse_line(line: bytes) -> tuple[int, str, bytes] | None:
    stripped = line.strip()
    if not stripped or stripped.startswith(b"#"):
        return None
    m = _LINE.match(line)
    if not m:
        return None
    tag = int(m.group(1) + m.group(2), 16)
    vr = (m.group(3) or b"").decode("ascii").upper()
    rest = m.group(4)
    if rest.startswith(b"["):
        end = rest.rfind(b"]")
        value = rest[1:end] if end > 0 else rest[1:]
    elif rest.startswith(b"(") or rest.startswith(b"=") or vr in ("NA", ""):
        value = b""
    else:
        value = rest.split(b"#", 1)[0].strip()
        value = b"" if value in (b"-", b"na") else value
    return tag, ("" if vr in ("NA",) else vr), value


def _value(vr: str, value: bytes, charsets: list[str]) -> object:
    if not value:
        return None
    if vr in _INT_VRS:
        parts = [int(v) for v in value.split(b"\\")]
        return parts[0] if len(parts) == 1 else parts
    if vr in _FLOAT_VRS:
        floats = [float(v) for v in value.split(b"\\")]
        return floats[0] if len(floats) == 1 else floats
    if vr in _BINARY_VRS:
        return bytes(int(v, 16) for v in value.split(b"\\"))
    if vr in _TEXT_VRS and vr not in ("DA", "TM", "DT", "AS", "CS", "AE"):
        text = decode_bytes(value, charsets, set())
        text = text if vr in ("LT", "ST", "UT") else text.rstrip(" ")
    else:
        text = value.decode("ascii", errors="replace").strip(" ")
    return text.split("\\") if "\\" in text and vr not in ("LT", "ST", "UT") else text
