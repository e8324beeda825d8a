"""Background activity: ordinary Windows and Exchange events no shipped rule should alert on.

One model, two users: `exhunt simulate --noise N` draws events from `TEMPLATES` with the run's own
generator (consistent processes, accounts and times; the same seed gives the same noise), and
`bench/bench_detect.py` expands the same templates into millions of Defender rows inside DuckDB.
Several templates are near misses: ordinary activity that looks close to an attack (a transport
worker's own children, read-only agent cmdlets, Exchange's own DLLs loaded, backups of agent
files), so a rule that alerts on any of them is a false positive the bench and the tests show.

Placeholders in a template's text: `${exchange}` is Exchange's install root, `{n}` a number that
varies per event, `{u}` an interactive user's name. The simulator has no network or registry events,
so it draws only the kinds in `SIMULATED`; the bench draws every kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from exhunt.simulate.scenario import Scenario, Step

if TYPE_CHECKING:
    from exhunt.simulate.events import Account, Generator, Proc

#: Every kind of template, and the Defender table the bench fills with it.
TABLES = {
    "process": "DeviceProcessEvents",
    "file": "DeviceFileEvents",
    "network": "DeviceNetworkEvents",
    "image_load": "DeviceImageLoadEvents",
    "registry": "DeviceRegistryEvents",
}
#: The kinds `--noise` emits (the simulator's own event kinds).
SIMULATED = frozenset({"process", "file", "image_load"})
#: Who `{u}` is.
USERS = ("j.doe", "a.smith", "m.garcia", "k.lee", "r.patel", "svc-backup")

_SYS = r"C:\Windows\System32"
_PS = _SYS + r"\WindowsPowerShell\v1.0\powershell.exe"
_EDGE = r"${exchange}\Bin\EdgeTransport.exe"
_TRANSPORT = r"${exchange}\Bin\MSExchangeTransport.exe"
_CHROME = r"C:\Program Files\Google\Chrome\Application\chrome.exe"


@dataclass(frozen=True)
class Template:
    """One kind of ordinary event, with how often it happens (`weight`, within its kind).

    `image` and `command_line` are the acting process: for `process` the one that starts, whose
    parent is `parent` (`parent_command_line`); for every other kind the one that writes, loads,
    connects or sets. `target` is the file path, the loaded DLL, the registry key or the remote
    host; `action` the file action (created, modified, deleted, renamed) or the Defender ActionType;
    `value` the registry value name or the remote port; `data` the registry value's data."""

    kind: str
    weight: int
    exchange: bool  # happens on Exchange servers (else on the fleet's other machines)
    image: str
    command_line: str
    account: str = "SYSTEM"  # SYSTEM, NETWORK SERVICE, or {u}
    parent: str = ""
    parent_command_line: str = ""
    action: str = ""
    target: str = ""
    value: str = ""
    data: str = ""
    #: Why a near miss is here: what it looks like, and why it is not the attack.
    near_miss: str = ""


