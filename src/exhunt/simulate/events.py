"""Scenario steps -> consistent events: one process tree, one clock, one host.

Each step becomes one or more `Event`s that carry everything every format needs (the process
with its id, GUID, parent, account and logon id; exact times). The formats (`formats/`) only
choose which events reach which tables and how each is written. The same scenario, host, start and
seed give the same events.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from exhunt.errors import UsageError
from exhunt.simulate.scenario import Scenario, Step
from exhunt.winlog.powershell import cmdlets

DEFAULT_HOST = "exch01.contoso.local"
DEFAULT_START = datetime(2026, 11, 21, 2, 0, 0, tzinfo=UTC)
#: Gap between one scenario and the next when several are generated into one run.
SCENARIO_GAP = timedelta(hours=6)

#: Where Exchange lives unless a scenario (`exchange_root:`) or `--exchange-root` says otherwise.
DEFAULT_EXCHANGE_ROOT = r"C:\Program Files\Microsoft\Exchange Server\V15"
SYSTEM32 = r"C:\Windows\System32"


def places(root: str = DEFAULT_EXCHANGE_ROOT) -> dict[str, str]:
    """The names a step's text may use (${bin}, ${agents}...), for Exchange installed at `root`."""
    root = root.rstrip("\\")
    return {
        "exchange": root,
        "bin": root + r"\Bin",
        "agents": root + r"\TransportRoles\agents",
        "shared": root + r"\TransportRoles\Shared",
        "pickup": root + r"\TransportRoles\Pickup",
        "ns_temp": r"C:\Windows\ServiceProfiles\NetworkService\AppData\Local\Temp",
        "ns_roaming": r"C:\Windows\ServiceProfiles\NetworkService\AppData\Roaming",
        "system32": SYSTEM32,
        "ps": SYSTEM32 + r"\WindowsPowerShell\v1.0\powershell.exe",
    }


_PLACE = re.compile(r"\$\{(\w+)\}")


@dataclass(frozen=True)
class Account:
    domain: str  # NetBIOS form, as Windows writes it: CONTOSO, NT AUTHORITY
    name: str
    sid: str
    logon_id: int

    @property
    def qualified(self) -> str:
        return f"{self.domain}\\{self.name}"


@dataclass
class Proc:
    pid: int
    guid: str
    image: str
    command_line: str
    account: Account
    parent: Proc | None
    start: datetime
    integrity: str = "High"
    sha1: str = ""
    original_file_name: str = ""
    #: The image's signature as the host records it (Defender's certificate table, Sysmon 7 of the
    #: process's own image): None when the scenario says nothing, else signed or not and by whom.
    signed: bool | None = None
    signer: str = ""

    @property
    def file_name(self) -> str:
        return self.image.rsplit("\\", 1)[-1]


@dataclass
class Event:
    """One thing that happened. kind: process, file, image_load, cmdlet_log, script_block, event_log."""

    kind: str
    time: datetime
    scenario: str
    step: str
    host: str
    proc: Proc | None
    data: dict[str, Any] = field(default_factory=dict)
    #: The collectors (scenario.FAMILIES) that record it; None: every one.
    seen_by: tuple[str, ...] | None = None

    def seen(self, family: str) -> bool:
        return self.seen_by is None or family in self.seen_by


def fake_hash(text: str, length: int = 40) -> str:
    """A stable stand-in hash (never the hash of a real file)."""
    return hashlib.sha256(f"exhunt-simulate:{text}".encode()).hexdigest()[:length]


