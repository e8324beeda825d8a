"""What PATH is, and the Windows paths an agent list names mapped onto it.

PATH is a collected or mounted file system, the live server's own drives, or one file:

* drive folders at its top (`C/`, `E/`, `C:`, `C%3A`): KAPE's target output, a mounted image
  per drive, or any copy laid out the same way (also one or two folders down, as when KAPE's
  destination holds a folder per host);
* Velociraptor's collection: `uploads/<accessor>/<volume>/...` where the accessor is `auto`,
  `ntfs`, `mft`, `lazy_ntfs` or `ntfs_vss` and the volume `C%3A` or `%5C%5C.%5CC%3A`, names
  inside URL-escaped; several accessors may hold the same drive, each is looked in;
* one drive's root (it holds `Program Files` or `Windows`): drive C unless `--drive` says;
* on Windows, a path on a live drive: every drive as it is.

Windows paths are matched onto the copy one component at a time, case-insensitively (NTFS
ignores case, a copy on Linux does not) and through Velociraptor's escaping. The copy may be
hostile: a link that leads out of it is never followed, and every walk is bounded (depth,
folders, entries per folder) so that a crafted tree cannot hang the audit.
"""

from __future__ import annotations

import itertools
import ntpath
import os
import re
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from exhunt.errors import UsageError

#: Folders read while looking for Exchange installs on one drive (the rest is reported skipped).
MAX_WALK_DIRS = 20_000
#: How deep under a drive's root an Exchange install is looked for (`D:\Apps\Microsoft\Exchange Server\V15` is 4).
MAX_WALK_DEPTH = 5
#: Entries read from one folder; a folder holding more is read this far only (reported).
MAX_DIR_ENTRIES = 50_000
#: Top-level folders of a drive never searched for an install (large, and never one).
SKIP_TOP = frozenset({"windows", "system volume information", "recovery", "perflogs", "users", "programdata"})
#: Velociraptor's accessors that hold Windows volumes, the most faithful first.
VELOCIRAPTOR_ACCESSORS = ("auto", "ntfs", "mft", "lazy_ntfs", "ntfs_vss", "file")
#: Default install roots by version (relative to a drive): 2013-SE, 2010, 2007.
DEFAULT_ROOTS = (r"Program Files\Microsoft\Exchange Server\V15", r"Program Files\Microsoft\Exchange Server\V14",
                 r"Program Files\Microsoft\Exchange Server")
#: Environment variables an assembly path may use, with what they are on a default Windows.
KNOWN_VARIABLES = {
    "programfiles": r"C:\Program Files", "programw6432": r"C:\Program Files",
    "programfiles(x86)": r"C:\Program Files (x86)", "commonprogramfiles": r"C:\Program Files\Common Files",
    "systemroot": r"C:\Windows", "windir": r"C:\Windows", "systemdrive": "C:", "programdata": r"C:\ProgramData",
}

_DRIVE_NAME = re.compile(r"^(?:([A-Za-z])|([A-Za-z]):|([A-Za-z])%3[Aa]|%5[Cc]%5[Cc]\.%5[Cc]([A-Za-z])%3[Aa])$")
_VARIABLE = re.compile(r"%([^%\\]{1,64})%|\$env:([A-Za-z_][A-Za-z0-9_()]{0,63})", re.IGNORECASE)


def drive_letter(name: str) -> str | None:
    """The drive letter a collected folder stands for (`C`, `C:`, `C%3A`, `%5C%5C.%5CC%3A`), upper-case."""
    m = _DRIVE_NAME.match(name)
    if not m:
        return None
    return next(g for g in m.groups() if g).upper()


def fold(name: str) -> str:
    """A file name as compared: case folded (NTFS ignores case)."""
    return name.casefold()


@dataclass
class WinPath:
    """An assembly path as Windows would read it: absolute `X:\\...`, or why it cannot be."""

    path: str  # "C:\\Program Files\\..." ("" when it cannot be made absolute)
    notes: list[str] = field(default_factory=list)  # how it was read (a variable expanded, relative...)
    problem: str = ""  # why it has no absolute form ("" when it has one)
    relative: bool = False
    unc: bool = False


