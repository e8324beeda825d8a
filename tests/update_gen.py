"""Exchange updates and their malicious twins, written as a Defender export and as Sysmon events.

One logical description (who started which writer, what it wrote, which certificate it has)
rendered twice: Defender rows (DeviceProcessEvents, DeviceFileEvents with the writer's SHA1,
DeviceFileCertificateInfo) and Windows events in evtx_dump JSON (Sysmon 1 for the start, 7 for
the writer's own image with its signature, 11 for each file created, Security 4663 for each
agent-list write). tests/test_setup_not_alerting.py runs every shipped rule over both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from helpers import write_ah_api, write_csv
from winlog_gen import SECURITY, SYSMON, Ev, evtx_json, write_jsonl

V15 = r"C:\Program Files\Microsoft\Exchange Server\V15"
AGENTS = V15 + r"\TransportRoles\agents"
MALWARE_DLL = AGENTS + r"\Antimalware\Microsoft.Exchange.Transport.Agent.Malware.dll"
SERVICES = r"C:\Windows\System32\services.exe"
CA_HOST = r"C:\Windows\syswow64\MsiExec.exe -Embedding 2F3A4B5C6D7E8F90A1B2C3D4E5F60718 E Global\MSI0000"
MS = "Microsoft Corporation"
WINDOWS = "Microsoft Windows"
SYSTEM = ("NT AUTHORITY", "SYSTEM")
ADMIN = ("CONTOSO", "exadmin")


@dataclass
class Writer:
    """A process that writes into the Exchange folders: where it runs from, its hash and signer
    (None: the data has neither), and how it was started."""
    path: str
    sha1: str | None
    signer: str | None = None
    trusted: bool = True
    cmdline: str = ""
    parent: str = r"C:\Windows\explorer.exe"
    user: tuple[str, str] = ADMIN

    @property
    def name(self) -> str:
        return self.path.rsplit("\\", 1)[-1]


@dataclass
class Write:
    time: str            # 2026-03-10T10:00:00
    writer: Writer
    path: str            # the file written
    action: str = "FileCreated"


@dataclass
class Host:
    name: str            # exch01.contoso.local
    started: str         # when its writers start
    writes: list[Write] = field(default_factory=list)
    restarts: list[str] = field(default_factory=list)   # times transport restarts


def _hex(n: int, tag: str) -> str:
    return f"{tag}{n:0{40 - len(tag)}x}"


# -- the real update ---------------------------------------------------------------

EXSETUP_SHA1 = _hex(1, "e5e7c0de")
SETUP_SHA1 = _hex(2, "e5e7c0de")
MSIEXEC_SHA1 = _hex(3, "e5e7c0de")


def _cu(host: str, media: str, start: str, signed: bool) -> Host:
    """A cumulative update from installation media mounted as `media` (a drive letter): Setup.exe at
    the root, ExSetup.exe below it and in its staging copy, Windows Installer writing the product."""
    def known(sha1: str, signer: str) -> dict[str, Any]:
        return {"sha1": sha1, "signer": signer} if signed else {"sha1": None, "signer": None}

    setup = Writer(media + r"\Setup.exe", **known(SETUP_SHA1, MS),
                   cmdline=media + r"\Setup.exe /Mode:Upgrade /IAcceptExchangeServerLicenseTerms_DiagnosticDataOFF")
    staged = Writer(r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe", **known(EXSETUP_SHA1, MS),
                    cmdline='"C:\\Windows\\Temp\\ExchangeSetup\\ExSetup.exe" /Mode:Upgrade', parent=setup.path)
    media_ex = Writer(media + r"\Setup\ServerRoles\Common\ExSetup.exe", **known(EXSETUP_SHA1, MS),
                      cmdline=media + r"\Setup\ServerRoles\Common\ExSetup.exe /Mode:Upgrade", parent=setup.path)
    msi = Writer(r"C:\Windows\System32\msiexec.exe", **known(MSIEXEC_SHA1, WINDOWS),
                 cmdline=r"C:\Windows\system32\msiexec.exe /V", parent=SERVICES, user=SYSTEM)
    d = start[:13]
    return Host(host, start, [
        Write(d + ":05:00", setup, V15 + r"\Bin\Microsoft.Exchange.Setup.Bootstrapper.Common.dll"),
        Write(d + ":10:00", msi, V15 + r"\Bin\Microsoft.Exchange.Data.Transport.dll", "FileModified"),
        Write(d + ":10:30", msi, V15 + r"\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
              "FileModified"),
        Write(d + ":11:00", msi, V15 + r"\FrontEnd\TransportAgent\Microsoft.Exchange.Transport.Agent.FrontEnd.dll"),
        Write(d + ":20:00", staged, V15 + r"\Bin\EdgeTransport.exe", "FileModified"),
        Write(d + ":21:00", staged, V15 + r"\TransportRoles\Shared\agents.config"),
        Write(d + ":21:30", media_ex, V15 + r"\TransportRoles\Shared\fetagents.config"),
        Write(d + ":22:00", media_ex, MALWARE_DLL, "FileModified"),
    ], restarts=[d + ":40:00"])


def _su(host: str, start: str) -> Host:
    """A security update through Windows Installer: the self-extracting .exe starts msiexec; the
    service (System32, LocalSystem) and a 32-bit custom-action host (SysWOW64) write the files."""
    service = Writer(r"C:\Windows\System32\msiexec.exe", MSIEXEC_SHA1, WINDOWS,
                     cmdline=r"C:\Windows\system32\msiexec.exe /V", parent=SERVICES, user=SYSTEM)
    host_ca = Writer(r"C:\Windows\SysWOW64\msiexec.exe", None, cmdline=CA_HOST, parent=service.path, user=SYSTEM)
    d = start[:13]
    return Host(host, start, [
        Write(d + ":05:00", service, V15 + r"\Bin\Microsoft.Exchange.Data.Transport.dll", "FileModified"),
        Write(d + ":05:30", service, MALWARE_DLL, "FileModified"),
        Write(d + ":06:00", host_ca, V15 + r"\Bin\Microsoft.Exchange.Net.dll", "FileModified"),
        Write(d + ":06:30", host_ca, V15 + r"\TransportRoles\Shared\agents.config", "FileModified"),
    ], restarts=[d + ":30:00"])


def _from_bin(host: str, start: str) -> Host:
    """The install's own Bin\\ExSetup.exe (a recovery or role change) on a non-default root."""
    root = r"E:\ExchangeServer\V15"
    bin_ex = Writer(root + r"\Bin\ExSetup.exe", EXSETUP_SHA1, MS,
                    cmdline=root + r"\Bin\ExSetup.exe /Mode:RecoverServer")
    d = start[:13]
    return Host(host, start, [
        Write(d + ":05:00", bin_ex, root + r"\Bin\Microsoft.Exchange.Data.Transport.dll", "FileModified"),
        Write(d + ":06:00", bin_ex, root + r"\TransportRoles\Shared\agents.config"),
    ], restarts=[d + ":20:00"])


