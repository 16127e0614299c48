"""FHIR R5 helpers shared by the store, the API and the mappings."""
