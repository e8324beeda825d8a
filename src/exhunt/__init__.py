"""exhunt: hunt Exchange transport-agent persistence (ATT&CK T1505.002) with KQL over local telemetry."""

__version__ = "0.1.0"