class Generator:
    """The state of one run: the host, its accounts and processes, the clock and the random source."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        start: datetime = DEFAULT_START,
        seed: int = 1,
        exchange_root: str = DEFAULT_EXCHANGE_ROOT,
    ) -> None:
        self.host = host
        self.places = places(exchange_root)
        labels = host.split(".")
        self.netbios = (labels[1] if len(labels) > 1 else "WORKGROUP").upper()
        self.dns_domain = ".".join(labels[1:]) or "workgroup"
        self.rand = random.Random(seed)
        self.clock = start.astimezone(UTC)
        self.domain_sid = "S-1-5-21-" + "-".join(str(self.rand.randrange(10**9, 4 * 10**9)) for _ in range(3))
        self.device_id = f"{self.rand.getrandbits(160):040x}"
        self._accounts: dict[str, Account] = {}
        #: the running scenario's `vars` (with_vars overrides included)
        self.vars: dict[str, str] = {}
        self._pids: set[int] = {4}
        self.named: dict[str, Proc] = {}
        self.events: list[Event] = []
        self._start = self.clock
        self._boot = start - timedelta(days=3)
        self._builtins()

    # -- identities -------------------------------------------------------------------

    def account(self, text: str) -> Account:
        """`CONTOSO\\user`, `user` (the host's domain), `SYSTEM`, `NETWORK SERVICE`, `LOCAL SERVICE`."""
        key = text.strip().lower()
        if key in self._accounts:
            return self._accounts[key]
        well_known = {
            "system": ("S-1-5-18", 0x3E7, "SYSTEM"),
            "network service": ("S-1-5-20", 0x3E4, "NETWORK SERVICE"),
            "local service": ("S-1-5-19", 0x3E5, "LOCAL SERVICE"),
        }
        bare = key.split("\\")[-1]
        if bare in well_known and (key == bare or key.startswith("nt authority\\")):
            sid, logon, name = well_known[bare]
            acct = Account("NT AUTHORITY", name, sid, logon)
        else:
            domain, _, name = text.strip().rpartition("\\")
            rid = 1100 + self.rand.randrange(2000)
            acct = Account(
                (domain or self.netbios).upper(),
                name,
                f"{self.domain_sid}-{rid}",
                self.rand.randrange(0x100000, 0x8000000),
            )
        self._accounts[key] = acct
        return acct

    def _pid(self, want: int | None = None) -> int:
        if want is not None:
            self._pids.add(want)
            return want
        while True:
            pid = self.rand.randrange(1000, 12000) & ~3  # Windows process ids are multiples of 4
            if pid not in self._pids:
                self._pids.add(pid)
                return pid

    def _guid(self, when: datetime) -> str:
        # Sysmon's ProcessGuid: a machine part, the start time's seconds, a counter
        stamp = int(when.timestamp()) & 0xFFFFFFFF
        machine = self.device_id[:8]
        return (
            f"{{{machine}-{stamp >> 16:04x}-{stamp & 0xFFFF:04x}-"
            f"{self.rand.getrandbits(16):04x}-{self.rand.getrandbits(48):012x}}}"
        )

    def new_proc(
        self,
        image: str,
        command_line: str,
        account: Account,
        parent: Proc | None,
        when: datetime,
        integrity: str = "High",
        sha1: str = "",
        original: str = "",
        pid: int | None = None,
    ) -> Proc:
        return Proc(
            self._pid(pid),
            self._guid(when),
            image,
            command_line,
            account,
            parent,
            when,
            integrity,
            sha1 or fake_hash(image.lower()),
            original,
        )

    def _builtins(self) -> None:
        bin_ = self.places["bin"]
        system = self.account("SYSTEM")
        network = self.account("NETWORK SERVICE")
        boot = self._boot
        kernel = Proc(4, self._guid(boot), "System", "", system, None, boot, "System")
        services = self.new_proc(SYSTEM32 + r"\services.exe", SYSTEM32 + r"\services.exe", system, None, boot, "System")
        svchost = self.new_proc(
            SYSTEM32 + r"\svchost.exe", SYSTEM32 + r"\svchost.exe -k DcomLaunch -p", system, services, boot, "System"
        )
        transport = self.new_proc(
            bin_ + r"\MSExchangeTransport.exe",
            f'"{bin_}\\MSExchangeTransport.exe"',
            network,
            services,
            boot,
            "System",
        )
        self.named.update(
            {
                "system": kernel,
                "services": services,
                "svchost": svchost,
                "transport": transport,
                "edge": self.new_proc(
                    bin_ + r"\EdgeTransport.exe", '"EdgeTransport.exe"', network, transport, boot, "System"
                ),
                "fet": self.new_proc(
                    bin_ + r"\MSExchangeFrontendTransport.exe",
                    f'"{bin_}\\MSExchangeFrontendTransport.exe"',
                    network,
                    services,
                    boot,
                    "System",
                ),
                "wmiprvse": self.new_proc(
                    SYSTEM32 + r"\wbem\WmiPrvSE.exe",
                    SYSTEM32 + r"\wbem\wmiprvse.exe -secured -Embedding",
                    network,
                    svchost,
                    boot,
                    "System",
                ),
                "w3wp": self.new_proc(
                    SYSTEM32 + r"\inetsrv\w3wp.exe",
                    r'c:\windows\system32\inetsrv\w3wp.exe -ap "MSExchangePowerShellAppPool" -v "v4.0"',
                    system,
                    self.new_proc(
                        SYSTEM32 + r"\svchost.exe",
                        SYSTEM32 + r"\svchost.exe -k iissvcs",
                        system,
                        services,
                        boot,
                        "System",
                    ),
                    boot,
                    "System",
                ),
            }
        )

    def explorer(self, account: Account) -> Proc:
        key = "explorer:" + account.qualified.lower()
        if key not in self.named:
            self.named[key] = self.new_proc(
                r"C:\Windows\explorer.exe",
                r"C:\Windows\Explorer.EXE",
                account,
                None,
                self._boot + timedelta(hours=1),
                "Medium",
            )
        return self.named[key]

    # -- steps ------------------------------------------------------------------------

    def text(self, value: Any) -> str:
        """A step's text with ${bin}, ${agents}, ${host}... filled in (an unknown name stays as written)."""
        places = {**self.places, "host": self.host, "domain": self.netbios, "dns_domain": self.dns_domain}

        def fill(m: re.Match[str]) -> str:
            return places.get(m.group(1).lower(), m.group(0))

        # the scenario's vars first (their values may name places: '${agents}\Relay\x.dll'), then places
        text = _PLACE.sub(lambda m: self.vars.get(m.group(1), m.group(0)), "" if value is None else str(value))
        return _PLACE.sub(fill, text)

    def proc_ref(self, ref: Any, step: Step, default: str) -> Proc:
        name = str(ref or default)
        if name.startswith("explorer:"):
            return self.explorer(self.account(name.split(":", 1)[1]))
        if name not in self.named:
            raise UsageError(
                f"line {step.line}: step {step.id}: no process named {name!r} before it"
                f" (name one with `name:` in a process step, or use {', '.join(sorted(self.named))})"
            )
        return self.named[name]

    def emit(self, kind: str, scenario: Scenario, step: Step, proc: Proc | None, **data: Any) -> Event:
        ev = Event(kind, self.clock, scenario.id, step.id, self.host, proc, data, step.seen_by)
        self.events.append(ev)
        return ev

    def tick(self, seconds: float) -> None:
        """Advance the clock, with a seeded sub-second jitter (times carry real fractions)."""
        jitter = self.rand.randrange(1, 999_999) / 1e7 if seconds >= 1 else 0.0
        self.clock += timedelta(seconds=seconds + jitter)

    def run(self, scenario: Scenario) -> None:
        self.vars = dict(scenario.vars)
        for step in scenario.steps:
            if step.at is not None:
                when = self._start + timedelta(microseconds=round(step.at * 1e6))
                if when < self.clock:
                    raise UsageError(
                        f"{scenario.path}:{step.line}: step {step.id}: at {when:%Y-%m-%d %H:%M:%S.%f} is before"
                        f" the step above it ({self.clock:%Y-%m-%d %H:%M:%S.%f}): list steps in time order"
                    )
                self.clock = when
            else:
                self.tick(step.after)
            try:
                getattr(self, "_" + step.kind)(scenario, step, step.fields)
            except UsageError as exc:
                raise UsageError(f"{scenario.path}:{str(exc).removeprefix('line ')}") from None

    def _process(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        account = self.account(self.text(f.get("user") or f"{self.netbios}\\exadmin"))
        parent = self.proc_ref(f.get("parent"), step, "explorer:" + account.qualified)
        image = self.text(f["image"])
        signed, signer = _signature(f, step, self.text)
        pid = f.get("pid")
        if pid is not None and (
            not isinstance(pid, int) or isinstance(pid, bool) or pid <= 4 or pid % 4 or pid in self._pids
        ):
            raise UsageError(
                f"line {step.line}: pid: a process id above 4, a multiple of 4 (as Windows gives them),"
                f" not used before; not {pid!r}"
            )
        # a file's hash is its content: a differently signed copy at the same path is another file
        content = fake_hash(f"{image.lower()}|{signer}|{signed}") if signed is not None else ""
        sha1 = self.text(f.get("sha1")) or content
        proc = self.new_proc(
            image,
            self.text(f["command_line"]),
            account,
            parent,
            self.clock,
            str(f.get("integrity") or ("System" if account.sid in ("S-1-5-18",) else "High")),
            sha1,
            str(f.get("original_file_name") or ""),
            pid,
        )
        proc.signed, proc.signer = signed, signer
        if f.get("name"):
            self.named[str(f["name"])] = proc
        self.emit("process", sc, step, proc)

    def _file(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        smb = f.get("smb")
        proc = self.named["system"] if smb else self.proc_ref(f.get("by"), step, "edge")
        path = self.text(f["path"])
        data: dict[str, Any] = {
            "action": f["action"],
            "path": path,
            "sha1": self.text(f.get("sha1")) or fake_hash(path.lower() + sc.id),
            "size": int(f.get("size") or 4096 + self.rand.randrange(200_000)),
        }
        if f.get("previous"):
            data["previous"] = self.text(f["previous"])
        if f.get("sha256"):
            data["sha256"] = str(f["sha256"])
        signed, signer = _signature(f, step, self.text)
        if signed is not None:
            # what Defender learns of the written file's signature (its certificate row)
            data["signed"], data["signer"] = signed, signer
        audited = f.get("audited", False)
        if not isinstance(audited, bool):
            raise UsageError(f"line {step.line}: audited: true or false, not {audited!r}")
        if audited:
            # a SACL on the file: Windows logs the access (4663) with the handle the writer opened
            data["audit_handle"] = 0x100 + 4 * self.rand.randrange(0x400)
        if smb:
            if not isinstance(smb, dict) or "ip" not in smb or "user" not in smb:
                raise UsageError(f"line {step.line}: file: smb needs ip and user")
            data["smb"] = {
                "ip": str(smb["ip"]),
                "account": self.account(self.text(smb["user"])),
                "share": str(smb.get("share", "C$")),
            }
        self.emit("file", sc, step, proc, **data)

    def _image_load(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        proc = self.proc_ref(f.get("by"), step, "edge")
        path = self.text(f["path"])
        signed, signer = _signature(f, step, self.text)
        # a file's hash is its content: a signed and an unsigned module at one path are two files (else the
        # certificate tables, joined by SHA1 across servers, would give one the other's signature)
        content = path.lower() if signed is None else f"{path.lower()}|{signer}|{signed}"
        self.emit(
            "image_load",
            sc,
            step,
            proc,
            path=path,
            sha1=self.text(f.get("sha1")) or fake_hash(content),
            size=int(f.get("size") or 65536 + self.rand.randrange(2_000_000)),
            signer=signer,
            signed=bool(signed),
        )

    def _scm_state(self, sc: Scenario, step: Step, display: str, state: str) -> None:
        """The Service Control Manager's 7036: the service entered the stopped/running state."""
        self.emit("event_log", sc, step, None, channel="System", provider="Service Control Manager",
                  event_id=7036, params={"param1": display, "param2": state}, level=4, task=0,
                  message=f"The {display} service entered the {state} state.")

    def _service_restart(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        service = str(f.get("service") or "MSExchangeTransport")
        display = {
            "msexchangetransport": "Microsoft Exchange Transport",
            "msexchangefrontendtransport": "Microsoft Exchange Frontend Transport",
        }.get(service.lower(), service)
        if f.get("was_stopped") is not True:
            # a service that already stopped (it failed, 7001) is only started: no second "stopped"
            self._scm_state(sc, step, display, "stopped")
        self.tick(3)
        network = self.account("NETWORK SERVICE")
        services = self.named["services"]
        bin_ = self.places["bin"]
        if service.lower() == "msexchangefrontendtransport":
            fet = self.new_proc(
                bin_ + r"\MSExchangeFrontendTransport.exe",
                f'"{bin_}\\MSExchangeFrontendTransport.exe"',
                network,
                services,
                self.clock,
                "System",
            )
            self.named["fet"] = fet
            self.emit("process", sc, step, fet)
        else:
            svc = self.new_proc(
                bin_ + r"\MSExchangeTransport.exe",
                f'"{bin_}\\MSExchangeTransport.exe"',
                network,
                services,
                self.clock,
                "System",
            )
            self.named["transport"] = svc
            self.emit("process", sc, step, svc)
            self.tick(3)
            edge = self.new_proc(
                bin_ + r"\EdgeTransport.exe", '"EdgeTransport.exe"', network, svc, self.clock, "System"
            )
            self.named["edge"] = edge
            self.emit("process", sc, step, edge)
        self.tick(1)
        self._scm_state(sc, step, display, "running")
        if f.get("name"):
            self.named[str(f["name"])] = self.named[
                "fet" if service.lower() == "msexchangefrontendtransport" else "edge"
            ]

    def _cmdlet_log(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        caller = self.account(self.text(f.get("caller") or f"{self.netbios}\\exadmin"))
        host_proc = self.proc_ref(f.get("host_process"), step, "w3wp")
        self.emit(
            "cmdlet_log",
            sc,
            step,
            host_proc,
            cmdlet=str(f["cmdlet"]),
            params=self.text(f.get("params") or ""),
            caller=caller,
            success=bool(f.get("success", True)),
            error=self.text(f.get("error") or ""),
        )

    def _script_block(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        proc = self.proc_ref(f.get("by"), step, "")
        block = f"{self.rand.getrandbits(128):032x}"
        block_id = f"{block[:8]}-{block[8:12]}-{block[12:16]}-{block[16:20]}-{block[20:]}"
        raw = f["text"]
        # a long block is logged in parts (MessageNumber of MessageTotal) under one ScriptBlockId
        parts = [self.text(t) for t in raw] if isinstance(raw, list) else [self.text(raw)]
        text = "".join(parts)
        level = f.get("level", 5)
        if level not in (3, 5):
            raise UsageError(f"line {step.line}: script_block level: 5 (verbose) or 3 (warning: suspicious content)")
        runs = f.get("runs")
        if runs is not None and not (isinstance(runs, list) and all(isinstance(r, str) for r in runs)):
            raise UsageError(f"line {step.line}: script_block runs: a list of command names")
        self.emit(
            "script_block",
            sc,
            step,
            proc,
            text=text,
            parts=parts,
            level=level,
            path=self.text(f.get("path") or ""),
            block_id=block_id,
            # what the block invokes (Defender's PowerShellCommand rows); by default every Verb-Noun in it
            runs=list(runs) if runs is not None else cmdlets(text),
        )

    def _event_log(self, sc: Scenario, step: Step, f: dict[str, Any]) -> None:
        params = f.get("params") or []
        if isinstance(params, dict):
            params = {str(k): self.text(v) for k, v in params.items()}
        elif isinstance(params, list):
            params = [self.text(v) for v in params]
        else:
            raise UsageError(f"line {step.line}: event_log params: a list or a mapping")
        self.emit(
            "event_log",
            sc,
            step,
            None,
            channel=str(f["channel"]),
            provider=str(f["provider"]),
            event_id=int(f["event_id"]),
            params=params,
            level=int(f.get("level", 4)),
            task=int(f.get("task", 0)),
            message=self.text(f.get("message") or ""),
        )


@dataclass(frozen=True)
class Selection:
    """Part of a run's output, for one file of a mixed collection ("only DeviceFileEvents", "only
    Sysmon 11"): the Defender tables, Windows channels and event ids to keep (None: all). It filters
    rows after they are numbered, so ReportIds and EventRecordIDs stay those of the whole log."""

    tables: frozenset[str] | None = None
    channels: frozenset[str] | None = None
    event_ids: frozenset[int] | None = None

    def table(self, name: str) -> bool:
        return self.tables is None or name in self.tables

    def record(self, channel: str, event_id: int) -> bool:
        return (self.channels is None or channel in self.channels) and (
            self.event_ids is None or event_id in self.event_ids
        )


@dataclass
class Simulation:
    """A run's events in time order, and the host they happened on."""

    events: list[Event]
    host: str
    device_id: str
    selection: Selection = field(default_factory=Selection)

    def only(
        self,
        tables: Iterable[str] | None = None,
        channels: Iterable[str] | None = None,
        event_ids: Iterable[int] | None = None,
    ) -> Simulation:
        """The same run, its writers keeping only these tables, channels and event ids."""
        sel = Selection(
            frozenset(tables) if tables is not None else None,
            frozenset(channels) if channels is not None else None,
            frozenset(event_ids) if event_ids is not None else None,
        )
        return replace(self, selection=sel)


def _signature(f: dict[str, Any], step: Step, fill: Callable[[Any], str]) -> tuple[bool | None, str]:
    """A step's `signed`/`signer`: (None, "") when it gives neither (or its signer's var is empty);
    a signer alone means signed."""
    signer = fill(f.get("signer"))
    signed = f.get("signed", True if signer else None)
    if signed is not None and not isinstance(signed, bool):
        raise UsageError(f"line {step.line}: signed: true or false, not {signed!r}")
    if signer and signed is False:
        raise UsageError(f"line {step.line}: signed: false with a signer ({signer!r}): give one or the other")
    return signed, signer


def install_root(scenarios: list[Scenario], exchange_root: str | None = None) -> str:
    """The run's Exchange install: `exchange_root` (--exchange-root) or the one the scenarios set.

    One run is one server, so scenarios that set different roots, or a root that differs from the
    option, cannot share a run.
    """
    root = exchange_root.rstrip("\\") if exchange_root else None
    by: Scenario | None = None
    for sc in scenarios:
        if not sc.exchange_root:
            continue
        if root is None:
            root, by = sc.exchange_root, sc
        elif root.lower() != sc.exchange_root.lower():
            where = f"--exchange-root is {root}" if by is None else f"scenario {by.id} ({by.path}) sets {root}"
            raise UsageError(
                f"{sc.path}: scenario {sc.id} installs Exchange at {sc.exchange_root}, but {where}:"
                " one run is one server (generate them apart)"
            )
    return root or DEFAULT_EXCHANGE_ROOT


def generate(
    scenarios: list[Scenario],
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    noise: int = 0,
    exchange_root: str | None = None,
) -> Simulation:
    """Every scenario's events, one after the other on one host (SCENARIO_GAP apart), in time order."""
    gen = Generator(host, start, seed, install_root(scenarios, exchange_root))
    for i, sc in enumerate(scenarios):
        if i:
            gen.clock += SCENARIO_GAP
        gen.run(sc)
    if noise:
        from exhunt.simulate.noise import add_noise

        add_noise(gen, noise, start)
    return Simulation(sorted(gen.events, key=lambda e: e.time), host, gen.device_id)


def step_times(events: list[Event]) -> list[tuple[datetime, str, str]]:
    """(first event time, scenario, step) of each step, in time order: what --check ties alerts to."""
    seen: dict[tuple[str, str], datetime] = {}
    for ev in events:
        if ev.step and (ev.scenario, ev.step) not in seen:
            seen[(ev.scenario, ev.step)] = ev.time
    return sorted((t, sc, st) for (sc, st), t in seen.items())
