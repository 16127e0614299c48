"""Profile validation for the guide's StructureDefinitions (our own engine; see engine.py)."""

from fhirmwl.validation.engine import validate, validate_bundle
from fhirmwl.validation.issues import Issue, to_operation_outcome

__all__ = ["Issue", "to_operation_outcome", "validate", "validate_bundle"]
