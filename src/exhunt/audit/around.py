"""Looking around the agents: what sits in Exchange's folders that no agent list admits to.

* PE files (an `MZ` header, whatever the extension) under the install's `Bin` and
  `TransportRoles` that no agent references and Microsoft did not sign: LightNeuron's native
  companion DLL sits in `Bin` and no list names it;
* LightNeuron's file names in their places (content.md §4.2, §4.5): its configuration, rule and
  log files in the NetworkService profile, its companion DLL and config in `Bin`, its
  installer scripts in System32;
* mail files (`msg*`, `*.eml`) lingering in `TransportRoles\\Pickup`, LightNeuron's way out.

Every walk is bounded (depth, files, PE headers read, signatures checked, bytes per file); what
the bounds left out is reported in the run summary, never dropped silently.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exhunt.audit.collection import Install, fold
from exhunt.audit.judge import Context, finding, signature_line

#: Files walked under one install's Bin and TransportRoles.
MAX_FILES = 30_000
#: How deep under Bin / TransportRoles.
MAX_DEPTH = 6
#: PE headers read (two bytes each) per install.
MAX_PE_HEADERS = 10_000
#: Signatures verified per install (the newest, non-Microsoft-named files first): a verification
#: costs about a tenth of a second; a file without any signature needs none.
MAX_SIGNATURES = 100
#: Files larger than this are not hashed nor signature-checked (reported).
MAX_PE_BYTES = 64 << 20
#: Mail files named per Pickup finding (the count is always whole).
MAX_NAMED = 20
#: TransportRoles folders holding data, not code: not searched for PE files.
DATA_FOLDERS = frozenset({"logs", "data", "pickup", "replay", "queue"})


@dataclass(frozen=True)
class Artefact:
    """A file name and place LightNeuron or its public emulation uses."""

    where: str  # "drive" (relative to a drive's root) or "install" (relative to the install's root)
    path: str  # Windows-style, relative
    what: str  # what the source says it is
    signed_ok: bool = False  # a Microsoft-signed file by that name is not the artefact (a DLL name)


_NS_TEMP = r"Windows\ServiceProfiles\NetworkService\AppData\Local\Temp"
_NS_ROAMING = r"Windows\ServiceProfiles\NetworkService\AppData\Roaming\Microsoft"
ARTEFACTS: tuple[Artefact, ...] = (
    Artefact("drive", _NS_TEMP + r"\winmail.dat", "LightNeuron's configuration file (%tmp%\\winmail.dat, ESET)"),
    Artefact("drive", _NS_TEMP + r"\msmocf.xml", "LightNeuron log file (ESET)"),
    Artefact("drive", _NS_TEMP + r"\msmodl.dat", "LightNeuron log file (ESET)"),
    Artefact("drive", _NS_TEMP + r"\msmdat.xml", "LightNeuron emulation's rules file (MITRE Engenuity)"),
    Artefact("drive", _NS_TEMP + r"\tmp4C4E", "LightNeuron emulation's e-mail log (MITRE Engenuity)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\814ad43-58ab-2cd3-3e68-b82a8f402fd0", "LightNeuron log file (ESET)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\42cf8a1-6e20-8c24-d35f-82c46d8b70ba", "LightNeuron log file (ESET)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\36b1f4a-82b9-eb06-7c1e-90b4b2d5c27d", "LightNeuron log file (ESET)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\thumbcache_32.db", "LightNeuron file, thumbnail-cache name (ESET)"),
    Artefact("drive", _NS_ROAMING + r"\thumbcache_idx.db", "LightNeuron file named like a thumbnail cache (ESET)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\msxfer.dat", "LightNeuron emulation's agent log (MITRE Engenuity)"),
    Artefact("drive", _NS_ROAMING + r"\Windows\5365f8a8-27e0-4727-914a-2ab6b734771a",
             "LightNeuron emulation's log file (MITRE Engenuity)"),
    Artefact("drive", r"Windows\System32\msinp.ps1", "LightNeuron's installation script (ESET)"),
    Artefact("drive", r"Windows\System32\msiex.ps1", "LightNeuron emulation's installation script (MITRE Engenuity)"),
    Artefact("drive", r"Windows\System32\mtxconf.dll", "LightNeuron emulation's staged agent DLL (MITRE Engenuity)",
             signed_ok=True),
    Artefact("drive", r"Windows\System32\mtxcli.dll", "LightNeuron emulation's staged companion DLL (MITRE Engenuity)",
             signed_ok=True),
    Artefact("drive", r"Windows\System32\wdr.rules.xml", "LightNeuron emulation's staged rules (MITRE Engenuity)"),
    Artefact("drive", r"Windows\System32\perfe009.dat", "LightNeuron emulation's staged config (MITRE Engenuity)"),
    Artefact("drive", r"Windows\Temp\msiexinstallation.log", "LightNeuron emulation's install log (MITRE Engenuity)"),
    Artefact("install", r"Bin\exdbdata.dll", "LightNeuron emulation's companion DLL (MITRE Engenuity, after ESET)",
             signed_ok=True),
    Artefact("install", r"Bin\exrwdb.dll", "LightNeuron's companion DLL name (ESET's paper as summarised)",
             signed_ok=True),
    Artefact("install", r"Bin\winmail.dat", "LightNeuron emulation's configuration (MITRE Engenuity)"),
    Artefact("install", r"Bin\Microsoft.Exchange.Security.Interop.dll", "LightNeuron's transport agent DLL (ESET)",
             signed_ok=True),
)


@dataclass
class AroundCounts:
    files: int = 0
    pe: int = 0
    signatures: int = 0
    unchecked: int = 0


def look_around(ctx: Context, installs: list[Install]) -> tuple[list[dict[str, Any]], AroundCounts]:
    """Findings about files around the agents of these installs (and on their drives)."""
    out: list[dict[str, Any]] = []
    counts = AroundCounts()
    drives_seen: set[str] = set()
    for inst in installs:
        out += _artefacts(ctx, inst, drives_seen)
        out += _unlisted_pe(ctx, inst, counts)
        out += _pickup(ctx, inst)
    return out, counts


def _fields(ctx: Context, local: Path, sha256: str = "", signer: str = "") -> dict[str, Any]:
    windows = ctx.coll.windows_of(local)
    return {"AgentName": "", "TransportService": "", "AssemblyPath": "", "FactoryType": "",
            "FolderPath": windows or ctx.coll.shown(local), "FileName": local.name if not windows else
            windows.rsplit("\\", 1)[-1], "CollectedFile": ctx.coll.shown(local), "SHA256": sha256, "Signer": signer}


def sha256_of(path: Path, limit: int = MAX_PE_BYTES) -> str:
    """SHA-256 of a file of at most `limit` bytes ("" when larger or unreadable)."""
    digest = hashlib.sha256()
    read = 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                read += len(chunk)
                if read > limit:
                    return ""
                digest.update(chunk)
    except OSError:
        return ""
    return digest.hexdigest()


def _artefacts(ctx: Context, inst: Install, drives_seen: set[str]) -> list[dict[str, Any]]:
    out = []
    letter = inst.root[0].upper()
    for art in ARTEFACTS:
        if art.where == "drive":
            if letter in drives_seen:
                continue
            winpath = f"{letter}:\\{art.path}"
        else:
            winpath = inst.root.rstrip("\\") + "\\" + art.path
        hit = ctx.coll.find(winpath)
        if hit.local is None or ctx.coll.regular_file(hit.local):
            continue
        if str(hit.local).casefold() in ctx.referenced:
            continue  # an agent's DLL or its P/Invoke target: that agent's findings say it
        evidence = [art.what, f"{hit.windows}, file in the collection: {ctx.coll.shown(hit.local)}"]
        sig_text = ""
        signer = ""
        if art.signed_ok:
            sig = ctx.signature_of(hit.local)
            if sig.present and sig.valid and sig.microsoft:
                continue
            sig_text = signature_line(sig)
            signer = sig.signer if sig.present else ""
            evidence.append(sig_text)
        try:
            size = os.stat(hit.local).st_size
            evidence.append(f"{size} bytes")
        except OSError:
            pass
        sha = sha256_of(hit.local)
        if sha:
            evidence.append(f"SHA-256 {sha}")
        out.append(finding(ctx, "audit-lightneuron-file", evidence, _fields(ctx, hit.local, sha, signer),
                           (ctx.coll.shown(hit.local), ""), [fold(hit.windows)]))
    drives_seen.add(letter)
    return out


def _walk(ctx: Context, inst: Install, counts: AroundCounts) -> Iterator[Path]:
    """Files under every local copy of Bin and TransportRoles (data folders left out), bounded."""
    for folder in inst.local:
        for top in ("Bin", "TransportRoles"):
            start = ctx.coll.child(folder, top)
            if start is None or not start.is_dir() or start.is_symlink():
                continue
            if top == "TransportRoles":
                subs = []
                for name in sorted(ctx.coll.entries(start).values()):
                    if fold(name) in DATA_FOLDERS:
                        continue
                    subs.append(start / name)
            else:
                subs = [start]
            for sub in subs:
                if sub.is_symlink():
                    continue
                if sub.is_file():
                    counts.files += 1
                    yield sub
                    continue
                for f in ctx.coll.walk_files(sub, MAX_DEPTH, MAX_FILES, f"look-around of {inst.root}"):
                    counts.files += 1
                    if counts.files > MAX_FILES:
                        ctx.coll.skip(inst.root, f"look-around stopped after {MAX_FILES} files")
                        return
                    yield f


#: Bytes read to tell a PE file and whether it carries a signature at all.
HEADER_BYTES = 4096


def _header(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(HEADER_BYTES)
    except OSError:
        return b""


def _unsigned(header: bytes) -> bool:
    """Whether a PE header says the file has no certificate table (no verification needed)."""
    from exhunt.audit.authenticode import security_directory

    return security_directory(header) == (0, 0)


def _unlisted_pe(ctx: Context, inst: Install, counts: AroundCounts) -> list[dict[str, Any]]:
    candidates: list[tuple[Path, os.stat_result, bool]] = []
    headers = 0
    for path in _walk(ctx, inst, counts):
        if str(path).casefold() in ctx.referenced:
            continue
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        headers += 1
        if headers > MAX_PE_HEADERS:
            ctx.coll.skip(inst.root, f"PE headers of more than {MAX_PE_HEADERS} files not read")
            break
        header = _header(path)
        if header[:2] == b"MZ":
            counts.pe += 1
            candidates.append((path, st, _unsigned(header)))
    # Newest first, names that do not look like Microsoft's before those that do: the bound on
    # signature checks then leaves out the files least likely to matter.
    candidates.sort(key=lambda c: (c[0].name.casefold().startswith("microsoft."), -c[1].st_mtime, str(c[0])))
    out = []
    verified = past = 0
    for path, st, unsigned in candidates:
        if st.st_size > MAX_PE_BYTES:
            counts.unchecked += 1
            ctx.coll.skip(ctx.coll.shown(path), f"{st.st_size} bytes: over {MAX_PE_BYTES}, not signature-checked")
            continue
        if unsigned:
            sig: Any = _NOT_SIGNED
        elif verified >= MAX_SIGNATURES:
            counts.unchecked += 1
            past += 1
            continue
        else:
            sig = ctx.signature_of(path)
            verified += 1
            counts.signatures += 1
        if sig.present and sig.valid and sig.microsoft:
            continue
        sha = sha256_of(path)
        windows = ctx.coll.windows_of(path)
        evidence = ["a PE file no agent list references, in Exchange's folders",
                    signature_line(sig), f"{st.st_size} bytes" + (f", SHA-256 {sha}" if sha else ""),
                    f"file in the collection: {ctx.coll.shown(path)}"]
        out.append(finding(ctx, "audit-unlisted-pe", evidence, _fields(ctx, path, sha, sig.signer if sig.present
                                                                          else ""),
                           (ctx.coll.shown(path), ""), [fold(windows or ctx.coll.shown(path)), sha]))
    if past:
        ctx.coll.skip(inst.root, f"{past} signed PE file(s) past the first {MAX_SIGNATURES} verified: "
                                 "not signature-checked")
    return out


@dataclass(frozen=True)
class _Unsigned:
    present: bool = False
    valid: bool = False
    signer: str = ""
    issuer: str = ""
    microsoft: bool = False
    reason: str = "the file is not signed"


_NOT_SIGNED = _Unsigned()


def _pickup(ctx: Context, inst: Install) -> list[dict[str, Any]]:
    out = []
    for folder in inst.local:
        pickup = ctx.coll.lookup(folder, ["TransportRoles", "Pickup"])
        if pickup is None or not pickup.is_dir() or pickup.is_symlink():
            continue
        mail = [f for f in ctx.coll.walk_files(pickup, 0, 10_000, f"Pickup of {inst.root}")
                if fold(f.name).startswith("msg") or fold(f.name).endswith(".eml")]
        if not mail:
            continue
        msg = [f for f in mail if fold(f.name).startswith("msg")]
        evidence = [f"{len(mail)} mail file(s) waiting to be sent"
                    + (f", {len(msg)} named msg* (LightNeuron names its outgoing mail msg<tick count>)" if msg else "")]
        evidence += [f"{ctx.coll.shown(f)}" for f in mail[:MAX_NAMED]]
        if len(mail) > MAX_NAMED:
            evidence.append(f"... and {len(mail) - MAX_NAMED} more")
        fields = _fields(ctx, pickup)
        fields["FileName"] = ""
        out.append(finding(ctx, "audit-pickup-lingering", evidence, fields, (ctx.coll.shown(pickup), ""),
                           [fold(inst.root), "pickup"]))
    return out
