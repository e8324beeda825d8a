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
from exhunt.winlog.event_table import event_row, event_texts
from exhunt.winlog.powershell import CHANNELS as PS_CHANNELS
from exhunt.winlog.powershell import EVENT_IDS as PS_EVENT_IDS
from exhunt.winlog.powershell import PowerShell

Row = dict[str, Any]
Out = list[tuple[str, Row]]

__all__ = ["Mapper", "WinEvent"]

SYSMON_CHANNEL = "microsoft-windows-sysmon/operational"
SYSMON_PROVIDER = "microsoft-windows-sysmon"
#: Distinct certificate facts remembered per file before the memory is reset.
MAX_CERTS = 100_000

# What a (channel, provider) pair is mapped as beyond the Event row; decided once per pair.
_OTHER, _SYSMON, _SECURITY, _POWERSHELL, _EXCHANGE, _SYSMON_IN_SECURITY = range(6)


def _kind(channel: str, provider: str) -> int:
    ch = channel.lower()
    if ch == SYSMON_CHANNEL or provider.lower() == SYSMON_PROVIDER:
        return _SYSMON_IN_SECURITY if ch == "security" else _SYSMON
    if ch == "security":
        return _SECURITY
    if ch in PS_CHANNELS:
        return _POWERSHELL
    if ch == exchange.CHANNEL or provider.lower() == exchange.PROVIDER:
        return _EXCHANGE
    return _OTHER


class Mapper:
    """Maps the events of one input; `finish()` flushes what waits for more parts."""

    def __init__(self, fallback_id: str) -> None:
        self.fallback_id = fallback_id
        self.powershell = PowerShell()
        self._certs: set[tuple[Any, ...]] = set()
        self._kinds: dict[tuple[str, str], int] = {}

    def _base(self, ev: WinEvent) -> Row:
        """The columns every Defender row of the event shares."""
        return {"Timestamp": ev.time, "DeviceName": ev.computer, "ReportId": ev.report_id(self.fallback_id),
                SOURCE_RECORD: ev.where}

    def map(self, ev: WinEvent) -> Out:
        where = ev.where
        texts = event_texts(ev)
        row = event_row(ev, texts)
        row.setdefault(SOURCE_RECORD, where)
        out: Out = [("Event", row)]
        key = (ev.channel, ev.provider)
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = _kind(*key)
        if kind == _OTHER:
            return out
        eid = ev.event_id
        if kind in (_SECURITY, _SYSMON_IN_SECURITY):
            sec = security.security_event(ev, texts[0])
            sec.setdefault(SOURCE_RECORD, where)
            out.append(("SecurityEvent", sec))
            if kind == _SECURITY:
                if eid == 4688:
                    out += security.process_create(ev, self._base(ev))
                elif eid in (4624, 4625, 4648):
                    out += security.logon(ev, self._base(ev))
                return out
        if kind in (_SYSMON, _SYSMON_IN_SECURITY):
            fn = sysmon.MAPPERS.get(eid or -1)
            if fn is not None:
                for table, r in fn(ev, self._base(ev)):
                    if table == "DeviceFileCertificateInfo":
                        cert = (r["DeviceName"], r["SHA1"], r["Signer"], r["IsSigned"], r["IsTrusted"])
                        if cert in self._certs:
                            continue
                        if len(self._certs) >= MAX_CERTS:
                            self._certs.clear()
                        self._certs.add(cert)
                        r.setdefault(SOURCE_RECORD, where)
                    out.append((table, r))
        else:
            out += self._stateful(kind, ev, self._base(ev))
        return out

    def _stateful(self, kind: int, ev: WinEvent, base: Row) -> Out:
        """PowerShell and Exchange cmdlet-log rows (kept in Python: script blocks are reassembled
        across records, cmdlet parameters parsed from text)."""
        eid = ev.event_id
        if kind == _POWERSHELL:
            return self.powershell.map_event(ev, base) if eid in PS_EVENT_IDS else []
        if kind == _EXCHANGE and (eid == 1 or eid == 6):
            audit = exchange.audit_row(ev)
            if audit is not None:
                audit.setdefault(SOURCE_RECORD, ev.where)
                return [("ExchangeAdminAuditLogs", audit)]
        return []

    def map_stateful(self, ev: WinEvent, report_id: int) -> Out:
        """The rows the SQL mapping (exhunt.winlog.sql) leaves to Python, for one event."""
        kind = _kind(ev.channel, ev.provider)
        base = {"Timestamp": ev.time, "DeviceName": ev.computer, "ReportId": report_id, SOURCE_RECORD: ev.where}
        return self._stateful(kind, ev, base)

    def finish(self) -> Out:
        return self.powershell.finish()
