"""Compact resource JSON on SQLite: DEFLATE (zlib) with a preset dictionary of FHIR vocabulary.

A stored resource is 300–1,000 bytes of JSON, mostly the same element names, code system URLs
and reference prefixes again and again. Plain zlib saves a third of that; primed with a
dictionary of those strings it saves about two thirds (541 → 191 bytes per resource on the
order graphs of ``bench/storage.py``) for about 10 µs to deflate and 3 µs to inflate one.
PostgreSQL keeps text (its ``content`` column is ``TEXT``), and so does any row written before
this codec.

Format: a BLOB whose first byte is the dictionary version (1), then a raw DEFLATE stream. A
value that is text is returned as it is. ``_DICTIONARY_V1`` must never change: stored rows
depend on it byte for byte; a better dictionary gets a new version byte.
"""

from __future__ import annotations

import zlib

_VERSION = 1
# Strings the FHIR resources of an order graph repeat; the most frequent ones last (DEFLATE
# finds nearer matches with shorter distances).
_DICTIONARY_V1 = "".join(
    (
        '"given":["',
        '"birthDate":"',
        '"gender":"',
        '"name":[{"family":"',
        "female",
        "male",
        '"class":',
        '"period":{"start":"',
        '"display":"',
        '"text":"',
        '"extension":[{"url":"',
        "http://hl7.org/fhir/uv/imaging-service-request-ig/",
        '"tag":[{"system":"',
        '"occurrenceDateTime":"',
        '"authoredOn":"',
        '"priority":"routine"',
        '"performer":[{"reference":"',
        '"requester":{"reference":"Practitioner/',
        '"encounter":{"reference":"Encounter/',
        '"requestedPeriod":{"start":"',
        '"input":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM",'
        '"code":"',
        '"valueCodeableConcept":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/'
        'DCM","code":"',
        '"requestedPerformer":[{"reference":{"reference":"Device/',
        '"for":{"reference":"Patient/',
        '"owner":{"reference":"',
        '"code":{"concept":{"coding":[{"system":"http://loinc.org","code":"',
        '"code":{"coding":[{"system":"',
        '"basedOn":[{"reference":"ServiceRequest/',
        '"subject":{"reference":"Patient/',
        '"intent":"order"',
        '"intent":"plan"',
        '"status":"requested"',
        '"status":"active"',
        '"status":"registered"',
        '"status":"in-progress"',
        '"status":"completed"',
        '"system":"urn:dicom:uid","value":"urn:oid:',
        '"reference":"',
        '"value":"',
        '"system":"',
        '"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/'
        'v2-0203","code":"',
        '"meta":{"versionId":"',
        '","lastUpdated":"20',
        '","id":"',
        '{"resourceType":"',
        "ServiceRequest",
        "ImagingStudy",
        "Encounter",
        "Patient",
        "Device",
        "Task",
        "Practitioner",
    )
).encode()


def pack(text: str) -> bytes:
    """The stored form of a resource's JSON text."""
    # A 4 KB window and small hash tables: the state zlib allocates per call, not the
    # compression, is what costs at this size (about 10 µs per resource against 60–200 µs
    # with the defaults, for the same output on order-graph resources).
    deflate = zlib.compressobj(6, zlib.DEFLATED, -12, 6, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY_V1)
    return bytes((_VERSION,)) + deflate.compress(text.encode()) + deflate.flush()


def unpack(value: str | bytes | None) -> str | None:
    """JSON text of a stored value: packed (BLOB) or plain text (PostgreSQL, older rows)."""
    if value is None or isinstance(value, str):
        return value
    if value[0] != _VERSION:
        raise ValueError(f"stored resource in unknown format {value[0]}")
    inflate = zlib.decompressobj(-15, _DICTIONARY_V1)
    return (inflate.decompress(value[1:]) + inflate.flush()).decode()