def updates() -> list[Host]:
    """Five servers updated five real ways (fresh objects: a test may change them)."""
    return [
        _cu("exch01.contoso.local", "D:", "2026-03-10T10:00:00", signed=True),
        _cu("exch02.contoso.local", "E:", "2026-03-10T12:00:00", signed=False),
        _cu("exch03.contoso.local", "G:", "2026-03-10T14:00:00", signed=True),   # a mounted ISO
        _su("exch04.contoso.local", "2026-03-10T16:00:00"),
        _from_bin("exch05.contoso.local", "2026-03-10T18:00:00"),
    ]


# -- the twins: the same names where setup never runs, or the right place and a foreign signer ---

FAKE_SHA1 = _hex(1, "bad0c0de")
MALLORY = ("CONTOSO", "mallory")


def _twin(host: str, start: str, writer: Writer, path: str, restart: bool = False) -> Host:
    return Host(host, start, [Write(start[:13] + ":05:00", writer, path)],
                restarts=[start[:13] + ":15:00"] if restart else [])


def twins() -> list[Host]:
    """One twin a server; exch11 also restarts transport (a chain)."""
    return [
        _twin("exch11.contoso.local", "2026-03-11T10:00:00",
          Writer(r"C:\Users\x\Downloads\setup.exe", None, user=MALLORY), AGENTS + r"\Relay\Contoso.Relay.dll",
          restart=True),
        _twin("exch12.contoso.local", "2026-03-11T11:00:00",
          Writer(r"C:\Windows\Temp\x\ExSetup.exe", EXSETUP_SHA1, MS, user=MALLORY), V15 + r"\Bin\Contoso.Bin.dll"),
        _twin("exch13.contoso.local", "2026-03-11T12:00:00",
          Writer(r"\\fs01\installs\Exchange2019-CU15\Setup\ServerRoles\Common\ExSetup.exe", None, user=MALLORY),
          V15 + r"\TransportRoles\Shared\agents.config"),
        _twin("exch14.contoso.local", "2026-03-11T13:00:00",
          Writer(r"C:\ProgramData\ExSetup.exe", None, user=MALLORY), V15 + r"\TransportRoles\Shared\fetagents.config"),
        _twin("exch15.contoso.local", "2026-03-11T14:00:00",
          Writer(r"C:\Users\Public\msiexec.exe", None, user=MALLORY),
          V15 + r"\FrontEnd\TransportAgent\Contoso.Fet.dll"),
        _twin("exch16.contoso.local", "2026-03-11T15:00:00",
          Writer(r"C:\Windows\Temp\ExchangeSetup\ExSetup.exe", FAKE_SHA1, "Fabrikam Tools Ltd", user=MALLORY),
          V15 + r"\TransportRoles\agents\Hook\Contoso.Hook.dll"),
    ]


