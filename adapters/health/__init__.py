"""Health adapters: HL7 v2 A&E messages and FHIR R4 resources into attendance events."""

from adapters.health.ack import ack_for
from adapters.health.fhir import FhirAdapter
from adapters.health.hl7_message import frame_mllp
from adapters.health.hl7v2 import Hl7v2Adapter

__all__ = ["FhirAdapter", "Hl7v2Adapter", "ack_for", "frame_mllp"]
