"""MSExchange Management log (provider MSExchange CmdletLogs) -> ExchangeAdminAuditLogs.

Every cmdlet run through the Exchange Management Shell is logged here (event 1
succeeded, 6 failed) with an unnamed, positional EventData list. Column names
follow Sentinel's ExchangeAdminAuditLogs parser; `Parameters` is the parsed
parameter text so a rule can test `Parameters.AssemblyPath` directly.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from exhunt import yamltext
from exhunt.winlog.common import dumps, text
from exhunt.winlog.event import WinEvent

Row = dict[str, Any]

CHANNEL = "msexchange management"
PROVIDER = "msexchange cmdletlogs"
#: Canonical spelling of the parameters rules look at (PowerShell names are case-insensitive).
CANONICAL = {n.lower(): n for n in (
    "Name", "AssemblyPath", "TransportAgentFactory", "TransportService", "Identity", "Priority",
    "DomainController", "Confirm", "WhatIf", "Enabled",
)}
_PNAME = re.compile(r"(?:^|(?<=\s))-([A-Za-z]\w*)(?::\s*|\s+|$)")
_QUOTE_END = {q: re.compile(re.escape(q) + r"(?=\s+-[A-Za-z]\w*(?::|\s|$)|\s*$)") for q in "\"'"}
_LEGACY_PAIR = re.compile(r"(\w+)=(.*?)(?=, \w+=|$)", re.S)
#: Message-only forms (OTRF exports): "Cmdlet suceeded. Cmdlet X, parameters Y."
_MESSAGE = re.compile(r"Cmdlet (\S+), parameters ?(.*?)\.?\s*$", re.S)


def parse_parameters(typed: str) -> dict[str, str]:
    """`-Name "A" -AssemblyPath "C:\\x.dll" -Force` -> {"Name": "A", "AssemblyPath": "C:\\x.dll", "Force": "True"}.

    Also reads Exchange 2010's `{Identity=DAG1, MailboxServer=EX2}` form. A quoted
    value ends at the quote followed by the next `-Parameter` (values may hold quotes).
    """
    s = typed.strip()
    out: dict[str, str] = {}
    if s.startswith("{") and s.endswith("}"):
        for pair in _LEGACY_PAIR.finditer(s[1:-1].strip()):
            out[CANONICAL.get(pair.group(1).lower(), pair.group(1))] = pair.group(2).strip()
        return out
    pos = 0
    while (m := _PNAME.search(s, pos)) is not None:
        name = CANONICAL.get(m.group(1).lower(), m.group(1))
        start = m.end()
        if start < len(s) and s[start] in _QUOTE_END:
            end = _QUOTE_END[s[start]].search(s, start + 1)
            value = s[start + 1: end.start()] if end else s[start + 1:]
            pos = end.end() if end else len(s)
        else:
            nxt = _PNAME.search(s, start)
            stop = nxt.start() if nxt else len(s)
            value = s[start:stop].strip()
            pos = stop
        out[name] = value if value else "True"
    return out


#: A `-Parameter` in a cmdlet's parameter text, as the parser's sensitivity check reads them.
_PARAM_WORD = re.compile(r"\B(-\w+)")
#: The VIP watchlist's columns (exhunt has no watchlist: always empty).
VIP_COLUMNS = ("canonicalName", "displayName", "distinguishedName", "objectGUID", "objectSID", "sAMAccountName",
               "userPrincipalName")


@cache
def sensitive_cmdlets() -> dict[str, tuple[bool, tuple[str, ...]]]:
    """lower-case cmdlet -> (acts on a user, the parameters that make it sensitive: () for any run),
    from refdata/exchange_sensitive_cmdlets.yaml."""
    doc = yamltext.load(resources.files("exhunt.refdata").joinpath("exchange_sensitive_cmdlets.yaml")
                        .read_text(encoding="utf-8"))
    return {name.lower(): (bool(spec.get("user")), tuple(p.lower() for p in spec.get("parameters") or ()))
            for name, spec in doc["cmdlets"].items()}


def sensitivity(cmdlet: str, parameters_text: str, computer: str) -> Row:
    """The columns Sentinel's Exchange parser adds to a cmdlet's row (facts of that parser; exhunt's
    own cmdlet list, no VIP watchlist, no ESI configuration: the environment is 'Unknown-<domain>')."""
    found = sensitive_cmdlets().get(cmdlet.lower())
    domain = computer.split(".", 1)[1] if "." in computer else computer
    row: Row = {"IsVIP": False, **{c: "" for c in VIP_COLUMNS}, "ESIEnvironment": f"Unknown-{domain}"}
    if found is None:
        # dynamic null, as JSON text: an empty text is no JSON for the array functions
        return {**row, "IsSenstiveCmdlet": False, "IsRestrictedCmdLet": None, "ExtractedParameters": "null",
                "RestrictedParameters": "null", "IsSenstiveCmdletParameters": False, "IsSensitive": False,
                "UserOriented": ""}
    user, restricted = found
    extracted = _PARAM_WORD.findall(parameters_text.lower())
    hit = any(p in restricted for p in extracted)
    return {**row, "IsSenstiveCmdlet": True, "IsRestrictedCmdLet": bool(restricted),
            "ExtractedParameters": dumps(extracted), "RestrictedParameters": dumps(list(restricted)),
            "IsSenstiveCmdletParameters": hit, "IsSensitive": not restricted or hit,
            "UserOriented": "Yes" if user else "No"}


def is_cmdlet_log(ev: WinEvent) -> bool:
    return ev.event_id in (1, 6) and (ev.channel.lower() == CHANNEL or ev.provider.lower() == PROVIDER)


def _error(items: list[str]) -> str:
    """Event 6 carries the error after the runtime facts (index 11 in the logs seen); fall back
    to the first later item that names an exception."""
    if len(items) > 11 and items[11]:
        return items[11]
    return next((i for i in items[7:] if "Exception" in i or "error" in i.lower()), "")


def table_row(
    *, time: str, computer: str, event_id: int | None, succeeded: bool | None, caller: str, cmdlet: str,
    parameters_text: str, parameters: dict[str, str], runspace_type: str = "", host_process: str = "",
    error: str = "", event_data: str = "", target: str = "",
) -> Row:
    """One ExchangeAdminAuditLogs row, whatever recorded the cmdlet (this log, or the admin audit log
    export: exhunt.sources.exchange_audit), so every source fills the same columns the same way."""
    return {
        "TimeGenerated": time,
        "Computer": computer,
        "EventID": event_id,
        "Status": "" if succeeded is None else "Success" if succeeded else "Failure",
        "Caller": caller,
        "TargetObject": parameters.get("Identity") or parameters.get("Name") or target,
        "CmdletName": cmdlet,
        "CmdletParameters": parameters_text,
        "Parameters": dumps(parameters),
        "RunspaceType": runspace_type,
        "HostProcess": host_process,
        "ErrorMessage": error,
        "EventData": event_data,
        **sensitivity(cmdlet, parameters_text, computer),
    }


def audit_row(ev: WinEvent) -> Row | None:
    """The ExchangeAdminAuditLogs row, or None when the record holds no cmdlet."""
    items = list(ev.data_list) if ev.data_list else []
    if not items and ev.data:
        items = [text(v) for v in ev.data.values()]
    if not items and ev.message:
        m = _MESSAGE.search(ev.message)
        if m:
            items = [m.group(1), m.group(2)]
    if not items or not items[0]:
        return None
    original = list(items)
    items += [""] * (7 - len(items)) if len(items) < 7 else []
    return table_row(
        time=ev.time,
        computer=ev.computer,
        event_id=ev.event_id,
        succeeded=ev.event_id == 1,
        caller=items[2],
        cmdlet=items[0],
        parameters_text=items[1],
        parameters=parse_parameters(items[1]),
        runspace_type=items[5],
        host_process=items[6],
        error=_error(items) if ev.event_id == 6 else "",
        event_data=dumps(original),
    )
