"""Windows events -> exhunt tables, in one place for every Windows reader.

A reader converts its records to `WinEvent` (see forms.py) and hands them to a
`Mapper`, one per input file. Every event becomes an `Event` row (the Log
Analytics shape), Security-channel events also a `SecurityEvent` row, and the
events Defender has an equivalent for become rows of the Defender tables.
"""

from __future__ import annotations

from typing import Any

from exhunt.schema import SOURCE_RECORD
from exhunt.winlog import exchange, security, sysmon
from exhunt.winlog.event import WinEvent
from exhunt.winlog.event_table import data_values, event_data_xml, event_row
from exhunt.winlog.powershell import CHANNELS as PS_CHANNELS
from exhunt.winlog.powershell import PowerShell

Row = dict[str, Any]
Out = list[tuple[str, Row]]

__all__ = ["Mapper", "WinEvent"]

SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"
SYSMON_PROVIDER = "microsoft-windows-sysmon"
#: Distinct certificate facts remembered per file before the memory is reset.
MAX_CERTS = 100_000


class Mapper:
    """Maps the events of one input; `finish()` flushes what waits for more parts."""

    def __init__(self, fallback_id: str) -> None:
        self.fallback_id = fallback_id
        self.powershell = PowerShell()
        self._certs: set[tuple[Any, ...]] = set()

    def map(self, ev: WinEvent) -> Out:
        pairs = data_values(ev)
        xml = event_data_xml(pairs)
        out: Out = [("Event", event_row(ev, pairs, xml))]
        channel = ev.channel.lower()
        if channel == "security":
            out.append(("SecurityEvent", security.security_event(ev, xml)))
        base: Row = {"Timestamp": ev.time, "DeviceName": ev.computer, "ReportId": ev.report_id(self.fallback_id),
                     SOURCE_RECORD: ev.where}
        if channel == SYSMON_CHANNEL or ev.provider.lower() == SYSMON_PROVIDER:
            for table, row in sysmon.map_event(ev, base):
                if table == "DeviceFileCertificateInfo":
                    key = (row["DeviceName"], row["SHA1"], row["Signer"], row["IsSigned"], row["IsTrusted"])
                    if key in self._certs:
                        continue
                    if len(self._certs) >= MAX_CERTS:
                        self._certs.clear()
                    self._certs.add(key)
                out.append((table, row))
        elif channel == "security":
            if ev.event_id == 4688:
                out += security.process_create(ev, base)
        elif channel in PS_CHANNELS:
            out += self.powershell.map_event(ev, base)
        elif exchange.is_cmdlet_log(ev):
            audit = exchange.audit_row(ev)
            if audit is not None:
                out.append(("ExchangeAdminAuditLogs", audit))
        where = ev.where
        for _, row in out:
            row.setdefault(SOURCE_RECORD, where)
        return out

    def finish(self) -> Out:
        return self.powershell.finish()
