"""The stored form of ``worklist.item_json``: DICOM JSON deflated with a preset dictionary.

The dictionary is the item the mapping builds (``mapping.fhir_to_dicom.item``) with its values
left out, in tag order — so a whole run of element headers and empty type 2 elements is one
DEFLATE match — preceded by the other forms the same elements take (empty or with a value) and
the optional elements. 1,635 → about 200 bytes per item on the order graphs of
``bench/storage.py``. ``_DICTIONARY_V17`` must never change (see ``fhirmwl.store.preset``).
"""

from __future__ import annotations

from fhirmwl.store.preset import PresetCodec

_CODE_ITEM = (
    '{"00080100":{"vr":"SH","Value":["'
    '"]},"00080102":{"vr":"SH","Value":["'
    '"]},"00080104":{"vr":"LO","Value":["'
    '"]}}'
)
_ISSUER_ITEM = '{"00400032":{"vr":"UT","Value":["urn:'
_ISSUER_END = '"]},"00400033":{"vr":"CS","Value":["URI"]}}]},'

_DICTIONARY_V17 = "".join(
    (
        # Less frequent forms and optional elements first (farther back in the window).
        '"00080090":{"vr":"PN","Value":[{"Alphabetic":"',
        '"00081110":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["',
        '"]},"00081155":{"vr":"UI","Value":["',
        '"00101002":{"vr":"SQ","Value":[{"00100020":{"vr":"LO","Value":["',
        '"00101030":{"vr":"DS","Value":[',
        '"00102000":{"vr":"LO","Value":["',
        '"00102110":{"vr":"LO","Value":["',
        '"001021C0":{"vr":"US","Value":[',
        '"00321032":{"vr":"PN","Value":[{"Alphabetic":"',
        '"00321064":{"vr":"SQ","Value":[',
        _CODE_ITEM,
        '"00380050":{"vr":"LO","Value":["',
        '"00380300":{"vr":"LO","Value":["',
        '"00380500":{"vr":"LO","Value":["',
        '"00400004":{"vr":"DA","Value":["',
        '"]},"00400005":{"vr":"TM","Value":["',
        '"00400006":{"vr":"PN","Value":[{"Alphabetic":"',
        '"00400008":{"vr":"SQ","Value":[',
        _CODE_ITEM,
        '"00400010":{"vr":"SH","Value":["',
        '"00400011":{"vr":"SH","Value":["',
        '"00400400":{"vr":"LT","Value":["',
        '"00401002":{"vr":"LO","Value":["',
        '"0040100A":{"vr":"SQ","Value":[',
        '"00401003":{"vr":"SH","Value":["',
        '"00401004":{"vr":"LO","Value":["',
        '"00402400":{"vr":"LT","Value":["',
        '"00403001":{"vr":"LO","Value":["',
        '"00100040":{"vr":"CS"},',
        '"00100030":{"vr":"DA"},',
        '"00380010":{"vr":"LO"},"00380014":{"vr":"SQ","Value":[]},',
        '"00321060":{"vr":"LO"},',
        '"00400007":{"vr":"LO"},',
        '"Ideographic":"',
        '"Phonetic":"',
        "SCHEDULED",
        "ARRIVED",
        "READY",
        "STARTED",
        "ROUTINE",
        "HIGH",
        "STAT",
        "ISO_IR 100",
        "ISO 2022 IR 87",
        # The usual item, in tag order.
        '{"00080005":{"vr":"CS","Value":["ISO_IR 192"]},"00080050":{"vr":"SH","Value":["',
        '"]},"00080051":{"vr":"SQ","Value":[',
        _ISSUER_ITEM,
        _ISSUER_END,
        '"00080090":{"vr":"PN"},"00081110":{"vr":"SQ","Value":[]},'
        '"00081120":{"vr":"SQ","Value":[]},"00100010":{"vr":"PN","Value":[{"Alphabetic":"',
        '"}]},"00100020":{"vr":"LO","Value":["',
        '"]},"00100021":{"vr":"LO","Value":["',
        '"]},"00100024":{"vr":"SQ","Value":[',
        _ISSUER_ITEM,
        _ISSUER_END,
        '"00100030":{"vr":"DA","Value":["',
        '"]},"00100040":{"vr":"CS","Value":["',
        '"]},"00101030":{"vr":"DS"},"00102000":{"vr":"LO"},"00102110":{"vr":"LO"},'
        '"001021C0":{"vr":"US"},"0020000D":{"vr":"UI","Value":["2.25.',
        '"]},"00321032":{"vr":"PN"},"00321060":{"vr":"LO","Value":["',
        '"]},"00380010":{"vr":"LO","Value":["',
        '"]},"00380014":{"vr":"SQ","Value":[',
        _ISSUER_ITEM,
        _ISSUER_END,
        '"00380050":{"vr":"LO"},"00380300":{"vr":"LO"},"00380500":{"vr":"LO"},'
        '"00400100":{"vr":"SQ","Value":[{"00080060":{"vr":"CS","Value":["',
        '"]},"00400001":{"vr":"AE","Value":["',
        '"]},"00400002":{"vr":"DA","Value":["20',
        '"]},"00400003":{"vr":"TM","Value":["',
        '"]},"00400006":{"vr":"PN"},"00400007":{"vr":"LO","Value":["',
        '"]},"00400009":{"vr":"SH","Value":["',
        '"]},"00400010":{"vr":"SH"},"00400011":{"vr":"SH"},'
        '"00400020":{"vr":"CS","Value":["SCHEDULED"]}}]},"00401001":{"vr":"SH","Value":["',
        '"]},"00401003":{"vr":"SH"},"00401004":{"vr":"LO"},"00403001":{"vr":"LO"}}',
    )
).encode()

ITEM_CODEC = PresetCodec(17, _DICTIONARY_V17)
pack_item = ITEM_CODEC.pack
unpack_item = ITEM_CODEC.unpack
unpack_item_bytes = ITEM_CODEC.unpack_bytes
