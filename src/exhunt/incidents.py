"""Alerts grouped into incidents: one server, one stretch of time, every piece of evidence once.

Several rules often fire on the same event (a DLL written into an agents folder is a
placement, a LightNeuron indicator and the seed rule's hit). An analyst reads that event
once, with every rule that found it: an `Evidence`. Evidence on one server close in time
(each within `window` of the previous one) is one `Incident`, with the entities it involves
(hosts, accounts, files, processes, agents) and the chain rule's steps when one is inside.

The grouping reads only alert fields (no backend, no rule objects), so every engine's alerts
and the `alerts` state give the same incidents; ids are hashes of what the data says, stable
across runs over the same data and across display time zones.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from exhunt.rule import SEVERITIES

#: The grouping window when none is given (`--incident-window`).
DEFAULT_WINDOW = timedelta(hours=1)

#: The entity kinds, in the order outputs show them.
ENTITY_KINDS = ("hosts", "accounts", "files", "processes", "agents")


def severity_rank(name: Any) -> int:
    """0 (informational) .. 4 (critical); an unknown severity ranks below informational."""
    try:
        return SEVERITIES.index(str(name).lower())
    except ValueError:
        return -1


def _alert_rank(alert: dict[str, Any]) -> int:
    return severity_rank(alert.get("severity"))


def parse_time(value: Any) -> datetime | None:
    """An alert's time (`...Z` as alerts.iso writes it, or with an offset after --timezone) in
    UTC; None when absent or not a time."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def host_key(name: Any) -> str:
    """What makes two DeviceName values the same server: the short host name, lower-cased
    (`EXCH01.contoso.local` == `exch01`); an IP address is kept whole."""
    text = "" if name is None else str(name).strip().lower()
    return text if not text or text.replace(".", "").isdigit() or ":" in text else text.split(".", 1)[0]


