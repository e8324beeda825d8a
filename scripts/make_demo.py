"""Write the demo data set: one Exchange server, exch01.contoso.local, backdoored LightNeuron-style.

    python scripts/make_demo.py [OUT_DIR]   # default: the repository's demo/ folder

Deterministic and stdlib only: running it again writes the very same bytes, so the
files in demo/ are this script's output and can be regenerated after an edit.

The story (all times UTC) spreads over five days and seven files in six input formats:

2026-11-20  Friday, benign. exadmin applies an Exchange cumulative update (ExSetup rewrites
            Bin DLLs and agents.config, the transport service restarts and its worker starts a
            conhost.exe, as it does). In the afternoon
            exadmin installs a vendor transport agent the supported way: the vendor MSI
            (msiexec) drops its DLL under TransportRoles\\agents\\Fabrikam, then
            Install-/Enable-TransportAgent in the Exchange Management Shell, which runs
            the cmdlets in w3wp's MSExchangePowerShellAppPool (that process rewrites
            agents.config) and generates the implicit-remoting proxy module. The transport
            service is restarted in the 22:00 maintenance window.
2026-11-21  02:04  The intruder (contoso\\svc-backup, over WMI from 10.20.30.41) stages
            Microsoft.Exchange.Security.Interop.dll in C:\\Windows\\Temp and installs it as
            "Security Interop Agent" straight from there with the Exchange snap-in. The
            restarted worker loads it from Temp and the service stops (MSExchangeTransport
            7001): the companion DLL is missing.
            02:16  Second try with LightNeuron's installer script msinp.ps1: exdbdata.dll and
            winmail.dat are copied into the Exchange Bin over SMB, the agent DLL into
            TransportRoles\\agents\\Hygiene, the agent is reinstalled from there (agents.config
            rewritten by powershell.exe, Sysmon 11) and the service restarted. The worker
            now loads the unsigned agent and companion DLL; at 09:12 it mails its first
            msg<tick> file through the Pickup folder.
2026-11-22  The rogue agent is slow on a big message (MSExchange Extensibility 1050); a
            built-in agent's 1050, Exchange's OleConverter child and a monitoring tool's mail
            rejected from Pickup (.bad) are everyday noise.
2026-11-23  14:05  An operator command arrives by mail: EdgeTransport.exe runs cmd.exe (its
            conhost is the child of cmd, not of the worker), the output lands in winmail.dat
            in the NetworkService temp folder and goes out as another msg<tick> file.
2026-11-24  exadmin lists the agents with Get-TransportAgent (an inventory, no alert).

Files written:
  DeviceFileEvents-export.csv            Defender portal CSV export (mde-csv)
  DeviceProcessEvents-streaming.jsonl    Streaming API records (mde-jsonl)
  DeviceImageLoadEvents-api.json         Advanced Hunting API {Schema, Results} (mde-json)
  DeviceFileCertificateInfo-api.json     Advanced Hunting API {Schema, Results} (mde-json)
  exch01-powershell-cmdletlog.evtx.jsonl evtx_dump JSON lines: PowerShell 4104, MSExchange Management 1
  exch01-sysmon.zip                      a zip holding evtx_dump JSON lines of Sysmon 11
  exch01-winlogbeat.ndjson               Winlogbeat ECS: Application 7001/1050, System 7036
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

Row = dict[str, Any]

HOST = "exch01.contoso.local"
DEVICE_ID = "8f2a61c0d1b7e3a94c55e0f1a2b3c4d5e6f70812"
TENANT = "3c1f4a7e-0b5d-4e8a-9c2f-6d1e0a7b8c9d"
EXCH = r"C:\Program Files\Microsoft\Exchange Server\V15"
BIN = EXCH + r"\Bin"
AGENTS = EXCH + r"\TransportRoles\agents"
SHARED = EXCH + r"\TransportRoles\Shared"
PICKUP = EXCH + r"\TransportRoles\Pickup"
NS_TEMP = r"C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp"
PS = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
CMD = r"C:\Windows\System32\cmd.exe"
WMI = r"C:\Windows\System32\wbem\WmiPrvSE.exe"
SERVICES = r"C:\Windows\System32\services.exe"
MSIEXEC = r"C:\Windows\System32\msiexec.exe"
W3WP_POOL = (r'c:\windows\system32\inetsrv\w3wp.exe -ap "MSExchangePowerShellAppPool" -v "v4.0" -c '
             r'"C:\Program Files\Microsoft\Exchange Server\V15\bin\GenericAppPoolConfigWithGCServerEnabledFalse.config"'
             r' -a \\.\pipe\iisipm5f6b2c3a-1d7e-4b8f-9a0c-3e2d1f4a5b6c -h '
             r'"C:\inetpub\temp\apppools\MSExchangePowerShellAppPool\MSExchangePowerShellAppPool.config" -w "" -m 0')
EMS = (PS + " -noexit -command \". 'C:\\Program Files\\Microsoft\\Exchange Server\\V15\\bin\\RemoteExchange.ps1';"
       " Connect-ExchangeServer -auto -ClientApplication:ManagementShell \"")
ATTACKER_IP = "10.20.30.41"
MSINP_RUN = r"powershell.exe -ExecutionPolicy Bypass -File C:\Windows\Temp\msinp.ps1"
TEMP_INTEROP = r"C:\Windows\Temp\Microsoft.Exchange.Security.Interop.dll"
TEMP_COPY = "cmd.exe /c copy \\\\fs02\\drop\\{name} C:\\Windows\\Temp\\"
SNAPIN = "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn"
FACTORY = "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory"
AGENT = "Security Interop Agent"
VENDOR_AGENT = "Fabrikam Disclaimer Agent"
VENDOR_FACTORY = "Fabrikam.Disclaimer.Agent.DisclaimerAgentFactory"
INTEROP_DLL = AGENTS + r"\Hygiene\Microsoft.Exchange.Security.Interop.dll"
VENDOR_DLL = AGENTS + r"\Fabrikam\Fabrikam.Disclaimer.Agent.dll"
SIDS = {"exadmin": "S-1-5-21-3623811015-3361044348-30300820-1104",
        "svc-backup": "S-1-5-21-3623811015-3361044348-30300820-1231",
        "system": "S-1-5-18", "network service": "S-1-5-20"}


def fake_hash(name: str, length: int) -> str:
    """A stable stand-in hash for a demo file (not the hash of any real sample)."""
    return hashlib.sha256(f"exhunt-demo:{name}".encode()).hexdigest()[:length]


#: The agent DLL is a new build (no published hash): only its name and missing signature give it away.
INTEROP_SHA1 = "9a1e5e1d0b1c7f3a5e2d4c6b8a0f1e3d5c7b9a1e"
INTEROP_SHA256 = fake_hash("interop256", 64)
#: The companion DLL matches the SHA-1 of a sample in ESET's LightNeuron IOC release.
EXDBDATA_SHA1 = "76ee1802a6c920cbeb3a1053a4ec03c71b7e46f8"
HYGIENE_SHA1 = fake_hash("hygiene", 40)
CLR_SHA1 = fake_hash("clr", 40)
MPOAV_SHA1 = fake_hash("mpoav", 40)
VENDOR_SHA1 = fake_hash("fabrikam", 40)


# -- DeviceFileEvents: portal CSV -----------------------------------------------------

FILE_COLUMNS = [
    "Timestamp", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA1", "SHA256",
    "InitiatingProcessAccountDomain", "InitiatingProcessAccountName", "InitiatingProcessFileName",
    "InitiatingProcessFolderPath", "InitiatingProcessCommandLine", "InitiatingProcessId", "RequestProtocol",
    "RequestSourceIP", "RequestAccountName", "MD5", "FileSize", "PreviousFileName", "RequestAccountDomain",
    "ShareName", "ReportId",
]


def f(ts: str, rid: int, action: str, path: str, proc: str, proc_path: str, cmdline: str, pid: int,
      domain: str, user: str, **extra: Any) -> Row:
    return {"Timestamp": ts, "DeviceId": DEVICE_ID, "DeviceName": HOST, "ActionType": action,
            "FileName": path.rsplit("\\", 1)[1], "FolderPath": path, "InitiatingProcessAccountDomain": domain,
            "InitiatingProcessAccountName": user, "InitiatingProcessFileName": proc,
            "InitiatingProcessFolderPath": proc_path, "InitiatingProcessCommandLine": cmdline,
            "InitiatingProcessId": pid, "RequestProtocol": "Local", "ReportId": rid, **extra}


EDGE = BIN + r"\EdgeTransport.exe"
OVER_SMB = {"RequestProtocol": "SMB", "RequestSourceIP": ATTACKER_IP, "RequestAccountDomain": "contoso",
            "RequestAccountName": "svc-backup", "ShareName": "C$"}

FILE_ROWS: list[Row] = [
    # The five rows the demo always had (1001-1005), then the story's other file events.
    {**f("2026-11-20T08:14:03.1234567Z", 1001, "FileModified", BIN + r"\Microsoft.Exchange.Transport.Agent.dll",
         "ExSetup.exe", BIN + r"\ExSetup.exe",
         '"ExSetup.exe" /mode:Upgrade /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF', 4120,
         "nt authority", "system")},
    {**f("2026-11-20T09:02:41.0000000Z", 1002, "FileCreated",
         EXCH + r"\TransportRoles\Logs\MessageTracking\MSGTRK2026112009-1.LOG", "EdgeTransport.exe", EDGE,
         '"EdgeTransport.exe"', 5512, "nt authority", "network service"),
     "FileName": "MessageTracking20261120-1.LOG"},
    {**f("2026-11-21T02:17:09.5550000Z", 1003, "FileCreated", INTEROP_DLL, "powershell.exe", PS, MSINP_RUN, 6604,
         "contoso", "svc-backup"), "SHA1": INTEROP_SHA1},
    {**f("2026-11-21T02:16:55.0000000Z", 1004, "FileCreated", r"C:\Windows\Temp\msinp.ps1", "cmd.exe", CMD,
         TEMP_COPY.format(name="msinp.ps1"), 6590, "contoso", "svc-backup")},
    {**f("2026-11-22T10:40:12.0000000Z", 1005, "FileCreated", r"C:\Users\alice\Documents\report.docx", "WINWORD.EXE",
         r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE", '"WINWORD.EXE" /n', 7001, "contoso", "alice")},
    # Friday: the cumulative update rewrites agents.config (ExSetup from the Exchange Bin: benign).
    f("2026-11-20T08:14:40.2000000Z", 1006, "FileModified", SHARED + r"\agents.config", "ExSetup.exe",
      BIN + r"\ExSetup.exe", '"ExSetup.exe" /mode:Upgrade /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF',
      4120, "nt authority", "system"),
    # Friday afternoon: the vendor agent, installed the supported way (msiexec, then w3wp's app pool).
    {**f("2026-11-20T14:02:31.4000000Z", 1007, "FileCreated", VENDOR_DLL, "msiexec.exe", MSIEXEC,
         r"C:\Windows\System32\msiexec.exe -Embedding 6C1F2E3D4B5A69788796A5B4C3D2E1F0 C", 3312,
         "nt authority", "system"), "SHA1": VENDOR_SHA1, "FileSize": 184320},
    f("2026-11-20T14:05:41.0130000Z", 1008, "FileModified", SHARED + r"\agents.config", "w3wp.exe",
      r"C:\Windows\System32\inetsrv\w3wp.exe", W3WP_POOL, 8372, "nt authority", "system"),
    # Saturday 02:04, first try: the agent DLL staged in C:\Windows\Temp.
    {**f("2026-11-21T02:04:47.3000000Z", 1009, "FileCreated", TEMP_INTEROP, "cmd.exe", CMD,
         TEMP_COPY.format(name="Microsoft.Exchange.Security.Interop.dll"),
         6470, "contoso", "svc-backup"), "SHA1": INTEROP_SHA1, "SHA256": INTEROP_SHA256, "FileSize": 143360},
    # 02:16, second try: companion DLL and configuration copied into the Exchange Bin over SMB.
    {**f("2026-11-21T02:16:40.8000000Z", 1010, "FileCreated", BIN + r"\exdbdata.dll", "System", "", "", 4,
         "nt authority", "system"), **OVER_SMB, "SHA1": EXDBDATA_SHA1, "FileSize": 1175552},
    {**f("2026-11-21T02:16:41.2000000Z", 1011, "FileCreated", BIN + r"\winmail.dat", "System", "", "", 4,
         "nt authority", "system"), **OVER_SMB, "FileSize": 20736},
    # The running agent writes its rules/log file and mails from the worker through Pickup.
    f("2026-11-21T02:18:04.6000000Z", 1012, "FileCreated", NS_TEMP + r"\msmdat.xml", "EdgeTransport.exe", EDGE,
      '"EdgeTransport.exe"', 9132, "nt authority", "network service"),
    {**f("2026-11-21T09:12:07.0000000Z", 1013, "FileCreated", PICKUP + r"\msg25478016", "EdgeTransport.exe", EDGE,
         '"EdgeTransport.exe"', 9132, "nt authority", "network service"), "FileSize": 5231},
    # Sunday: a monitoring tool drops mail into Pickup, the worker rejects one as .bad (normal processing).
    f("2026-11-22T07:30:02.0000000Z", 1014, "FileCreated", PICKUP + r"\alert-20261122-0730.eml", "SendAlert.exe",
      r"C:\Program Files\Contoso\Monitoring\SendAlert.exe", r'"SendAlert.exe" --queue C:\ProgramData\Contoso\alerts',
      2876, "contoso", "svc-monitor"),
    {**f("2026-11-22T07:30:05.0000000Z", 1015, "FileRenamed", PICKUP + r"\alert-20261122-0730.bad", "EdgeTransport.exe",
         EDGE, '"EdgeTransport.exe"', 9132, "nt authority", "network service"),
     "PreviousFileName": "alert-20261122-0730.eml"},
    # Monday 14:05: an operator command's output and the mail that carries it out.
    f("2026-11-23T14:05:12.4000000Z", 1016, "FileCreated", NS_TEMP + r"\winmail.dat", "cmd.exe", CMD,
      r"cmd.exe /c whoami /all > C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp\winmail.dat", 8120,
      "nt authority", "network service"),
    {**f("2026-11-23T14:06:30.0000000Z", 1017, "FileCreated", PICKUP + r"\msg130203359", "EdgeTransport.exe", EDGE,
         '"EdgeTransport.exe"', 9132, "nt authority", "network service"), "FileSize": 7790},
]


def _csv_value(v: Any) -> str:
    return "" if v is None else str(v)


def write_file_events(out: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FILE_COLUMNS)
    for row in FILE_ROWS:
        w.writerow([_csv_value(row.get(c)) for c in FILE_COLUMNS])
    (out / "DeviceFileEvents-export.csv").write_text(buf.getvalue(), encoding="utf-8", newline="")


# -- DeviceProcessEvents: Streaming API JSON lines -----------------------------------


def p(ts: str, rid: int, path: str, cmdline: str, pid: int, domain: str, user: str, parent: str,
      parent_cmd: str, **extra: Any) -> Row:
    return {"Timestamp": ts, "DeviceId": DEVICE_ID, "DeviceName": HOST, "ActionType": "ProcessCreated",
            "FileName": path.rsplit("\\", 1)[1], "FolderPath": path, "ProcessCommandLine": cmdline, "ProcessId": pid,
            "AccountDomain": domain, "AccountName": user, "InitiatingProcessFileName": parent.rsplit("\\", 1)[-1],
            "InitiatingProcessCommandLine": parent_cmd, "ReportId": rid, "MachineGroup": None,
            "AdditionalFields": None, **({"InitiatingProcessFolderPath": parent} if "\\" in parent else {}), **extra}


SVC_CMD = r"C:\Windows\system32\services.exe"
TRANSPORT_SVC = BIN + r"\MSExchangeTransport.exe"
FIRST_TRY = (f'powershell.exe -NoProfile -Command "{SNAPIN}; Install-TransportAgent -Name \'{AGENT}\' '
             f"-TransportAgentFactory {FACTORY} -AssemblyPath {TEMP_INTEROP}; "
             f"Enable-TransportAgent -Identity '{AGENT}'; Restart-Service MSExchangeTransport\"")


def service_restart(ts_svc: str, ts_edge: str, rid: int, svc_pid: int, edge_pid: int) -> list[Row]:
    """The service control manager starts MSExchangeTransport.exe, which starts its EdgeTransport.exe worker."""
    return [
        p(ts_svc, rid, TRANSPORT_SVC, f'"{TRANSPORT_SVC}"', svc_pid, "nt authority", "system", SERVICES, SVC_CMD,
          InitiatingProcessId=688),
        p(ts_edge, rid + 1, EDGE, '"EdgeTransport.exe"', edge_pid, "nt authority", "network service",
          TRANSPORT_SVC, f'"{TRANSPORT_SVC}"', InitiatingProcessId=svc_pid),
    ]


PROCESS_ROWS: list[Row] = [
    # The five rows the demo always had (2001-2005).
    p("2026-11-20T08:10:00.0000000Z", 2001, BIN + r"\ExSetup.exe", '"ExSetup.exe" /mode:Upgrade', 4120, "contoso",
      "exadmin", "setup.exe", '"setup.exe" /mode:Upgrade'),
    p("2026-11-21T02:17:30.2500000Z", 2002, PS,
      f'powershell.exe -NoProfile -Command "{SNAPIN}; Install-TransportAgent -Name \'{AGENT}\' -TransportAgentFactory '
      f"{FACTORY} -AssemblyPath '{AGENTS}\\Hygiene\\Microsoft.Exchange.Security.Interop.dll'; "
      f"Enable-TransportAgent -Identity '{AGENT}'\"", 6720, "contoso", "svc-backup", "powershell.exe",
      r"powershell.exe -ExecutionPolicy Bypass -File C:\Windows\Temp\msinp.ps1"),
    p("2026-11-23T14:05:11.0000000Z", 2003, CMD,
      r"cmd.exe /c whoami /all > C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp\winmail.dat", 8120,
      "nt authority", "network service", "EdgeTransport.exe", '"EdgeTransport.exe"'),
    p("2026-11-23T14:06:00.0000000Z", 2004, r"C:\Windows\System32\conhost.exe",
      r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1", 8121, "nt authority", "network service", "cmd.exe",
      "cmd.exe /c whoami /all"),
    p("2026-11-24T09:00:00.0000000Z", 2005, PS, 'powershell.exe -Command "Get-TransportAgent | Format-List"', 9001,
      "contoso", "exadmin", "explorer.exe", r"C:\Windows\Explorer.EXE"),
    # Friday: the service comes back after the update; its worker's console host (Exchange's own children).
    *service_restart("2026-11-20T08:31:12.0000000Z", "2026-11-20T08:31:15.0000000Z", 2006, 5480, 5512),
    p("2026-11-20T08:31:16.0000000Z", 2008, r"C:\Windows\System32\conhost.exe",
      r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1", 5530, "nt authority", "network service", EDGE,
      '"EdgeTransport.exe"', InitiatingProcessId=5512),
    # The vendor agent: its MSI, and the Exchange Management Shell the admin installs it from.
    p("2026-11-20T14:01:50.0000000Z", 2009, MSIEXEC,
      r'"C:\Windows\System32\msiexec.exe" /i "C:\Users\exadmin\Downloads\FabrikamDisclaimerAgent-4.2.1.msi"', 3290,
      "contoso", "exadmin", r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE", InitiatingProcessId=2232),
    p("2026-11-20T14:04:20.0000000Z", 2010, PS, EMS, 3548, "contoso", "exadmin", r"C:\Windows\explorer.exe",
      r"C:\Windows\Explorer.EXE", InitiatingProcessId=2232),
    # 22:00 maintenance window: the restart that activates the vendor agent.
    p("2026-11-20T22:00:05.0000000Z", 2011, PS,
      'powershell.exe -NoProfile -Command "Restart-Service MSExchangeTransport"', 6012, "contoso", "exadmin",
      r"C:\Windows\explorer.exe", r"C:\Windows\Explorer.EXE", InitiatingProcessId=2232),
    *service_restart("2026-11-20T22:00:31.0000000Z", "2026-11-20T22:00:34.0000000Z", 2012, 6050, 6240),
    # Saturday 02:04, first try, over WMI: copy to Temp, install from there, restart.
    p("2026-11-21T02:04:46.9000000Z", 2014, CMD,
      TEMP_COPY.format(name="Microsoft.Exchange.Security.Interop.dll"), 6470, "contoso",
      "svc-backup", WMI, r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding", InitiatingProcessId=3920),
    p("2026-11-21T02:05:10.1000000Z", 2015, PS, FIRST_TRY, 6512, "contoso", "svc-backup", WMI,
      r"C:\Windows\system32\wbem\wmiprvse.exe -secured -Embedding", InitiatingProcessId=3920),
    *service_restart("2026-11-21T02:05:31.0000000Z", "2026-11-21T02:05:36.0000000Z", 2016, 7702, 7744),
    # 02:16, second try: msinp.ps1 (its child 6720 is row 2002), then the restart it asks for.
    p("2026-11-21T02:16:58.4000000Z", 2018, PS, MSINP_RUN, 6604, "contoso", "svc-backup", CMD,
      f"cmd.exe /c {MSINP_RUN}", InitiatingProcessId=6590),
    *service_restart("2026-11-21T02:17:52.0000000Z", "2026-11-21T02:17:55.0000000Z", 2019, 8010, 9132),
    # Sunday: the worker converts an attachment with Exchange's own OleConverter (benign child).
    p("2026-11-22T08:12:40.0000000Z", 2021, BIN + r"\OleConverter.exe",
      r'"C:\Program Files\Microsoft\Exchange Server\V15\Bin\OleConverter.exe" -Embedding', 8950, "nt authority",
      "network service", EDGE, '"EdgeTransport.exe"', InitiatingProcessId=9132),
]


def _publish_time(ts: str) -> str:
    """The Streaming API's `time`: when the record was published, 0.9 s after the event second."""
    return ts[:19] + ".9000000Z"


