"""The stored form of ``audit_event.content``: the AuditEvent JSON deflated with a preset
dictionary.

An AuditEvent is mostly the same code system URLs, role codes and element names
(``fhirmwl.audit.events.to_fhir``); what differs per event is its instant, agent and the
references of the resources concerned. Primed with that vocabulary (the usual event last, in
the order ``to_fhir`` writes it), DEFLATE keeps little more than those: 1,633 → about 300
bytes per event on the order graphs of ``bench/storage.py``. The JSON is kept whole, so the
AuditEvent read back is byte for byte the one recorded. ``_DICTIONARY_V33`` must never change
(see ``fhirmwl.store.preset``).
"""

from __future__ import annotations

from fhirmwl.store.preset import PresetCodec

_DICTIONARY_V33 = "".join(
    (
        # Less frequent parts first (farther back in the window).
        '"detail":[{"type":{"text":"called_ae"},"valueString":"',
        '{"type":{"text":"message_type"},"valueString":"',
        '{"type":{"text":"msh10"},"valueString":"',
        '{"type":{"text":"patient_id"},"valueString":"',
        '{"type":{"text":"method"},"valueString":"',
        '{"type":{"text":"path"},"valueString":"/fhir/',
        '{"type":{"text":"status"},"valueString":"',
        '{"type":{"text":"ack"},"valueString":"A',
        '"outcome":{"code":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-outcome",'
        '"code":"4"},"detail":[{"text":"',
        '"networkString":"',
        '"policy":["urn:x509-subject:',
        '"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/object-role",'
        '"code":"24","display":"Query"}},"query":"',
        '{"system":"http://hl7.org/fhir/restful-interaction","code":"',
        '"display":"Application Activity"',
        '"display":"Security Alert"',
        '"display":"User Authentication"',
        '"display":"Node Authentication"',
        '"display":"Unauthorized Use Detected"',
        '"display":"Patient Record"',
        '"display":"Procedure Record"',
        '"category":[{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM",'
        '"code":"110112","display":"Query"}]}],'
        '"code":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"',
        '"display":"Order Record"}]},"action":"',
        '"who":{"identifier":{"value":"',
        '"},"display":"',
        '"ServiceRequest/',
        '{"what":{"reference":"Task/',
        '{"what":{"reference":"ImagingStudy/',
        '{"what":{"reference":"Device/',
        # The usual event, in the order ``to_fhir`` writes it.
        '{"resourceType":"AuditEvent","category":[{"coding":[{"system":'
        '"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest",'
        '"display":"RESTful Operation"}]}],"code":{"coding":[{"system":'
        '"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest",'
        '"display":"RESTful Operation"}]},"action":"C","recorded":"20',
        '","outcome":{"code":{"system":'
        '"http://terminology.hl7.org/CodeSystem/audit-event-outcome","code":"0"}},'
        '"agent":[{"type":{"coding":[{"system":"http://dicom.nema.org/resources/ontology/DCM",'
        '"code":"110153","display":"Source Role ID"}]},"who":{"identifier":{"value":"fhirmwl"}},'
        '"requestor":true},{"type":{"coding":[{"system":'
        '"http://dicom.nema.org/resources/ontology/DCM","code":"110152",'
        '"display":"Destination Role ID"}]},"who":{"display":"fhirmwl"},"requestor":false}],'
        '"source":{"observer":{"display":"fhirmwl"},"type":[{"coding":[{"system":'
        '"http://terminology.hl7.org/CodeSystem/security-source-type","code":"4",'
        '"display":"Application Server"}]}]},"patient":{"reference":"Patient/',
        '"},"entity":[{"what":{"reference":"Patient/',
        '"},"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/object-role",'
        '"code":"1","display":"Patient"}]}},{"what":{"reference":"Encounter/',
        '"}},{"what":{"reference":"ServiceRequest/',
        '"}},{"what":{"reference":"',
        '"}}]}',
    )
).encode()

AUDIT_CODEC = PresetCodec(33, _DICTIONARY_V33)
pack_content = AUDIT_CODEC.pack
unpack_content = AUDIT_CODEC.unpack
unpack_content_bytes = AUDIT_CODEC.unpack_bytes
