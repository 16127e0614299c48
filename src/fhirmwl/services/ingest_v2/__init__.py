"""The HL7 v2 intake service: MLLP messages in, FHIR order state and ACKs out.

``ingest(services, raw, peer) -> ACK bytes`` is the one entry point (the MLLP listener, the
``fhirmwl v2 replay`` command and the tests call it); ``install(services)`` adds the schema, the
environment and the MLLP listener factory to a process. Docs: docs/hl7v2.md "Service behaviour".
"""

from fhirmwl.services.ingest_v2.env import IngestEnv, environment, mapping_context
from fhirmwl.services.ingest_v2.listener import install, mllp_listener
from fhirmwl.services.ingest_v2.service import ingest

__all__ = ["IngestEnv", "environment", "ingest", "install", "mapping_context", "mllp_listener"]
