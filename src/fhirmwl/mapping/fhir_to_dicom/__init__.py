"""FHIR resource graph ↔ DICOM Modality Worklist item (pure, no IO)."""

from fhirmwl.mapping.fhir_to_dicom.context import DicomMappingContext, WorklistGraph
from fhirmwl.mapping.fhir_to_dicom.inverse import worklist_item_to_fhir
from fhirmwl.mapping.fhir_to_dicom.item import (
    ItemResult,
    build_worklist_item,
    build_worklist_item_result,
)

__all__ = [
    "DicomMappingContext",
    "ItemResult",
    "WorklistGraph",
    "build_worklist_item",
    "build_worklist_item_result",
    "worklist_item_to_fhir",
]

from fhirmwl.mapping.fhir_to_dicom.graph import graphs_from_bundle  # noqa: E402

__all__ += ["graphs_from_bundle"]
