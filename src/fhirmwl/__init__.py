"""fhirmwl: an imaging order broker (FHIR R5 Imaging ServiceRequest, HL7 v2 intake, DICOM MWL)."""

__version__ = "0.1.0"
