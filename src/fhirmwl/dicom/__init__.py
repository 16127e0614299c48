"""DICOM edge of the broker: the Modality Worklist C-FIND SCP and worklist file readers."""

from fhirmwl.dicom.scp import AccessPolicy, WorklistSCP

__all__ = ["AccessPolicy", "WorklistSCP"]