def write_process_events(out: Path) -> None:
    lines = []
    for row in PROCESS_ROWS:
        record = {"time": _publish_time(row["Timestamp"]), "tenantId": TENANT, "operationName": "Publish",
                  "category": "AdvancedHunting-DeviceProcessEvents", "properties": row}
        lines.append(json.dumps(record) + "\n")
    (out / "DeviceProcessEvents-streaming.jsonl").write_text("".join(lines), encoding="utf-8", newline="")


# -- DeviceImageLoadEvents and DeviceFileCertificateInfo: API {Schema, Results} --------

TYPES = {"Timestamp": "DateTime", "InitiatingProcessId": "Int64", "ReportId": "Int64", "FileSize": "Int64",
         "IsSigned": "Boolean", "IsTrusted": "Boolean", "IsRootSignerMicrosoft": "Boolean"}


def api_document(rows: list[Row]) -> str:
    columns = list(rows[0])
    schema = [{"Name": c, "Type": TYPES.get(c, "String")} for c in columns]
    return json.dumps({"Schema": schema, "Results": rows}, indent=2) + "\n"


def load(ts: str, rid: int, path: str, sha1: str, pid: int, size: int) -> Row:
    return {"Timestamp": ts, "DeviceId": DEVICE_ID, "DeviceName": HOST, "ActionType": "ImageLoaded",
            "FileName": path.rsplit("\\", 1)[1], "FolderPath": path, "SHA1": sha1, "FileSize": size,
            "InitiatingProcessAccountDomain": "nt authority", "InitiatingProcessAccountName": "network service",
            "InitiatingProcessFileName": "EdgeTransport.exe", "InitiatingProcessFolderPath": EDGE.lower(),
            "InitiatingProcessId": pid, "InitiatingProcessCommandLine": '"EdgeTransport.exe"', "ReportId": rid}


