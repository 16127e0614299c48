"""The worklist index inside the store: kept current by a write hook, read by every worklist
transport (DICOM C-FIND, FHIR, DICOMweb) through ``StoreWorklistSource``."""

from fhirmwl.services.worklist.indexer import WorklistIndexer, install
from fhirmwl.services.worklist.source import StoreWorklistSource

__all__ = ["StoreWorklistSource", "WorklistIndexer", "install"]
