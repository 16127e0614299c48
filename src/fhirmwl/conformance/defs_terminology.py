"""Terminology we publish: the identifier-type CodeSystem (I-7) and the CID 33 ValueSet (I-10).

The draft guide binds the modality input to an ``ftp://`` file, which is not a canonical; we
ship our own ValueSet composed from DCM codes so the required binding can be checked offline.
"""

from __future__ import annotations

from typing import Any

from fhirmwl.conformance.defs_common import VS_MODALITY, meta
from fhirmwl.fhir.model import DCM, ID_TYPE_SYSTEM

# DICOM PS3.16 CID 33 "Modality" (DCM code → display). Acquisition modalities plus the common
# non-acquisition ones a worklist may carry; SC is listed because sites schedule it.
CID_33: dict[str, str] = {
    "AR": "Autorefraction",
    "BDUS": "Ultrasound Bone Densitometry",
    "BI": "Biomagnetic Imaging",
    "BMD": "Bone Mineral Densitometry",
    "CR": "Computed Radiography",
    "CT": "Computed Tomography",
    "DG": "Diaphanography",
    "DMS": "Dermoscopy",
    "DOC": "Document",
    "DX": "Digital Radiography",
    "ECG": "Electrocardiography",
    "EPS": "Cardiac Electrophysiology",
    "ES": "Endoscopy",
    "GM": "General Microscopy",
    "HC": "Hard Copy",
    "HD": "Hemodynamic Waveform",
    "IO": "Intra-oral Radiography",
    "IVOCT": "Intravascular Optical Coherence Tomography",
    "IVUS": "Intravascular Ultrasound",
    "KER": "Keratometry",
    "KO": "Key Object Selection",
    "LEN": "Lensometry",
    "LS": "Laser Surface Scan",
    "MG": "Mammography",
    "MR": "Magnetic Resonance",
    "NM": "Nuclear Medicine",
    "OAM": "Ophthalmic Axial Measurements",
    "OCT": "Optical Coherence Tomography",
    "OP": "Ophthalmic Photography",
    "OPM": "Ophthalmic Mapping",
    "OPT": "Ophthalmic Tomography",
    "OPV": "Ophthalmic Visual Field",
    "OSS": "Optical Surface Scanner",
    "OT": "Other",
    "PA": "Photoacoustic",
    "PR": "Presentation State",
    "PT": "Positron emission tomography",
    "PX": "Panoramic X-Ray",
    "RF": "Radio Fluoroscopy",
    "RG": "Radiographic imaging",
    "RTIMAGE": "RT Image",
    "SC": "Secondary Capture",
    "SM": "Slide Microscopy",
    "SR": "SR Document",
    "SRF": "Subjective Refraction",
    "US": "Ultrasound",
    "VA": "Visual Acuity",
    "XA": "X-Ray Angiography",
    "XC": "External-camera Photography",
}


def identifier_type_codesystem() -> dict[str, Any]:
    cs = meta(
        "CodeSystem",
        "imaging-identifier-type",
        "ImagingIdentifierType",
        "Imaging Identifier Type",
        "Identifier types for DICOM identifiers that v2-0203 has no code for (I-7).",
    )
    cs["url"] = ID_TYPE_SYSTEM
    cs.update(
        {
            "caseSensitive": True,
            "content": "complete",
            "count": 2,
            "concept": [
                {
                    "code": "RPID",
                    "display": "Requested Procedure ID",
                    "definition": "DICOM Requested Procedure ID (0040,1001).",
                },
                {
                    "code": "SPSID",
                    "display": "Scheduled Procedure Step ID",
                    "definition": "DICOM Scheduled Procedure Step ID (0040,0009).",
                },
            ],
        }
    )
    return cs


def modality_valueset() -> dict[str, Any]:
    vs = meta(
        "ValueSet",
        "dicom-cid-33-modality",
        "DicomCid33Modality",
        "DICOM CID 33 Modality",
        "Modality codes of DICOM PS3.16 CID 33, from the DCM code system.",
    )
    vs["url"] = VS_MODALITY
    concepts = [{"code": code, "display": display} for code, display in CID_33.items()]
    vs["compose"] = {"include": [{"system": DCM, "concept": concepts}]}
    return vs


def terminology_resources() -> list[dict[str, Any]]:
    return [identifier_type_codesystem(), modality_valueset()]