HYGIENE_DLL = AGENTS + r"\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll"
CLR = r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\clr.dll"
MPOAV = r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.24090.11-0\MpOav.dll"

LOAD_ROWS: list[Row] = [
    # The worker after the update: its own agents, the CLR, Defender's AMSI provider (all benign).
    load("2026-11-20T08:31:17.1000000Z", 3001, HYGIENE_DLL, HYGIENE_SHA1, 5512, 1468928),
    load("2026-11-20T08:31:17.2000000Z", 3002, CLR, CLR_SHA1, 5512, 10629984),
    load("2026-11-20T08:31:17.3000000Z", 3003, MPOAV, MPOAV_SHA1, 5512, 395104),
    # First try: the agent loaded from C:\Windows\Temp (it then fails: 7001).
    load("2026-11-21T02:05:39.0000000Z", 3004, TEMP_INTEROP, INTEROP_SHA1, 7744, 143360),
    # Second try: agent and companion DLL from the Exchange folders, next to Exchange's own agent.
    load("2026-11-21T02:17:58.1000000Z", 3005, HYGIENE_DLL, HYGIENE_SHA1, 9132, 1468928),
    load("2026-11-21T02:17:58.4000000Z", 3006, INTEROP_DLL, INTEROP_SHA1, 9132, 143360),
    load("2026-11-21T02:17:58.6000000Z", 3007, BIN + r"\exdbdata.dll", EXDBDATA_SHA1, 9132, 1175552),
]