def relocated(hosts: list[Host], folder: str) -> list[Host]:
    """The same hosts with every writer moved into `folder` (same name, hash and signer)."""
    out = []
    for h in hosts:
        moved: dict[int, Writer] = {}
        for w in _writers(h):
            moved[id(w)] = replace(w, path=folder + w.path[w.path.rindex("\\"):])
        out.append(replace(h, writes=[replace(wr, writer=moved[id(wr.writer)]) for wr in h.writes]))
    return out

# -- renderings ------------------------------------------------------------------------


def _writers(host: Host) -> list[Writer]:
    out: list[Writer] = []
    for w in host.writes:
        if all(w.writer is not x for x in out):
            out.append(w.writer)
    return out


def _pid(host: Host, writer: Writer) -> int:
    return 4000 + 10 * _writers(host).index(writer)


def _guid(host: Host, writer: Writer) -> str:
    n = int(host.name[4:6]) * 100 + _writers(host).index(writer)
    return f"{{5e7c0de0-0000-0000-0000-{n:012d}}}"


def _file_sha1(host: Host, i: int) -> str:
    return _hex(int(host.name[4:6]) * 100 + i, "f11e")


def defender_rows(hosts: list[Host]) -> dict[str, list[dict[str, Any]]]:
    procs: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    certs: list[dict[str, Any]] = []
    report = 5000
    for h in hosts:
        for w in _writers(h):
            report += 1
            procs.append({"Timestamp": h.started + ".0000000Z", "DeviceName": h.name, "ActionType": "ProcessCreated",
                          "FileName": w.name, "FolderPath": w.path, "SHA1": w.sha1 or "", "ProcessId": _pid(h, w),
                          "ProcessCommandLine": w.cmdline, "AccountDomain": w.user[0], "AccountName": w.user[1],
                          "InitiatingProcessFileName": w.parent.rsplit("\\", 1)[-1],
                          "InitiatingProcessFolderPath": w.parent, "ReportId": report})
            if w.sha1 and w.signer:
                certs.append({"Timestamp": h.started + ".5000000Z", "DeviceName": h.name, "SHA1": w.sha1,
                              "IsSigned": True, "IsTrusted": w.trusted, "Signer": w.signer,
                              "IsRootSignerMicrosoft": w.signer in (MS, WINDOWS), "ReportId": report})
        for i, wr in enumerate(h.writes):
            report += 1
            w = wr.writer
            files.append({"Timestamp": wr.time + ".0000000Z", "DeviceName": h.name, "ActionType": wr.action,
                          "FileName": wr.path.rsplit("\\", 1)[-1], "FolderPath": wr.path, "SHA1": _file_sha1(h, i),
                          "InitiatingProcessFileName": w.name, "InitiatingProcessFolderPath": w.path,
                          "InitiatingProcessSHA1": w.sha1 or "", "InitiatingProcessId": _pid(h, w),
                          "InitiatingProcessCommandLine": w.cmdline, "InitiatingProcessAccountDomain": w.user[0],
                          "InitiatingProcessAccountName": w.user[1], "RequestProtocol": "Local", "ReportId": report})
        for t in h.restarts:
            report += 1
            procs.append({"Timestamp": t + ".0000000Z", "DeviceName": h.name, "ActionType": "ProcessCreated",
                          "FileName": "MSExchangeTransport.exe", "FolderPath": V15 + r"\Bin\MSExchangeTransport.exe",
                          "ProcessCommandLine": '"MSExchangeTransport.exe"', "ProcessId": 7000,
                          "AccountDomain": "NT AUTHORITY", "AccountName": "NETWORK SERVICE",
                          "InitiatingProcessFileName": "services.exe",
                          "InitiatingProcessFolderPath": SERVICES, "ReportId": report})
    return {"DeviceProcessEvents": procs, "DeviceFileEvents": files, "DeviceFileCertificateInfo": certs}