TEMPLATES: tuple[Template, ...] = (
    # -- processes -----------------------------------------------------------------------------
    Template("process", 6, True, _SYS + r"\svchost.exe", "svchost.exe -k netsvcs -p -s Schedule",
             parent=_SYS + r"\services.exe", parent_command_line=_SYS + r"\services.exe"),
    Template("process", 3, True, _SYS + r"\taskhostw.exe", "taskhostw.exe",
             parent=_SYS + r"\svchost.exe", parent_command_line="svchost.exe -k netsvcs -p"),
    Template("process", 3, True, _SYS + r"\conhost.exe", r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
             account="NETWORK SERVICE", parent=_EDGE, parent_command_line='"EdgeTransport.exe"',
             near_miss="a child of the transport worker, but not a shell or a download tool"),
    Template("process", 1, True, _SYS + r"\WerFault.exe", "WerFault.exe -u -p {n} -s 1234",
             account="NETWORK SERVICE", parent=_TRANSPORT, parent_command_line='"MSExchangeTransport.exe"',
             near_miss="the transport service's crash report, not a command it ran"),
    Template("process", 1, True, _PS, "powershell.exe -NonInteractive -Command Get-TransportAgent | Format-List",
             account="{u}", parent=r"C:\Windows\explorer.exe", parent_command_line=r"C:\Windows\Explorer.EXE",
             near_miss="an agent cmdlet, but the read-only one"),
    Template("process", 1, True, _PS, "powershell.exe -Command Install-TransportAgentX -Name test{n}", account="{u}",
             parent=r"C:\Windows\explorer.exe", parent_command_line=r"C:\Windows\Explorer.EXE",
             near_miss="a command whose name only begins like the install cmdlet (a word-boundary test)"),
    Template("process", 2, False, _CHROME, '"chrome.exe" --type=renderer --renderer-client-id={n}', account="{u}",
             parent=_CHROME, parent_command_line='"chrome.exe"'),
    Template("process", 2, False, _SYS + r"\cmd.exe", r'cmd.exe /c "C:\Scripts\backup_{n}.bat"',
             parent=_SYS + r"\svchost.exe", parent_command_line="svchost.exe -k netsvcs"),
    Template("process", 2, False, _PS,
             r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\Scripts\inventory_{n}.ps1",
             parent=_SYS + r"\svchost.exe", parent_command_line="svchost.exe -k netsvcs"),
    Template("process", 1, False, r"C:\Program Files\Git\cmd\git.exe", "git.exe fetch origin {n}", account="{u}",
             parent=r"C:\Program Files\Microsoft VS Code\Code.exe", parent_command_line='"Code.exe"'),
    Template("process", 1, False, r"C:\ProgramData\Microsoft\Windows Defender\Platform\MsMpEng.exe", '"MsMpEng.exe"',
             parent=_SYS + r"\services.exe", parent_command_line=_SYS + r"\services.exe"),
    # -- files ---------------------------------------------------------------------------------
    Template("file", 4, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE", action="created",
             target=r"${exchange}\TransportRoles\Logs\MessageTracking\MSGTRK2026111{n}-1.LOG"),
    Template("file", 2, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE", action="modified",
             target=r"${exchange}\TransportRoles\data\Queue\mail.que",
             near_miss="the transport worker writing under TransportRoles, but its queue, not a DLL"),
    Template("file", 1, True, r"C:\Windows\System32\Robocopy.exe", "robocopy.exe /MIR", account="svc-backup",
             action="created", target=r"D:\Backup\v15\Binaries\tool_{n}.dll",
             near_miss="a DLL copied from an Exchange-looking tree, but into a backup outside Exchange"),
    Template("file", 1, True, r"C:\Windows\System32\Robocopy.exe", "robocopy.exe /MIR", account="svc-backup",
             action="created", target=r"${exchange}\TransportRoles\agents\agent_{n}.dll.bak",
             near_miss="a file in the agents folder, but a backup copy, not a loadable DLL"),
    Template("file", 1, True, _SYS + r"\msiexec.exe", r"C:\Windows\System32\msiexec.exe /V", action="created",
             target=r"${exchange}\Bin\Microsoft.Exchange.Data.{n}.dll",
             near_miss="a DLL written under Exchange's Bin, but by Windows Installer, as an update does"),
    Template("file", 1, True, _PS, r"powershell.exe -File C:\Scripts\cleanup.ps1", account="{u}", action="deleted",
             target=r"${exchange}\TransportRoles\agents\Hygiene\old_{n}.dll",
             near_miss="a DLL in the agents folder, but deleted, not written"),
    Template("file", 3, False, _CHROME, '"chrome.exe" --type=utility', account="{u}", action="created",
             target=r"C:\Users\{u}\AppData\Local\Temp\chrome_{n}.tmp"),
    Template("file", 2, False, _SYS + r"\svchost.exe", "svchost.exe -k netsvcs -p", account="{u}",
             action="modified", target=r"C:\Users\{u}\NTUSER.DAT"),
    Template("file", 2, False, r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE", '"WINWORD.EXE" /n',
             account="{u}", action="created", target=r"C:\Users\{u}\Documents\report_{n}.docx"),
    Template("file", 1, False, r"C:\ProgramData\Microsoft\Windows Defender\Platform\MsMpEng.exe", '"MsMpEng.exe"',
             action="created",
             target=r"C:\ProgramData\Microsoft\Windows Defender\Definition Updates\mpasbase_{n}.vdm"),
    Template("file", 1, False, _SYS + r"\TiWorker.exe", "TiWorker.exe -Embedding", action="created",
             target=_SYS + r"\msvcp_{n}.dll"),
    Template("file", 1, False, _SYS + r"\svchost.exe", "svchost.exe -k LocalService", action="deleted",
             target=r"C:\Windows\Logs\log_{n}.etl"),
    Template("file", 1, False, _SYS + r"\svchost.exe", "svchost.exe -k wusvcs", action="renamed",
             target=r"C:\Windows\SoftwareDistribution\Download\update_{n}.cab"),
    # -- image loads (all signed by Microsoft) ---------------------------------------------------
    Template("image_load", 3, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE",
             target=_SYS + r"\bcrypt.dll"),
    Template("image_load", 2, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE",
             target=r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\clr.dll"),
    Template("image_load", 2, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE",
             target=r"${exchange}\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
             near_miss="the transport worker loading a DLL from the agents folder, but Exchange's own"),
    Template("image_load", 3, False, _SYS + r"\svchost.exe", "svchost.exe -k netsvcs -p", target=_SYS + r"\ntdll.dll"),
    Template("image_load", 1, False, _CHROME, '"chrome.exe"', account="{u}",
             target=r"C:\Program Files\Google\Chrome\Application\chrome_elf.dll"),
    # -- network (bench only) ---------------------------------------------------------------------
    Template("network", 3, True, _EDGE, '"EdgeTransport.exe"', account="NETWORK SERVICE",
             action="ConnectionSuccess", target="mx{n}.contoso.com", value="25"),
    Template("network", 3, False, _CHROME, '"chrome.exe"', account="{u}", action="ConnectionSuccess",
             target="www.bing.com", value="443"),
    Template("network", 1, False, "System", "", action="ConnectionFailed", value="445"),
    Template("network", 1, False, _SYS + r"\svchost.exe", "svchost.exe -k termsvcs", action="InboundConnectionAccepted",
             value="3389"),
    Template("network", 2, False, r"C:\Program Files\Microsoft OneDrive\OneDrive.exe", '"OneDrive.exe" /background',
             account="{u}", action="ConnectionSuccess", target="login.microsoftonline.com", value="443"),
    # -- registry (bench only) --------------------------------------------------------------------
    Template("registry", 3, False, _SYS + r"\svchost.exe", "svchost.exe -k netsvcs -p", action="RegistryValueSet",
             target=r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\bam\State\UserSettings",
             value="SequenceNumber", data="{n}"),
    Template("registry", 1, False, r"C:\Program Files\Microsoft Office\root\Office16\WINWORD.EXE", '"WINWORD.EXE"',
             account="{u}", action="RegistryKeyCreated",
             target=r"HKEY_CURRENT_USER\Software\Microsoft\Office\16.0\Word\Resiliency"),
    Template("registry", 1, False, r"C:\ProgramData\Microsoft\Windows Defender\Platform\MsMpEng.exe",
             '"MsMpEng.exe"', action="RegistryValueSet",
             target=r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows Defender\Signature Updates",
             value="SignaturesLastUpdated", data="{n}"),
    Template("registry", 1, True, _SYS + r"\services.exe", _SYS + r"\services.exe", action="RegistryValueSet",
             target=r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\MSExchangeTransport",
             value="Start", data="2",
             near_miss="the transport service's own key, but its start type, not an agent setting"),
)


def fill(text: str, n: int, user: str, root: str) -> str:
    """A template's text for one event."""
    return text.replace("${exchange}", root).replace("{n}", str(n)).replace("{u}", user)


_NOISE = Scenario(id="", title="background", kind="benign", path=Path("<noise>"))


def add_noise(gen: Generator, count: int, start: datetime) -> None:
    """`count` background events of the simulated kinds (Exchange-server templates: the run is one
    Exchange server), drawn by weight and spread from `start` to the run's last event."""
    from exhunt.simulate.events import fake_hash

    pool = [t for t in TEMPLATES if t.kind in SIMULATED and t.exchange]
    weights = [t.weight for t in pool]
    saved = gen.clock
    span = max((saved - start).total_seconds(), 3600.0)
    step = Step("noise", {}, "", 0, 0)
    root = gen.places["exchange"]
    known = {p.image.lower(): p for p in gen.named.values()}
    since = start - timedelta(hours=1)
    for _ in range(count):
        gen.clock = start + timedelta(seconds=gen.rand.uniform(0, span))
        t = gen.rand.choices(pool, weights)[0]
        n = gen.rand.randrange(100_000)
        user = gen.rand.choice(USERS)
        account = gen.account(fill(t.account, n, user, root))
        image = fill(t.image, n, user, root)
        if t.kind == "process":
            parent = _actor(gen, known, fill(t.parent, n, user, root), fill(t.parent_command_line, n, user, root),
                            account, since)
            proc = gen.new_proc(image, fill(t.command_line, n, user, root), account, parent, gen.clock, "System")
            gen.emit("process", _NOISE, step, proc)
            continue
        actor = _actor(gen, known, image, fill(t.command_line, n, user, root), account, since)
        path = fill(t.target, n, user, root)
        if t.kind == "file":
            gen.emit("file", _NOISE, step, actor, action=t.action, path=path,
                     sha1=f"{gen.rand.getrandbits(160):040x}", size=gen.rand.randrange(1000, 90000))
        else:
            gen.emit("image_load", _NOISE, step, actor, path=path, sha1=fake_hash(path.lower()),
                     size=50_000 + n, signer="Microsoft Corporation", signed=True)
    gen.clock = saved


def _actor(gen: Generator, known: dict[str, Proc], image: str, command_line: str, account: Account,
           since: datetime) -> Proc:
    """The process that acts: the run's own (EdgeTransport, services...) when it has one by that
    image, else one started once under services.exe before the noise begins (`since`) and reused."""
    proc = known.get(image.lower())
    if proc is None:
        proc = gen.new_proc(image, command_line, account, gen.named["services"], since, "System")
        known[image.lower()] = proc
    return proc