def cert(ts: str, rid: int, sha1: str, signer: str, signed: bool, trusted: bool) -> Row:
    ms = signer.startswith("Microsoft")
    return {"Timestamp": ts, "DeviceId": DEVICE_ID, "DeviceName": HOST, "SHA1": sha1, "IsSigned": signed,
            "SignatureType": "Embedded" if signed else "", "Signer": signer,
            "Issuer": "Microsoft Code Signing PCA 2011" if ms else ("Fabrikam Code Signing CA" if signed else ""),
            "IsTrusted": trusted, "IsRootSignerMicrosoft": ms, "ReportId": rid}


CERT_ROWS: list[Row] = [
    cert("2026-11-20T08:31:20.0000000Z", 4001, HYGIENE_SHA1, "Microsoft Corporation", True, True),
    cert("2026-11-20T08:31:20.0000000Z", 4002, CLR_SHA1, "Microsoft Corporation", True, True),
    cert("2026-11-20T08:31:20.0000000Z", 4003, MPOAV_SHA1, "Microsoft Corporation", True, True),
    cert("2026-11-20T14:02:40.0000000Z", 4004, VENDOR_SHA1, "Fabrikam, Inc.", True, True),
    cert("2026-11-21T02:05:45.0000000Z", 4005, INTEROP_SHA1, "", False, False),
    cert("2026-11-21T02:18:10.0000000Z", 4006, EXDBDATA_SHA1, "", False, False),
]