def write_defender(folder: Path, hosts: list[Host]) -> list[Path]:
    """The portal's CSV export for the event tables, the Advanced Hunting API JSON for certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = defender_rows(hosts)
    return [write_csv(folder / "DeviceProcessEvents.csv", "DeviceProcessEvents", rows["DeviceProcessEvents"]),
            write_csv(folder / "DeviceFileEvents.csv", "DeviceFileEvents", rows["DeviceFileEvents"]),
            write_ah_api(folder / "DeviceFileCertificateInfo.json", "DeviceFileCertificateInfo",
                         rows["DeviceFileCertificateInfo"])]


def _sysmon_user(user: tuple[str, str]) -> str:
    return f"{user[0]}\\{user[1]}"


def sysmon_events(hosts: list[Host]) -> list[Ev]:
    out: list[Ev] = []
    rec = 9000
    for h in hosts:
        computer = h.name.split(".")[0].upper() + h.name[h.name.index("."):]
        for w in _writers(h):
            hashes = f"SHA1={w.sha1.upper()},MD5={'0' * 32}" if w.sha1 else f"MD5={'0' * 32}"
            rec += 1
            out.append(Ev(SYSMON, 1, rec, h.started + ".0000000Z", {
                "RuleName": "-", "UtcTime": h.started.replace("T", " ") + ".000", "ProcessGuid": _guid(h, w),
                "ProcessId": _pid(h, w), "Image": w.path, "CommandLine": w.cmdline, "User": _sysmon_user(w.user),
                "Hashes": hashes, "ParentProcessGuid": "{5e7c0de0-0000-0000-0000-999999999999}",
                "ParentProcessId": 900, "ParentImage": w.parent, "ParentCommandLine": w.parent,
                "IntegrityLevel": "High"}, computer=computer))
            if w.sha1 and w.signer:
                rec += 1
                out.append(Ev(SYSMON, 7, rec, h.started + ".2000000Z", {
                    "RuleName": "-", "UtcTime": h.started.replace("T", " ") + ".200", "ProcessGuid": _guid(h, w),
                    "ProcessId": _pid(h, w), "Image": w.path, "ImageLoaded": w.path, "Hashes": hashes,
                    "Signed": "true", "Signature": w.signer, "SignatureStatus": "Valid" if w.trusted else "Expired",
                    "User": _sysmon_user(w.user)}, computer=computer))
        for wr in h.writes:
            w = wr.writer
            rec += 1
            out.append(Ev(SYSMON, 11, rec, wr.time + ".0000000Z", {
                "RuleName": "-", "UtcTime": wr.time.replace("T", " ") + ".000", "ProcessGuid": _guid(h, w),
                "ProcessId": _pid(h, w), "Image": w.path, "TargetFilename": wr.path,
                "CreationUtcTime": wr.time.replace("T", " ") + ".000", "User": _sysmon_user(w.user)},
                computer=computer))
            if wr.path.lower().endswith("agents.config"):
                rec += 1
                out.append(Ev(SECURITY, 4663, rec, wr.time + ".0000000Z", {
                    "SubjectUserSid": "S-1-5-21-1-2-3-1104", "SubjectUserName": w.user[1],
                    "SubjectDomainName": w.user[0], "SubjectLogonId": "0x3e7", "ObjectServer": "Security",
                    "ObjectType": "File", "ObjectName": wr.path, "HandleId": "0x1a4", "AccessList": "%%4417",
                    "AccessMask": "0x2", "ProcessId": hex(_pid(h, w)), "ProcessName": w.path,
                    "ResourceAttributes": "S:AI"}, computer=computer, level=0, task=12800))
        for t in h.restarts:
            rec += 1
            out.append(Ev(SYSMON, 1, rec, t + ".0000000Z", {
                "RuleName": "-", "UtcTime": t.replace("T", " ") + ".000",
                "ProcessGuid": "{5e7c0de0-0000-0000-0000-888888888888}", "ProcessId": 7000,
                "Image": V15 + r"\Bin\MSExchangeTransport.exe", "CommandLine": '"MSExchangeTransport.exe"',
                "User": "NT AUTHORITY\\NETWORK SERVICE", "Hashes": f"MD5={'1' * 32}",
                "ParentProcessGuid": "{5e7c0de0-0000-0000-0000-777777777777}", "ParentProcessId": 600,
                "ParentImage": SERVICES, "ParentCommandLine": SERVICES, "IntegrityLevel": "System"}, computer=computer))
    return out


def write_sysmon(path: Path, hosts: list[Host]) -> Path:
    """Sysmon and Security events as evtx_dump writes them (one JSON document a line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl(path, [evtx_json(e) for e in sysmon_events(hosts)])