def normalize(text: str, exchange_root: str = "") -> WinPath:
    """`text` (an assemblyPath as written) as an absolute Windows path with `.` and `..` resolved.

    `%ExchangeInstallPath%` and a path without a drive are read against `exchange_root` (the
    Windows path of the install whose list names it); common variables get their default
    values (said in `notes`); a UNC path is never followed (the cmdlets refuse one)."""
    raw = text.strip().strip('"').strip()
    notes: list[str] = []
    if not raw:
        return WinPath("", problem="the assembly path is empty")
    value = raw.replace("/", "\\")

    def expand(m: re.Match[str]) -> str:
        name = (m.group(1) or m.group(2) or "").casefold()
        if name == "exchangeinstallpath":
            if not exchange_root:
                raise _Unresolved(f"{m.group(0)} with no known Exchange install")
            notes.append(f"{m.group(0)} read as {exchange_root}")
            return exchange_root.rstrip("\\") + "\\"
        if name in KNOWN_VARIABLES:
            notes.append(f"{m.group(0)} read as its default {KNOWN_VARIABLES[name]}")
            return KNOWN_VARIABLES[name]
        raise _Unresolved(f"unknown variable {m.group(0)}")

    try:
        value = _VARIABLE.sub(expand, value)
    except _Unresolved as exc:
        return WinPath("", notes, f"cannot read the path: {exc}")
    for prefix in ("\\\\?\\UNC\\", "\\??\\UNC\\"):
        if value.upper().startswith(prefix):
            return WinPath("", notes, "a UNC path (a network share)", unc=True)
    for prefix in ("\\\\?\\", "\\\\.\\", "\\??\\"):
        if value.startswith(prefix):
            value = value[len(prefix):]
            notes.append(f"device prefix {prefix} dropped")
            break
    if value.startswith("\\\\"):
        return WinPath("", notes, "a UNC path (a network share)", unc=True)
    relative = False
    if len(value) >= 2 and value[1] == ":" and value[0].isalpha():
        if not value[2:].startswith("\\"):
            value = value[:2] + "\\" + value[2:]
            notes.append("drive-relative path read from the drive's root")
    elif value.startswith("\\"):
        if not exchange_root:
            return WinPath("", notes, "a path without a drive and no known Exchange install", relative=True)
        value = exchange_root[:2] + value
        relative = True
        notes.append(f"path without a drive read on the Exchange install's drive {exchange_root[:2]}")
    else:
        relative = True
        if not exchange_root:
            return WinPath("", notes, "a relative path and no known Exchange install", relative=True)
        value = exchange_root.rstrip("\\") + "\\" + value
        notes.append(f"relative path read against the Exchange install {exchange_root}")
    value = ntpath.normpath(value)
    value = value[0].upper() + value[1:]
    if len(value) == 2:
        value += "\\"
    return WinPath(value, notes, relative=relative)


class _Unresolved(Exception):
    pass


def parts_of(winpath: str) -> tuple[str, list[str]]:
    """`C:\\a\\b` -> ("C", ["a", "b"])."""
    letter = winpath[0].upper()
    return letter, [p for p in winpath[3:].split("\\") if p]


def within(path: Path, base: Path) -> bool:
    """Whether `path`, links resolved, stays inside `base` (links resolved)."""
    try:
        real, top = os.path.realpath(path), os.path.realpath(base)
    except (OSError, ValueError):
        return False
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


@dataclass
class Found:
    """A Windows path looked up in the collection."""

    windows: str  # the absolute Windows path ("" when it has none)
    local: Path | None  # the file in the collection (None when not there)
    problem: str = ""  # why not: "not in the collection", "drive D: is not in the collection", a link...
    notes: list[str] = field(default_factory=list)
    relative: bool = False
    unc: bool = False
    #: The drive is in the collection (so a missing file is missing there, not merely not collected).
    drive_present: bool = False