# -- Windows events: evtx_dump JSON lines and Winlogbeat ECS ---------------------------

PS_OP = ("Microsoft-Windows-PowerShell/Operational", "Microsoft-Windows-PowerShell")
CMDLET_LOG = ("MSExchange Management", "MSExchange CmdletLogs")
SYSMON = ("Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon")


def evtx(source: tuple[str, str], event_id: int, record: int, ts: str, data: Row | list[str], *, level: int = 4,
         task: int = 0, sid: str = "S-1-5-18", keywords: str = "0x8000000000000000", pid: int = 2964) -> Row:
    """One record the way evtx_dump -o jsonl renders it."""
    event_data: Any = {"Data": {"#text": data}} if isinstance(data, list) else data
    return {"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": source[1]}},
            "EventID": event_id, "Version": 1 if source == PS_OP else 0, "Level": level, "Task": task,
            "Opcode": 15 if source == PS_OP else 0, "Keywords": keywords,
            "TimeCreated": {"#attributes": {"SystemTime": ts}}, "EventRecordID": record, "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": pid, "ThreadID": 7120}},
            "Channel": source[0], "Computer": HOST, "Security": {"#attributes": {"UserID": sid}},
        },
        "EventData": event_data,
    }}


PROXY_MODULE = (
    "param(\n    [System.Management.Automation.Runspaces.PSSession] $PSSessionOverride,\n"
    "    [System.Management.Automation.Remoting.PSSessionOption] $PSSessionOptionOverride\n)\n\n"
    "$script:__psImplicitRemoting_versionOfScriptGenerator = [Microsoft.PowerShell.Commands.ExportPSSessionCommand,"
    " Microsoft.PowerShell.Commands.Utility, Version=3.0.0.0, Culture=neutral,"
    " PublicKeyToken=31bf3856ad364e35]::VersionOfScriptGenerator\n"
    "$script:ExportedCommands = @('Get-TransportAgent', 'Import-RecipientDataProperty', 'Install-TransportAgent',"
    " 'Enable-TransportAgent', 'Disable-TransportAgent', 'Uninstall-TransportAgent', 'Set-TransportAgent')\n"
)
PROXY_PATH = (r"C:\Users\exadmin\AppData\Roaming\Microsoft\Exchange\RemotePowerShell\exch01.contoso.local"
              r"\exch01.contoso.local.psm1")
