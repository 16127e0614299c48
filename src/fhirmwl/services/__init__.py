"""The service layer: every listener (HTTP, MLLP, DICOM) calls these, never the store directly."""
