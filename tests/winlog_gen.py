"""Windows events written by the tests themselves, in the three JSON forms exhunt reads.

`Ev` describes one logical event; `evtx_json`, `ecs` and `otrf` render it the way
evtx_dump, Winlogbeat and the OTRF datasets do, so a test can check that every
form yields the same rows. `evtx_json` and `ecs` are the simulator's serialisers (the
events' times kept as written, seven digits, where a simulated run gives Winlogbeat's
milliseconds); `otrf` stays here: its fixed NXLog fields (EventTime, Severity) differ from the
simulator's, which derives them from each record, and the frozen oracle holds this form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.simulate.formats.evtx_json import document as evtx_document
from exhunt.simulate.formats.winlogbeat_ecs import shipped as winlogbeat_document

SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")
SECURITY = ("Security", "Microsoft-Windows-Security-Auditing")
PS_OP = ("Microsoft-Windows-PowerShell/Operational", "Microsoft-Windows-PowerShell")
PS_CLASSIC = ("Windows PowerShell", "PowerShell")
EXCHANGE = ("MSExchange Management", "MSExchange CmdletLogs")
HOST = "EXCH01.contoso.local"


@dataclass
class Ev:
    source: tuple[str, str]
    event_id: int
    record_id: int
    time: str
    data: dict[str, Any] | list[str] = field(default_factory=dict)
    computer: str = HOST
    level: int = 4
    task: int = 0
    user_sid: str = "S-1-5-18"


def evtx_json(e: Ev) -> dict[str, Any]:
    """The simulator's evtx_dump serialiser (one per format), without the Execution element."""
    return evtx_document(e.source, e.event_id, e.record_id, e.time, e.data, e.computer, level=e.level, task=e.task,
                         sid=e.user_sid)


def _strings(data: dict[str, Any]) -> dict[str, str]:
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in data.items()}


def ecs(e: Ev) -> dict[str, Any]:
    """The simulator's Winlogbeat serialiser, with the event's time as written and no shipper details."""
    unnamed = isinstance(e.data, list)
    event_data = {f"param{i}": v for i, v in enumerate(e.data, 1)} if unnamed else _strings(e.data)  # type: ignore[arg-type]
    return winlogbeat_document(e.time, e.source[0], e.source[1], e.event_id, e.record_id, e.computer, e.task, e.level,
                               e.user_sid, event_data)


def otrf(e: Ev) -> dict[str, Any]:
    assert isinstance(e.data, dict), "the flat OTRF form has no positional EventData"
    doc = {
        "@version": "1", "@timestamp": e.time, "EventTime": "2026-03-01 05:00:00", "Hostname": e.computer,
        "SourceName": e.source[1], "Channel": e.source[0], "EventID": e.event_id, "Level": e.level,
        "Task": e.task, "RecordNumber": e.record_id, "Severity": "INFO",
        "UserID": e.user_sid, "SourceModuleType": "im_msvistalog", **_strings(e.data),
    }
    doc.setdefault("EventType", "INFO")  # NXLog's own field, unless the event has one
    return doc