MSINP_PARTS = [
    "# msinp.ps1\n$ex = $env:ExchangeInstallPath\n"
    f"{SNAPIN}\n"
    f"Uninstall-TransportAgent -Identity '{AGENT}' -Confirm:$false\n"
    "Copy-Item -Path C:\\Windows\\Temp\\Microsoft.Exchange.Security.Interop.dll"
    " -Destination \"$ex\\TransportRoles\\agents\\Hygiene\\\" -Force\n",
    f"$cmd = \"{SNAPIN}; Install-TransportAgent -Name '{AGENT}' -TransportAgentFactory {FACTORY}"
    f" -AssemblyPath '$ex\\TransportRoles\\agents\\Hygiene\\Microsoft.Exchange.Security.Interop.dll';"
    f" Enable-TransportAgent -Identity '{AGENT}'\"\n"
    "Start-Process powershell.exe -ArgumentList '-NoProfile', '-Command', $cmd -Wait -WindowStyle Hidden\n"
    "Restart-Service MSExchangeTransport -Force\n"
    "Remove-Item C:\\Windows\\Temp\\Microsoft.Exchange.Security.Interop.dll -Force\n",
]
MSINP_BLOCK = "7d3e9a41-2c5b-4f80-b1d6-9e0a3c7f5b12"
_CMDLET_TAIL = ["", "1", "00:00:02.1406250", "View Entire Forest: 'False', Default Scope: 'contoso.local',"
                " Configuration Domain Controller: 'dc01.contoso.local'", "", "", "", "", "False", "", "", "", "",
                "0", "ActivityId: 4f2b7c1e-9d3a-4e6f-8b0c-1a2d3e4f5a6b", "", "", "en-US"]


