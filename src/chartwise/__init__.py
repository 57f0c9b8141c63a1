"""Chartwise: agentic EHR reasoning over FHIR R4 records, every statement cited."""

__version__ = "0.1.0"