@dataclass
class Collection:
    """The file system PATH holds, as drive letters onto local folders."""

    root: Path  # PATH as given
    layout: str  # "kape" (drive folders), "velociraptor", "single-drive", "live", "file", "drives" (--drive only)
    drives: dict[str, list[Path]]
    name: str  # the collection folder's name: DeviceName unless the files name the server
    base: Path | None = None  # the folder paths are shown relative to (PATH, or the folder of a file)
    top: Path | None = None  # the folder holding the layout (drive folders, `uploads`), when found
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    _listings: dict[Path, dict[str, str]] = field(default_factory=dict, repr=False)

    # -- naming ----------------------------------------------------------------------------

    def shown(self, local: Path) -> str:
        """A local path as reports show it: relative to the collection with `/`, else as it is."""
        base = self.base or (self.root if self.root.is_dir() else self.root.parent)
        try:
            return local.relative_to(base).as_posix()
        except ValueError:
            return str(local)

    def windows_of(self, local: Path) -> str:
        """The Windows path of a local file of the collection ("" when it is on no drive)."""
        for letter, bases in self.drives.items():
            for base in bases:
                try:
                    rel = local.relative_to(base)
                except ValueError:
                    continue
                parts = [unquote(p) if self.layout == "velociraptor" else p for p in rel.parts]
                return f"{letter}:\\" + "\\".join(parts)
        return ""

    def skip(self, what: str, why: str) -> None:
        self.skipped.append((what, why))

    # -- looking up -------------------------------------------------------------------------

    def entries(self, folder: Path) -> dict[str, str]:
        """Folded (and URL-unescaped) name -> real name of a folder's entries, read once, bounded."""
        cached = self._listings.get(folder)
        if cached is not None:
            return cached
        names: dict[str, str] = {}
        try:
            with os.scandir(folder) as it:
                for n, entry in enumerate(it):
                    if n >= MAX_DIR_ENTRIES:
                        self.skip(self.shown(folder), f"more than {MAX_DIR_ENTRIES} entries: only the first read")
                        break
                    names.setdefault(fold(entry.name), entry.name)
                    if "%" in entry.name:
                        names.setdefault(fold(unquote(entry.name)), entry.name)
        except OSError:
            pass
        self._listings[folder] = names
        return names

    def child(self, folder: Path, name: str) -> Path | None:
        """`folder`'s entry named `name`, whatever its case or escaping; None when absent."""
        exact = folder / name
        if name not in (".", "..") and os.path.lexists(exact):
            return exact
        real = self.entries(folder).get(fold(name))
        return folder / real if real is not None else None

    def lookup(self, base: Path, parts: list[str]) -> Path | None:
        """`parts` under `base`, component by component; None when any is missing."""
        at = base
        for part in parts:
            found = self.child(at, part)
            if found is None:
                return None
            at = found
        return at

    def locate(self, winpath: WinPath) -> Found:
        """A normalized Windows path found in the collection (never through a link leading out)."""
        out = Found(winpath.path, None, winpath.problem, list(winpath.notes), winpath.relative, winpath.unc)
        if not winpath.path:
            return out
        letter, parts = parts_of(winpath.path)
        bases = self.drives.get(letter, [])
        if not bases:
            out.problem = f"drive {letter}: is not in the collection"
            return out
        out.drive_present = True
        for base in bases:
            local = self.lookup(base, parts)
            if local is None:
                continue
            if not within(local, base):
                out.problem = f"{self.shown(local)} is a link leading out of the collection: not followed"
                return out
            out.local = local
            return out
        out.problem = "not in the collection"
        return out

    def find(self, text: str, exchange_root: str = "") -> Found:
        return self.locate(normalize(text, exchange_root))

    def regular_file(self, local: Path) -> str:
        """"" when `local` is a regular file inside the collection, else why it is not read."""
        try:
            st = os.stat(local)
        except OSError as exc:
            return f"cannot read: {exc.strerror or exc}"
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file"
        if self.layout != "live" and not any(within(local, b) for bases in self.drives.values() for b in bases) \
                and not within(local, self.base or (self.root if self.root.is_dir() else self.root.parent)):
            return "a link leading out of the collection: not followed"
        return ""

    # -- walking ----------------------------------------------------------------------------

    def walk_files(self, folder: Path, max_depth: int, max_files: int, what: str) -> Iterator[Path]:
        """Regular files under `folder`, `max_depth` levels deep at most, links never followed;
        stops after `max_files` (reported as skipped, with `what` naming the walk)."""
        stack: list[tuple[Path, int]] = [(folder, 0)]
        seen = 0
        while stack:
            at, depth = stack.pop()
            try:
                with os.scandir(at) as it:
                    entries = sorted(itertools.islice(it, MAX_DIR_ENTRIES), key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                try:
                    if entry.is_symlink():
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if depth + 1 <= max_depth:
                            subdirs.append(Path(entry.path))
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                seen += 1
                if seen > max_files:
                    self.skip(self.shown(folder), f"{what}: stopped after {max_files} files")
                    return
                yield Path(entry.path)
            stack.extend((d, depth + 1) for d in reversed(subdirs))


# -- recognising the layout --------------------------------------------------------------------

def _children(folder: Path, limit: int = MAX_DIR_ENTRIES) -> list[Path]:
    """A folder's entries (at most `limit`, read no further), sorted by name; [] when unreadable."""
    try:
        with os.scandir(folder) as it:
            return sorted((Path(e.path) for e in itertools.islice(it, limit)), key=lambda p: p.name)
    except OSError:
        return []


def _drive_folders(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    children = _children(folder)
    for child in children:
        letter = drive_letter(child.name)
        if letter and child.is_dir() and not child.is_symlink():
            found.setdefault(letter, []).append(child)
    return found


def _velociraptor_drives(folder: Path) -> dict[str, list[Path]]:
    uploads = folder / "uploads"
    found: dict[str, list[Path]] = {}
    if not uploads.is_dir() or uploads.is_symlink():
        return found
    for accessor in VELOCIRAPTOR_ACCESSORS:
        acc = uploads / accessor
        if not acc.is_dir() or acc.is_symlink():
            continue
        for letter, dirs in _drive_folders(acc).items():
            found.setdefault(letter, []).extend(dirs)
    return found


def _single_drive(folder: Path) -> bool:
    names = {fold(unquote(p.name)) for p in _children(folder) if p.is_dir()}
    return bool(names & {"program files", "program files (x86)", "windows"})


def _live_drives() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        root = Path(f"{letter}:\\")
        try:
            if root.is_dir():
                found[letter] = [root]
        except OSError:
            continue
    return found


def parse_drive_options(options: list[str]) -> dict[str, Path]:
    """`--drive LETTER=DIR` values -> {letter: folder}; a bad one is a UsageError naming it."""
    out: dict[str, Path] = {}
    for option in options:
        letter, sep, folder = option.partition("=")
        letter = letter.strip().rstrip(":")
        if not sep or len(letter) != 1 or not letter.isalpha() or not folder.strip():
            raise UsageError(f"--drive {option!r}: give LETTER=FOLDER (e.g. --drive E=/cases/exch01/E)")
        path = Path(folder.strip())
        if not path.is_dir():
            raise UsageError(f"--drive {option!r}: {path} is not a folder")
        out[letter.upper()] = path
    return out


def _velociraptor_host(folder: Path) -> str:
    m = re.match(r"^Collection-(.+?)-\d{4}-\d{2}-\d{2}", folder.name)
    return m.group(1) if m else ""


def open_collection(path: Path, drive_options: dict[str, Path] | None = None, live: bool | None = None) -> Collection:
    """What `path` is (see the module's docstring), with `--drive` mappings over what was found."""
    drive_options = drive_options or {}
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    if live is None:
        live = os.name == "nt" and path.is_dir() and not _drive_folders(path) and not _velociraptor_drives(path)
    if path.is_file():
        coll = Collection(path, "file", {}, path.parent.name or path.name)
        _adopt_enclosing(coll, path)
    elif live:
        coll = Collection(path, "live", _live_drives(), os.environ.get("COMPUTERNAME", "") or _hostname())
    else:
        coll = _open_folder(path)
    for letter, folder in drive_options.items():
        coll.drives[letter] = [folder]
    if not coll.drives and coll.layout != "file":
        coll.layout = "drives" if drive_options else coll.layout
    return coll


def _hostname() -> str:
    import socket

    return socket.gethostname()


def _open_folder(path: Path) -> Collection:
    name = path.resolve().name or str(path)
    found = _layout_at(path, name)
    if found is not None:
        return found
    if _single_drive(path):
        letter = drive_letter(path.name) or "C"
        return Collection(path, "single-drive", {letter: [path]}, path.resolve().parent.name or name, top=path)
    deeper = [c for c in (_layout_at(folder, name) for folder in _candidates(path)[1:]) if c is not None]
    tops = {str(c.top) for c in deeper}
    if len(tops) > 1:
        names = ", ".join(sorted(Path(t).name for t in tops)[:10])
        raise UsageError(f"{path}: holds several collections ({names}): audit each folder on its own")
    if deeper:
        deeper[0].root = deeper[0].base = path
        return deeper[0]
    return Collection(path, "kape", {}, name, top=path)


def _layout_at(folder: Path, fallback: str) -> Collection | None:
    """The collection whose layout starts at `folder` (drive folders or `uploads`), if any."""
    vr = _velociraptor_drives(folder)
    if vr:
        return Collection(folder, "velociraptor", vr, _velociraptor_host(folder) or folder.resolve().name or fallback,
                          top=folder)
    drives = _drive_folders(folder)
    if drives:
        return Collection(folder, "kape", drives, folder.resolve().name or fallback, top=folder)
    return None


def _candidates(path: Path) -> list[Path]:
    """PATH, then its folders one and two levels down (a host folder, an unzipped collection)."""
    levels = [[path]]
    for _ in range(2):
        below: list[Path] = []
        for folder in levels[-1]:
            below += [p for p in _children(folder, 4096) if p.is_dir() and not p.is_symlink()][:64]
        levels.append(below[:256])
    return [p for level in levels for p in level]


def _adopt_enclosing(coll: Collection, file: Path) -> None:
    """A list given alone that sits inside a collection (`.../C/Program Files/...`): its drives."""
    for parent in Path(os.path.abspath(file)).parents:
        letter = drive_letter(parent.name)
        if letter is None:
            continue
        top = parent.parent
        if top.name.lower() in {a.lower() for a in VELOCIRAPTOR_ACCESSORS} and top.parent.name == "uploads":
            top = top.parent.parent
            coll.drives = _velociraptor_drives(top)
            coll.name = _velociraptor_host(top) or top.name
        else:
            coll.drives = _drive_folders(top)
            coll.name = top.name or coll.name
        coll.base = coll.top = top
        return


# -- Exchange installs and their agent lists ---------------------------------------------------

#: The live lists: Transport service (Mailbox/Hub or Edge) and Front End Transport.
LIST_NAMES = {"agents.config": "Hub", "fetagents.config": "FrontEnd"}


@dataclass
class ListFile:
    """An agent list of an install: the live one, or a template/old/backup copy of it."""

    local: Path
    role: str  # "live", "template", "old", "backup"
    of: str  # the live list it belongs to: "agents.config" or "fetagents.config"
    windows: str  # its Windows path


@dataclass
class Install:
    """One Exchange install found in the collection."""

    root: str  # its Windows path, e.g. C:\Program Files\Microsoft\Exchange Server\V15
    local: list[Path]  # its folder(s) in the collection
    version: str  # "V15", "V14", "2007" or "" (a non-default root)
    edge: bool  # an Edge Transport server (its AD LDS instance folder is there)
    lists: list[ListFile] = field(default_factory=list)

    @property
    def live(self) -> list[ListFile]:
        return [f for f in self.lists if f.role == "live"]


def _copy_role(name: str) -> tuple[str, str] | None:
    """(role, live list) of a copy's file name, None when it is no copy of a list."""
    low = fold(name)
    for live in ("fetagents.config", "agents.config"):
        if low == live:
            return "live", live
        if low.startswith(live + "."):
            rest = low[len(live) + 1:]
            role = "template" if rest == "template" else "old" if rest == "old" else "backup"
            return role, live
    if low.endswith(".bak") and "agents" in low:
        return "backup", "fetagents.config" if low.startswith("fetagents") else "agents.config"
    return None


def _is_root(coll: Collection, folder: Path) -> bool:
    names = coll.entries(folder)
    roles = names.get("transportroles")
    if roles is not None and (folder / roles).is_dir():
        return True
    bin_name = names.get("bin")
    return bin_name is not None and coll.child(folder / bin_name, "ExSetup.exe") is not None


def find_installs(coll: Collection) -> list[Install]:
    """Every Exchange install on every drive: the default roots first, then a bounded walk
    (skipping Windows, user profiles and system folders) for any folder holding
    `TransportRoles` or `Bin\\ExSetup.exe`; each with its lists and their copies."""
    roots: dict[str, Install] = {}

    def add(letter: str, base: Path, folder: Path) -> None:
        rel = folder.relative_to(base)
        parts = [unquote(p) if coll.layout == "velociraptor" else p for p in rel.parts]
        windows = f"{letter}:\\" + "\\".join(parts)
        key = fold(windows)
        if key in roots:
            if folder not in roots[key].local:
                roots[key].local.append(folder)
            return
        last = parts[-1] if parts else ""
        version = last.upper() if re.fullmatch(r"[Vv]1[0-9]", last) else \
            "2007" if fold(last) == "exchange server" else ""
        roots[key] = Install(windows, [folder], version, False)

    for letter, bases in sorted(coll.drives.items()):
        for base in bases:
            for rel in DEFAULT_ROOTS:
                folder = coll.lookup(base, rel.split("\\"))
                if folder is not None and folder.is_dir() and within(folder, base) and _is_root(coll, folder):
                    add(letter, base, folder)
            for folder in _walk_dirs(coll, base, letter):
                add(letter, base, folder)
    out = list(roots.values())
    for inst in out:
        _lists_of(coll, inst)
    return out


def _walk_dirs(coll: Collection, base: Path, letter: str) -> Iterator[Path]:
    """Exchange roots under a drive, breadth first, bounded; an install's own tree is not entered."""
    queue: deque[tuple[Path, int]] = deque([(base, 0)])
    visited = 0
    while queue:
        folder, depth = queue.popleft()
        visited += 1
        if visited > MAX_WALK_DIRS:
            coll.skip(f"{letter}:", f"search for Exchange installs stopped after {MAX_WALK_DIRS} folders")
            return
        if depth and _is_root(coll, folder):
            yield folder
            continue
        if depth >= MAX_WALK_DEPTH:
            continue
        for name in sorted(coll.entries(folder).values()):
            if depth == 0 and (fold(unquote(name)) in SKIP_TOP or name.startswith("$")):
                continue
            child = folder / name
            try:
                if child.is_symlink() or not child.is_dir():
                    continue
            except OSError:
                continue
            queue.append((child, depth + 1))


def _lists_of(coll: Collection, inst: Install) -> None:
    for folder in inst.local:
        roles = coll.child(folder, "TransportRoles")
        if roles is None:
            continue
        data = coll.lookup(roles, ["data", "Adam"])
        inst.edge = inst.edge or (data is not None and data.is_dir())
        for sub in ("Shared", "Agents"):
            where = coll.child(roles, sub)
            if where is None or not where.is_dir() or where.is_symlink():
                continue
            for name in sorted(coll.entries(where).values()):
                role = _copy_role(unquote(name) if coll.layout == "velociraptor" else name)
                if role is None:
                    continue
                local = where / name
                if local.is_dir():
                    continue
                kind, live = role
                if kind == "live" and fold(sub) == "agents":
                    kind = "backup"  # Exchange reads TransportRoles\Shared; a copy under Agents is not loaded
                inst.lists.append(ListFile(local, kind, live, coll.windows_of(local)))
    # When no Shared list exists, an Agents one is the list (older documentation puts it there).
    for live in LIST_NAMES:
        if not any(f.role == "live" and f.of == live for f in inst.lists):
            for f in inst.lists:
                if f.of == live and fold(f.local.name) == live:
                    f.role = "live"
                    break


def find_assembly(coll: Collection, text: str, exchange_root: str) -> Found:
    """An agent's assembly path found in the collection. A relative path is read against the
    install's root, and against its `TransportRoles\\agents` folder (where Microsoft's own
    scripts install built-in agents from, `..\\..\\bin\\...` included) when only that holds it."""
    first = coll.locate(normalize(text, exchange_root))
    if not first.relative or first.local is not None or not exchange_root or text.strip().startswith(("\\", "/")):
        return first
    agents_dir = exchange_root.rstrip("\\") + "\\TransportRoles\\agents"
    second = coll.locate(normalize(text, agents_dir))
    return second if second.local is not None else first
