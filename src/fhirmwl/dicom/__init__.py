"""DICOM edge of the broker: the Modality Worklist C-FIND SCP and worklist file readers."""