def cmdlet_log(record: int, ts: str, cmdlet: str, params: str) -> Row:
    return evtx(CMDLET_LOG, 1, record, ts, [
        cmdlet, params, "contoso.local/Users/exadmin", SIDS["exadmin"],
        f"{SIDS['exadmin']}(contoso.local/Users/exadmin)", "Remote-ManagementShell-Unknown",
        "8372 w3wp#MSExchangePowerShellAppPool", *_CMDLET_TAIL,
    ], keywords="0x80000000000000", pid=8372)


def script_block(record: int, ts: str, text: str, block: str, path: str, sid: str, pid: int, number: int = 1,
                 total: int = 1, level: int = 5) -> Row:
    return evtx(PS_OP, 4104, record, ts, {"MessageNumber": number, "MessageTotal": total, "ScriptBlockText": text,
                                          "ScriptBlockId": block, "Path": path}, level=level, task=2, sid=sid, pid=pid)


WINDOWS_EVENTS: list[Row] = [
    # Friday 14:04: exadmin opens the Exchange Management Shell (implicit-remoting proxy module; benign).
    script_block(18211, "2026-11-20T14:04:31.5321870Z", PROXY_MODULE, "c4a1e0f2-6b7d-4e3a-9f58-0d2c1b3a4e5f",
                 PROXY_PATH, SIDS["exadmin"], 3548),
    # ... and installs the vendor agent; the cmdlets run in w3wp's MSExchangePowerShellAppPool.
    cmdlet_log(48211, "2026-11-20T14:05:40.6718750Z", "Install-TransportAgent",
               f'-Name "{VENDOR_AGENT}" -TransportAgentFactory "{VENDOR_FACTORY}" -AssemblyPath "{VENDOR_DLL}"'),
    cmdlet_log(48212, "2026-11-20T14:05:58.2031250Z", "Enable-TransportAgent", f'-Identity "{VENDOR_AGENT}"'),
    cmdlet_log(48213, "2026-11-20T14:06:20.1093750Z", "Get-TransportAgent", ""),
    # Saturday 02:16: msinp.ps1, logged as a two-part script block (warning level: suspicious content).
    *[script_block(18342 + i, f"2026-11-21T02:16:59.{412 + i:03d}0000Z", part, MSINP_BLOCK,
                   r"C:\Windows\Temp\msinp.ps1", SIDS["svc-backup"], 6604, i + 1, len(MSINP_PARTS), level=3)
      for i, part in enumerate(MSINP_PARTS)],
    # Wednesday: exadmin's inventory (row 2005 of the process events).
    script_block(19007, "2026-11-24T09:00:01.0312500Z", "Get-TransportAgent | Format-List",
                 "0b6e2d94-3f1a-4c7e-8d25-6a9b0c1d2e3f", "", SIDS["exadmin"], 9001),
]


def sysmon_file(record: int, ts: str, pid: int, guid: str, path: str, user: str) -> Row:
    utc = ts[:10] + " " + ts[11:23]
    return evtx(SYSMON, 11, record, ts, {
        "RuleName": "-", "UtcTime": utc, "ProcessGuid": guid, "ProcessId": pid, "Image": PS,
        "TargetFilename": path, "CreationUtcTime": utc, "User": user,
    }, task=11)


