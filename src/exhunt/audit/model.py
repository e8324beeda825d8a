"""What every audit module passes around: one registered transport agent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Agent:
    """One <agent> of an agent list (or one agent of a saved Get-TransportAgent output)."""

    name: str
    factory: str  # classFactory / TransportAgentFactory
    base_type: str  # baseType ("" when the source has none)
    assembly_path: str  # as written: a Windows path, maybe relative or %ExchangeInstallPath%...
    enabled: bool | None
    order: int  # position in the list (0-based): Exchange's priority order
    service: str  # "Hub" (agents.config), "FrontEnd" (fetagents.config), "Edge", or "" unknown
    source: str  # the file it was read from (collection-relative) and its line: "C/.../agents.config:12"
    exchange_root: str  # the Windows path of the Exchange install this list belongs to ("" unknown)


def q(text: object) -> str:
    """A value quoted in evidence: 'C:\\Temp\\a.dll' (as written, backslashes single)."""
    return f"'{text}'"