def _digest(parts: list[Any]) -> str:
    text = json.dumps(parts, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _set(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def evidence_keys(alert: dict[str, Any]) -> list[list[Any]]:
    """Every identity of the event an alert's row came from, the strongest first: its file
    and record when known; server, time and ReportId when it has one; else the alert itself.
    Times are compared in UTC, servers by host_key."""
    keys: list[list[Any]] = []
    if _set(alert.get("source_file")) and _set(alert.get("source_record")):
        keys.append(["source", str(alert["source_file"]), str(alert["source_record"])])
    if _set(alert.get("ReportId")):
        when = parse_time(alert.get("Timestamp"))
        keys.append(["report", host_key(alert.get("DeviceName")),
                     when.isoformat() if when else alert.get("Timestamp"), str(alert["ReportId"])])
    if not keys:
        keys.append(["alert", str(alert["alert_id"]) if _set(alert.get("alert_id")) else dict(alert)])
    return keys


def evidence_key(alert: dict[str, Any]) -> list[Any]:
    """The event an alert's row came from (the strongest of evidence_keys)."""
    return evidence_keys(alert)[0]


@dataclass
class Evidence:
    """One event (or one correlation) found by one or more rules: shown once, with every rule."""

    evidence_id: str
    #: ISO-8601 like the alerts' Timestamp (the earliest of its alerts), None when they have none.
    timestamp: str | None
    #: Every alert on this event, highest severity first (the alert dicts themselves, not copies).
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def severity(self) -> str:
        """The highest severity of its alerts."""
        return str(self.alerts[0].get("severity", "")) if self.alerts else ""

    @property
    def rule_names(self) -> list[str]:
        """Every rule that found it, most severe first, each once."""
        return _unique(str(a.get("rule_name", "")) for a in self.alerts)

    @property
    def alert_ids(self) -> list[str]:
        return [str(a.get("alert_id", "")) for a in self.alerts]


@dataclass
class Incident:
    """Evidence on one server, each within the window of the previous one."""

    incident_id: str
    #: DeviceName of the server (the longest spelling its alerts use).
    device: str
    #: First and last evidence time ("" for the incident of a server's alerts without a time).
    start: str
    end: str
    severity: str
    #: Time order.
    evidence: list[Evidence]
    #: Keys exactly ENTITY_KINDS; values in order of first appearance, each once (case-insensitive).
    entities: dict[str, list[str]]
    #: The chain rule's steps (its Steps column split), when a chain alert is inside.
    chain: list[str]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Every alert inside, in time order."""
        every = [a for ev in self.evidence for a in ev.alerts]
        return sorted(every, key=lambda a: (_sort_time(a.get("Timestamp")), str(a.get("rule_name", ""))))

    @property
    def rules(self) -> list[str]:
        """Rule names inside, most severe first (then in order of first appearance)."""
        first: dict[str, tuple[int, int]] = {}
        for i, alert in enumerate(self.alerts):
            name = str(alert.get("rule_name", ""))
            rank = _alert_rank(alert)
            if name not in first or rank > first[name][0]:
                first[name] = (rank, first.get(name, (rank, i))[1])
        return sorted(first, key=lambda n: (-first[n][0], first[n][1]))


def _sort_time(value: Any) -> tuple[int, float]:
    when = parse_time(value)
    return (0, when.timestamp()) if when else (1, 0.0)


def _unique(values: Iterable[str]) -> list[str]:
    """Non-empty values, each once compared case-insensitively, first spelling kept."""
    seen: dict[str, str] = {}
    for value in values:
        text = value.strip()
        if text and text.lower() not in seen:
            seen[text.lower()] = text
    return list(seen.values())


# --- entities -------------------------------------------------------------------------------

_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
#: Fields naming other hosts involved (the source of a pickup-folder drop, a remote session).
_REMOTE_HOSTS = ("RemoteDeviceName", "RequestSourceIP", "RemoteIP")
#: (domain field, name field) pairs and single fields naming an account.
_ACCOUNT_PAIRS = (("AccountDomain", "AccountName"), ("InitiatingProcessAccountDomain", "InitiatingProcessAccountName"))
_ACCOUNT_UPNS = ("AccountUpn", "InitiatingProcessAccountUpn")


def _text(alert: dict[str, Any], key: str) -> str:
    value = alert.get(key)
    return "" if value is None else str(value).strip()


def _image(command_line: str) -> str:
    """The program of a command line, file name only: `"C:\\x\\a.exe" -y` -> `a.exe`."""
    line = command_line.strip()
    if not line:
        return ""
    first = line[1:].split('"', 1)[0] if line.startswith('"') else line.split(None, 1)[0]
    return re.split(r"[\\/]", first)[-1]


def _same_program(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return bool(a) and (a == b or a == b + ".exe" or a + ".exe" == b)


def _is_process_event(alert: dict[str, Any]) -> bool:
    """Whether FileName/FolderPath name a process that ran (a process event), not a file."""
    if _text(alert, "ActionType").lower() == "processcreated":
        return True
    name = _text(alert, "FileName")
    return bool(name) and _same_program(_image(_text(alert, "ProcessCommandLine")), name)


def _accounts(alert: dict[str, Any]) -> list[str]:
    found = []
    for dom_key, name_key in _ACCOUNT_PAIRS:
        domain = _text(alert, dom_key)
        # A correlation lists several accounts in one field ("svc-backup, system"); Windows
        # account names cannot hold a comma.
        for name in (n.strip() for n in _text(alert, name_key).split(",")):
            if not name:
                continue
            qualified = domain and not any(c in name for c in "\\/@")
            found.append(f"{domain}\\{name}" if qualified else name)
    found += [_text(alert, k) for k in _ACCOUNT_UPNS]
    return found


def _files(alert: dict[str, Any], process_event: bool) -> list[str]:
    found = [_text(alert, "AssemblyPath")]
    if process_event:
        return found
    folder, name = _text(alert, "FolderPath"), _text(alert, "FileName")
    if folder:
        if name and not folder.lower().endswith(name.lower()) and ("\\" in folder or "/" in folder):
            folder = folder.rstrip("\\/") + ("\\" if "\\" in folder else "/") + name
        found.append(folder)
    elif name and _EXTENSION.search(name) and " " not in name:
        found.append(name)
    return found


def _processes(alert: dict[str, Any], process_event: bool) -> list[str]:
    found = [_text(alert, "InitiatingProcessParentFileName")]
    parent = _text(alert, "InitiatingProcessFileName") or _image(_text(alert, "InitiatingProcessCommandLine"))
    found.append(parent)
    if process_event:
        found.append(_text(alert, "FileName") or _image(_text(alert, "ProcessCommandLine")))
    return found


def entities_of(alerts: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Hosts, accounts, files, processes and agents the alerts name, each once (compared
    case-insensitively), in order of first appearance; a bare account name is dropped when
    the same name appears with its domain."""
    raw: dict[str, list[str]] = {kind: [] for kind in ENTITY_KINDS}
    devices = [_text(a, "DeviceName") for a in alerts if _text(a, "DeviceName")]
    # One server may be spelt `exch01` and `exch01.contoso.local`: show the longest spelling.
    by_key: dict[str, str] = {}
    for name in devices:
        key = host_key(name)
        if len(name) > len(by_key.get(key, "")):
            by_key[key] = name
    raw["hosts"] = [by_key[host_key(name)] for name in devices]
    for alert in alerts:
        process_event = _is_process_event(alert)
        raw["hosts"] += [_text(alert, k) for k in _REMOTE_HOSTS]
        raw["accounts"] += _accounts(alert)
        raw["files"] += _files(alert, process_event)
        raw["processes"] += _processes(alert, process_event)
        raw["agents"].append(_text(alert, "AgentName"))
    out = {kind: _unique(values) for kind, values in raw.items()}
    qualified = {a.lower().rsplit("\\", 1)[1] for a in out["accounts"] if "\\" in a}
    out["accounts"] = [a for a in out["accounts"] if "\\" in a or a.lower() not in qualified]
    return out


# --- chain -----------------------------------------------------------------------------------

#: Steps of the chain rule are `YYYY-MM-DD hh:mm:ss stage: detail` joined by ` | `; a detail
#: may hold ` | ` itself (a PowerShell pipeline), so only a separator before a time splits.
_STEP_SPLIT = re.compile(r" \| (?=\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2})")


def chain_steps(alerts: list[dict[str, Any]]) -> list[str]:
    """The steps of every chain alert (an alert with a `Steps` column), each once, in order."""
    steps: list[str] = []
    for alert in alerts:
        text = alert.get("Steps")
        if isinstance(text, list):
            steps += [str(s) for s in text]
        elif _set(text):
            steps += _STEP_SPLIT.split(str(text))
    return _unique_exact(steps)


def _unique_exact(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


# --- grouping --------------------------------------------------------------------------------


def _evidence(alerts: list[dict[str, Any]]) -> list[Evidence]:
    """Alerts of one server as evidence (one per event), in time order.

    Alerts sharing any identity are one event: a rule that kept the row's file and record
    and another that kept only its ReportId (a correlation naming the event it starts from)
    found the same thing. The evidence id is the strongest identity its alerts carry.
    """
    parent = list(range(len(alerts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    identity: list[list[list[Any]]] = []
    for i, alert in enumerate(alerts):
        keys = evidence_keys(alert)
        identity.append(keys)
        for key in keys:
            digest = _digest(key)
            if digest in owner:
                parent[root(i)] = root(owner[digest])
            else:
                owner[digest] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(alerts)):
        groups.setdefault(root(i), []).append(i)
    out = []
    for members in groups.values():
        keys = [key for i in members for key in identity[i]]
        strongest = min(keys, key=lambda k: (_KIND_ORDER.index(k[0]), _digest(k)))
        chosen = sorted((alerts[i] for i in members), key=lambda a: (-_alert_rank(a), str(a.get("rule_name", ""))))
        times = sorted((a.get("Timestamp") for a in chosen if parse_time(a.get("Timestamp"))), key=_sort_time)
        out.append(Evidence(_digest(strongest), times[0] if times else None, chosen))
    out.sort(key=lambda ev: _sort_time(ev.timestamp))
    return out


_KIND_ORDER = ("source", "report", "alert")


def _incident(evidence: list[Evidence]) -> Incident:
    alerts = [a for ev in evidence for a in ev.alerts]
    entities = entities_of(alerts)
    device = entities["hosts"][0] if entities["hosts"] else ""
    top = max(alerts, key=_alert_rank)
    times = [ev.timestamp for ev in evidence if ev.timestamp]
    return Incident(
        incident_id=_digest([host_key(device), evidence[0].evidence_id]),
        device=device,
        start=times[0] if times else "",
        end=times[-1] if times else "",
        severity=str(top.get("severity", "")),
        evidence=evidence,
        entities=entities,
        chain=chain_steps(sorted(alerts, key=lambda a: _sort_time(a.get("Timestamp")))),
    )


def group(alerts: list[dict[str, Any]], window: timedelta = DEFAULT_WINDOW) -> list[Incident]:
    """Alerts on the same server whose times are within `window` of the previous one form one incident.
    Incidents ordered most severe first, then by start time.

    Alerts without a time form one incident per server, after that server's timed ones of
    the same severity. The alert dicts are not copied or changed.
    """
    if window < timedelta(0):
        raise ValueError("the incident window cannot be negative")
    by_host: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        by_host.setdefault(host_key(alert.get("DeviceName")), []).append(alert)
    incidents: list[Incident] = []
    for members in by_host.values():
        evidence = _evidence(members)
        timed = [ev for ev in evidence if ev.timestamp]
        untimed = [ev for ev in evidence if not ev.timestamp]
        run: list[Evidence] = []
        last: datetime | None = None
        for ev in timed:
            when = parse_time(ev.timestamp)
            assert when is not None
            if run and last is not None and when - last > window:
                incidents.append(_incident(run))
                run = []
            run.append(ev)
            last = when
        if run:
            incidents.append(_incident(run))
        if untimed:
            incidents.append(_incident(untimed))
    incidents.sort(key=lambda inc: (-severity_rank(inc.severity), _sort_time(inc.start) if inc.start else (2, 0.0),
                                    host_key(inc.device)))
    return incidents


# --- records for outputs ---------------------------------------------------------------------


def annotated_alerts(incident: Incident) -> list[dict[str, Any]]:
    """Copies of the incident's alerts (time order), each with `incident_id`, `evidence_id` and
    `found_by` (every rule on its evidence) right after `alert_id`."""
    where = {id(a): ev for ev in incident.evidence for a in ev.alerts}
    out = []
    for alert in incident.alerts:
        ev = where[id(alert)]
        row: dict[str, Any] = {"alert_id": alert.get("alert_id", ""), "incident_id": incident.incident_id,
                               "evidence_id": ev.evidence_id, "found_by": ev.rule_names}
        row.update((k, v) for k, v in alert.items() if k not in row)
        out.append(row)
    return out


def as_record(incident: Incident) -> dict[str, Any]:
    """The incident as a JSON object (json/jsonl output)."""
    return {
        "incident_id": incident.incident_id,
        "DeviceName": incident.device,
        "start": incident.start or None,
        "end": incident.end or None,
        "severity": incident.severity,
        "rules": incident.rules,
        "alert_count": sum(len(ev.alerts) for ev in incident.evidence),
        "evidence_count": len(incident.evidence),
        "entities": incident.entities,
        "chain": incident.chain,
        "evidence": [{"evidence_id": ev.evidence_id, "Timestamp": ev.timestamp, "severity": ev.severity,
                      "rules": ev.rule_names, "alert_ids": ev.alert_ids} for ev in incident.evidence],
        "alerts": annotated_alerts(incident),
    }