def write_jsonl(path: Path, docs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    return path


# -- the logical events the tests use ---------------------------------------------

AGENTS = r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents"

SYSMON1 = Ev(SYSMON, 1, 101, "2026-03-01T10:00:00.1234567Z", {
    "RuleName": "-", "UtcTime": "2026-03-01 10:00:00.120", "ProcessGuid": "{11111111-0000-0000-0000-000000000001}",
    "ProcessId": 4242, "Image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    "FileVersion": "10.0.17763.1", "Description": "Windows PowerShell", "Product": "Microsoft Windows",
    "Company": "Microsoft Corporation", "OriginalFileName": "PowerShell.EXE",
    "CommandLine": "powershell.exe -NoProfile -Command Install-TransportAgent -Name X",
    "CurrentDirectory": "C:\\Windows\\system32\\", "User": "CONTOSO\\exadmin",
    "LogonGuid": "{11111111-0000-0000-0000-0000000000aa}", "LogonId": "0x3e7", "TerminalSessionId": 1,
    "IntegrityLevel": "High",
    "Hashes": "SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,MD5=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB,"
              "SHA256=CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC,IMPHASH=DD",
    "ParentProcessGuid": "{11111111-0000-0000-0000-000000000002}", "ParentProcessId": 1000,
    "ParentImage": r"C:\Windows\explorer.exe", "ParentCommandLine": "C:\\Windows\\Explorer.EXE",
    "ParentUser": "CONTOSO\\exadmin",
})

SYSMON7 = Ev(SYSMON, 7, 107, "2026-03-01T10:05:00Z", {
    "RuleName": "-", "UtcTime": "2026-03-01 10:05:00.000", "ProcessGuid": "{11111111-0000-0000-0000-000000000003}",
    "ProcessId": 5000, "Image": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe",
    "ImageLoaded": AGENTS + r"\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
    "FileVersion": "1.0", "Description": "-", "Product": "-", "Company": "-", "OriginalFileName": "-",
    "Hashes": "SHA1=0123456789ABCDEF0123456789ABCDEF01234567,MD5=0123456789ABCDEF0123456789ABCDEF",
    "Signed": "false", "Signature": "-", "SignatureStatus": "Unavailable", "User": "NT AUTHORITY\\NETWORK SERVICE",
})

SYSMON11 = Ev(SYSMON, 11, 111, "2026-03-01T10:01:00Z", {
    "RuleName": "-", "UtcTime": "2026-03-01 10:01:00.000", "ProcessGuid": "{11111111-0000-0000-0000-000000000004}",
    "ProcessId": 4242, "Image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    "TargetFilename": AGENTS + r"\Hygiene\msinp.dll", "CreationUtcTime": "2026-03-01 10:01:00.000",
    "User": "CONTOSO\\exadmin",
})

SYSMON13 = Ev(SYSMON, 13, 113, "2026-03-01T10:02:00Z", {
    "RuleName": "-", "EventType": "SetValue", "UtcTime": "2026-03-01 10:02:00.000",
    "ProcessGuid": "{11111111-0000-0000-0000-000000000005}", "ProcessId": 700,
    "Image": r"C:\Windows\system32\services.exe",
    "TargetObject": r"HKLM\System\CurrentControlSet\Services\MSExchangeTransport\Start",
    "Details": "DWORD (0x00000002)", "User": "NT AUTHORITY\\SYSTEM",
})

SEC4688 = Ev(SECURITY, 4688, 4688, "2026-03-01T10:03:00Z", {
    "SubjectUserSid": "S-1-5-21-1-2-3-1104", "SubjectUserName": "exadmin", "SubjectDomainName": "CONTOSO",
    "SubjectLogonId": "0x2b88b1", "NewProcessId": "0x2d54",
    "NewProcessName": r"C:\Windows\System32\cmd.exe", "TokenElevationType": "%%1937", "ProcessId": "0x31f4",
    "CommandLine": "cmd.exe /c whoami", "TargetUserSid": "S-1-0-0", "TargetUserName": "-",
    "TargetDomainName": "-", "TargetLogonId": "0x0",
    "ParentProcessName": r"C:\Program Files\Microsoft\Exchange Server\V15\Bin\EdgeTransport.exe",
    "MandatoryLabel": "S-1-16-12288",
}, level=0, task=13312)

BLOCK = "5f0c2a8e-aaaa-bbbb-cccc-2b6e0d4f1a01"
PS4104_PARTS = [
    Ev(PS_OP, 4104, 201 + i, f"2026-03-01T10:04:0{i}Z", {
        "MessageNumber": i + 1, "MessageTotal": 3, "ScriptBlockText": text, "ScriptBlockId": BLOCK,
        "Path": r"C:\Users\exadmin\msinp.ps1"}, level=5, task=2)
    for i, text in enumerate([
        "Copy-Item .\\msinp.dll $env:ExchangeInstallPath\\TransportRoles\\agents\\Hygiene\\\n",
        "Install-TransportAgent -Name 'Content Filter Agent2' -TransportAgentFactory F -AssemblyPath x.dll\n",
        "Enable-TransportAgent -Identity 'Content Filter Agent2'\n",
    ])
]

PS4103 = Ev(PS_OP, 4103, 210, "2026-03-01T10:06:00Z", {
    "ContextInfo": "        Severity = Informational\r\n        Host Name = ConsoleHost\r\n"
                   "        Host Application = "
                   "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -NoExit\r\n"
                   "        Command Name = Get-TransportAgent\r\n        Command Type = Cmdlet\r\n"
                   "        Script Name = \r\n        User = CONTOSO\\exadmin\r\n",
    "UserData": "",
    "Payload": "CommandInvocation(Get-TransportAgent): \"Get-TransportAgent\"\r\n",
}, task=106)

PS800 = Ev(PS_CLASSIC, 800, 220, "2026-03-01T10:07:00Z", [
    "Set-TransportAgent -Identity X -Priority 1",
    "\tDetailSequence=1\r\n\tDetailTotal=1\r\n\r\n\tSequenceNumber=9\r\n\r\n\tUserId=CONTOSO\\exadmin\r\n"
    "\tHostName=ConsoleHost\r\n\tHostApplication=C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\r\n"
    "\tScriptName=\r\n\tCommandLine=Set-TransportAgent -Identity X -Priority 1",
    "CommandInvocation(Set-TransportAgent): \"Set-TransportAgent\"\r\n"
    "ParameterBinding(Set-TransportAgent): name=\"Identity\"; value=\"X\"\r\n",
], task=8)

_EX_TAIL = ["", "5", "00:00:01.2", "", "", "", "", "", "", "False", "", "", "", "", "0", "ActivityId: x", "", "",
            "en-US"]
EX1 = Ev(EXCHANGE, 1, 301, "2026-03-01T10:08:00Z", [
    "Install-TransportAgent",
    '-Name "Content Filter Agent2" -TransportAgentFactory "Microsoft.Exchange.Transport.Agent.ContentFilter.'
    'ContentFilterAgentFactory" -AssemblyPath "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles'
    '\\agents\\Hygiene\\msinp.dll" -TransportService Hub -Priority 1',
    "contoso.local/Users/exadmin", "S-1-5-21-1-2-3-1104", "S-1-5-21-1-2-3-1104",
    "Remote-ManagementShell-Unknown", "8372 w3wp#MSExchangePowerShellAppPool", *_EX_TAIL,
])
EX6 = Ev(EXCHANGE, 6, 302, "2026-03-01T10:09:00Z", [
    "Install-TransportAgent", '-Name "Bad" -AssemblyPath "\\\\srv\\share\\a.dll" -TransportAgentFactory "F"',
    "contoso.local/Users/exadmin", "S-1-5-21-1-2-3-1104", "S-1-5-21-1-2-3-1104",
    "Remote-ManagementShell-Unknown", "8372 w3wp#MSExchangePowerShellAppPool", "", "6", "00:00:00.3",
    "View entire forest: 'False'",
    "Microsoft.Exchange.Data.InvalidAgentAssemblyPathException: UNC file paths can't be used.",
], level=2)

NAMED = [SYSMON1, SYSMON7, SYSMON11, SYSMON13, SEC4688, *PS4104_PARTS, PS4103]