SYSMON_EVENTS: list[Row] = [
    # The two installs made with the snap-in from the intruder's own PowerShell rewrite agents.config.
    sysmon_file(90412, "2026-11-21T02:05:14.2210000Z", 6512, "{a3c1e2f4-5b6d-6741-1a0b-000000001d00}",
                SHARED + r"\agents.config", "CONTOSO\\svc-backup"),
    sysmon_file(90671, "2026-11-21T02:17:31.0470000Z", 6720, "{a3c1e2f4-5b6d-6741-7c0b-000000001d00}",
                SHARED + r"\agents.config", "CONTOSO\\svc-backup"),
]


def ecs(ts: str, channel: str, provider: str, event_id: int, record: int, params: list[str], message: str,
        level: str = "information", task: str = "") -> Row:
    """One Winlogbeat 8 document (unnamed EventData arrives as param1..N)."""
    return {
        "@timestamp": ts,
        "agent": {"type": "winlogbeat", "version": "8.15.3", "name": "exch01"},
        "ecs": {"version": "8.0.0"},
        "event": {"code": str(event_id), "kind": "event", "provider": provider, "created": ts},
        "host": {"name": HOST, "hostname": "exch01", "os": {"family": "windows", "version": "10.0"}},
        "log": {"level": level},
        "message": message,
        "winlog": {
            "channel": channel, "provider_name": provider, "event_id": str(event_id), "record_id": record,
            "computer_name": HOST, "task": task, "event_data": {f"param{i}": v for i, v in enumerate(params, 1)},
        },
    }


def scm(ts: str, record: int, state: str) -> Row:
    return ecs(ts, "System", "Service Control Manager", 7036, record, ["Microsoft Exchange Transport", state],
               f"The Microsoft Exchange Transport service entered the {state} state.")


SEVEN_001 = ("The service will be stopped. Reason: Failed to create type '{factory}' from assembly '{path}' due to"
             " error 'Unable to load DLL 'exdbdata.dll': The specified module could not be found."
             " (Exception from HRESULT: 0x8007007E)'.")
TEN_50 = ("The execution time of agent '{agent}' exceeded {ms} milliseconds while handling event '{event}' for"
          " message with InternetMessageId: '{mid}'. This is an unusual amount of time for an agent to process an"
          " event. The agent will continue to run.")


def slow_agent(ts: str, record: int, agent: str, ms: str, event: str, mid: str) -> Row:
    return ecs(ts, "Application", "MSExchange Extensibility", 1050, record, [agent, ms, event, mid],
               TEN_50.format(agent=agent, ms=ms, event=event, mid=mid), "warning", "MExRuntime")


WINLOGBEAT: list[Row] = [
    scm("2026-11-20T08:31:08.000Z", 201734, "stopped"),
    scm("2026-11-20T08:31:13.000Z", 201741, "running"),
    scm("2026-11-20T22:00:27.000Z", 202388, "stopped"),
    scm("2026-11-20T22:00:32.000Z", 202392, "running"),
    scm("2026-11-21T02:05:27.000Z", 202561, "stopped"),
    scm("2026-11-21T02:05:32.000Z", 202565, "running"),
    ecs("2026-11-21T02:05:40.000Z", "Application", "MSExchangeTransport", 7001, 884203,
        [FACTORY, r"C:\Windows\Temp\Microsoft.Exchange.Security.Interop.dll"],
        SEVEN_001.format(factory=FACTORY, path=r"C:\Windows\Temp\Microsoft.Exchange.Security.Interop.dll"),
        "information", "Components"),
    scm("2026-11-21T02:05:41.000Z", 202571, "stopped"),
    scm("2026-11-21T02:17:53.000Z", 202598, "running"),
    slow_agent("2026-11-22T11:40:12.000Z", 891377, AGENT, "90000", "OnEndOfData",
               "<DB6PR0401MB2436A1F36C3C9E2B6D0C1E4FA1230@DB6PR0401MB2436.eurprd04.prod.outlook.com>"),
    slow_agent("2026-11-22T16:02:30.000Z", 891560, "Transport Rule Agent", "90000", "OnRoutedMessage",
               "<CAF3x9Q+Lm2nV1@mail.gmail.com>"),
]


def jsonl(docs: list[Row]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def write_zip(path: Path, name: str, text: str) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 11, 25, 8, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(info, text.encode("utf-8"))
    path.write_bytes(buf.getvalue())


def write_all(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_file_events(out)
    write_process_events(out)
    (out / "DeviceImageLoadEvents-api.json").write_text(api_document(LOAD_ROWS), encoding="utf-8", newline="")
    (out / "DeviceFileCertificateInfo-api.json").write_text(api_document(CERT_ROWS), encoding="utf-8", newline="")
    (out / "exch01-powershell-cmdletlog.evtx.jsonl").write_text(jsonl(WINDOWS_EVENTS), encoding="utf-8", newline="")
    write_zip(out / "exch01-sysmon.zip", "exch01-sysmon.evtx.jsonl", jsonl(SYSMON_EVENTS))
    (out / "exch01-winlogbeat.ndjson").write_text(jsonl(WINLOGBEAT), encoding="utf-8", newline="")
    return sorted(out.iterdir())


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "demo"
    for path in write_all(out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
