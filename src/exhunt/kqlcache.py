"""Translated KQL kept between runs, so a rule is parsed once per machine, not once per run.

duckdb-kql parses with a pure-Python ANTLR grammar: 10 to 110 ms per shipped rule, half
a second for all of them, paid again by every run although the SQL only depends on the
query text, the tables' columns, the clock placeholder and the translator's version.
The facts exhunt reads from a query's parse tree (its tables, the columns it reads, whether
it is judged row by row: exhunt.kql.tree) are kept the same way, in `*.facts` entries keyed
by the query text, the reader's own digest and the parser's version, so a warm run parses
nothing. The cache is an optimization only: a missing, unreadable or damaged entry means
translating again, and a cache that cannot be written is ignored.

An entry is SQL exhunt will execute, so it is trusted only when it provably came from
this user's own earlier translation of exactly this input:

- each entry stores that input in full (KQL text, tables' columns, clock placeholder,
  translator version) and is used only when it equals the current one, not merely its hash;
- each entry carries an HMAC-SHA256 under a per-user secret (`key`, mode 0600, beside the
  entries), so an entry written by anyone without that secret is refused;
- the directory is created 0700, and on POSIX it is used only when it (and the folder it
  is in) belongs to the current user and is not writable by group or others; otherwise the
  cache is ignored with one warning.

`EXHUNT_CACHE_DIR` moves it (`off` turns it off); the default is the platform's per-user
cache folder (`platformdirs.user_cache_dir("exhunt")`, e.g. `~/.cache/exhunt`), `kql` inside.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

#: Bump when what is stored changes shape.
FORMAT = 2
#: Entries kept; past this the least recently written quarter goes (an entry's input
#: includes the tables' columns, so inputs with new columns add entries).
MAX_ENTRIES = 1000
#: A query's facts (exhunt.kql.tree) are kept beside its translations under this suffix.
FACTS_SUFFIX = ".facts"
#: The per-user secret's file name and size.
KEY_FILE = "key"
KEY_BYTES = 32
#: An entry larger than this is not a translation of a rule (the largest is about 100 kB).
MAX_ENTRY_BYTES = 4 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _stderr(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


#: Where a refused cache is reported (once per folder and process).
warn: Callable[[str], None] = _stderr
_warned: set[str] = set()
_secrets: dict[str, bytes] = {}


@dataclass(frozen=True)
class Input:
    """Everything a translation depends on: an entry is used only for an equal input."""

    kql: str
    schema: dict[str, list[str]]
    clock: str
    translator: str

    def as_doc(self) -> dict[str, Any]:
        return {"kql": self.kql, "schema": self.schema, "clock": self.clock, "translator": self.translator}

    @property
    def name(self) -> str:
        """The entry's file name (a digest of the input: finding it, not trusting it)."""
        return hashlib.sha256(_canonical([FORMAT, self.as_doc()])).hexdigest()


def inputs(kql: str, schema: dict[str, list[str]], query_now: datetime) -> Input:
    return Input(kql, {t: list(cols) for t, cols in schema.items()}, query_now.isoformat(), _translator_version())


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


#: Revision of the checks made before a translation is stored (bump when one is added).
CHECKS = "checks3"


@cache
def _translator_version() -> str:
    # not duckdb_kql.__version__: importing the package is the cost saved. CHECKS: exhunt's own
    # refusals made before translating (kql.messages.where_predicates); an entry stored before a
    # new refusal must not let its query skip it.
    return f'{version("duckdb-kql")}+{CHECKS}'


def base_directory() -> Path | None:
    """The folder named by EXHUNT_CACHE_DIR or the platform, or None when caching is off."""
    env = os.environ.get("EXHUNT_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("exhunt", appauthor=False))


def directory() -> Path | None:
    """Where entries live, or None when caching is off."""
    base = base_directory()
    return None if base is None else base / "kql"


def _refuse(folder: Path, why: str) -> None:
    if str(folder) not in _warned:
        _warned.add(str(folder))
        warn(f"translation cache {str(folder)!r} ignored: {why}; KQL is translated afresh every run "
             f"(fix its owner or permissions, or set EXHUNT_CACHE_DIR)")


def _unsafe(st: os.stat_result, private: bool = False, shared_ok: bool = False) -> str | None:
    """Why a folder or file with this status may hold something another user wrote, or None.

    `private`: nobody else may even read it (the secret). `shared_ok`: the folder
    EXHUNT_CACHE_DIR names may also be root's with the sticky bit, as /tmp is (nobody can
    replace what another user made in it).
    """
    if not hasattr(os, "getuid"):  # Windows: a per-user profile folder, protected by its ACL
        return None
    if shared_ok and st.st_uid == 0 and st.st_mode & stat.S_ISVTX:
        return None
    if st.st_uid != os.getuid():
        return f"it is owned by another user (uid {st.st_uid})"
    if st.st_mode & (0o077 if private else 0o022):
        what = "readable or writable" if private else "writable"
        return f"it is {what} by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _make_dir(path: Path) -> os.stat_result:
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(str(path))
    return st


def _ready() -> Path | None:
    """The entries' folder, created 0700 and checked, or None (off, unusable or unsafe)."""
    folder = directory()
    if folder is None:
        return None
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path, shared_ok in ((folder.parent, True), (folder, False)):
            why = _unsafe(_make_dir(path), shared_ok=shared_ok)
            if why is not None:
                _refuse(path, why)
                return None
    except OSError:
        return None  # cannot be made or read: the cache is only an optimization
    return folder


def _read_small(path: Path, limit: int) -> tuple[bytes, os.stat_result] | None:
    """A regular file's bytes (not through a symbolic link, at most `limit`), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _BINARY)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return fh.read(limit + 1), st


def _secret(folder: Path) -> bytes | None:
    """This user's key for the entries' HMAC: read, or made (0600) on first use."""
    known = _secrets.get(str(folder))
    if known is not None:
        return known
    path = folder / KEY_FILE
    if not path.exists() and not path.is_symlink():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY, 0o600)
        except FileExistsError:
            pass  # another run made it meanwhile: read theirs
        except OSError:
            return None
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(KEY_BYTES))
    found = _read_small(path, KEY_BYTES)
    if found is None:
        return None
    data, st = found
    why = _unsafe(st, private=True)
    if why is not None:
        _refuse(path, why)
        return None
    if len(data) != KEY_BYTES:
        return None
    _secrets[str(folder)] = data
    return data


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")


def _encode(params: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, datetime):
            out[name] = {"datetime": value.isoformat()}
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[name] = {"value": value}
        else:
            return None  # a type this file does not know how to keep: do not cache
    return out


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    return {name: datetime.fromisoformat(v["datetime"]) if "datetime" in v else v["value"]
            for name, v in params.items()}


def _load(path_name: str, input_doc: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON document stored under this name, when this user signed it for exactly this input."""
    folder = _ready()
    secret = None if folder is None else _secret(folder)
    if folder is None or secret is None:
        return None
    found = _read_small(folder / path_name, MAX_ENTRY_BYTES)
    if found is None:
        return None
    mac, _, body = found[0].partition(b"\n")
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None  # not written by this user's exhunt: never read further, never used
    try:
        doc = json.loads(body.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("input") != input_doc:
            return None  # an entry for something else
        return doc
    except ValueError:
        return None


def _store(path_name: str, doc: dict[str, Any]) -> None:
    """Store a document, signed: the MAC's hex digits, a newline, then the JSON it signs
    (written atomically: a reader never sees half a file)."""
    folder = _ready()
    secret = None if folder is None else _secret(folder)
    if folder is None or secret is None:
        return
    body = _canonical({"format": FORMAT, **doc})
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            fh.write(_mac(secret, body) + b"\n" + body)
        os.replace(tmp, folder / path_name)
        _trim(folder)
    except OSError:
        pass


def get(inp: Input) -> tuple[str, dict[str, Any]] | None:
    """The SQL and parameters stored for exactly this input by this user, or None."""
    doc = _load(f"{inp.name}.json", inp.as_doc())
    if doc is None or not isinstance(doc.get("sql"), str):
        return None
    try:
        return doc["sql"], _decode(doc["params"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def put(inp: Input, sql: str, params: dict[str, Any]) -> None:
    """Store a translation, signed."""
    encoded = _encode(params)
    if encoded is not None:
        _store(f"{inp.name}.json", {"input": inp.as_doc(), "sql": sql, "params": encoded})


@dataclass(frozen=True)
class FactInput:
    """What a query's facts (exhunt.kql.tree) depend on: its text, the reader, the parser."""

    kql: str
    reader: str
    translator: str

    def as_doc(self) -> dict[str, Any]:
        return {"facts_of": self.kql, "reader": self.reader, "translator": self.translator}

    @property
    def name(self) -> str:
        return hashlib.sha256(_canonical([FORMAT, self.as_doc()])).hexdigest()


def fact_inputs(kql: str, reader: str) -> FactInput:
    return FactInput(kql, reader, _translator_version())


def get_facts(inp: FactInput) -> Any:
    """The facts stored for exactly this input by this user (a JSON value), or None.

    Facts decide which columns are loaded and how a rule is replayed: an entry anyone else
    wrote could hide alerts, so they are signed and checked exactly like translations."""
    doc = _load(f"{inp.name}{FACTS_SUFFIX}", inp.as_doc())
    return None if doc is None else doc.get("facts")


def put_facts(inp: FactInput, facts: Any) -> None:
    _store(f"{inp.name}{FACTS_SUFFIX}", {"input": inp.as_doc(), "facts": facts})


def _trim(folder: Path) -> None:
    entries = [*folder.glob("*.json"), *folder.glob("*" + FACTS_SUFFIX)]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for old in entries[: len(entries) - MAX_ENTRIES * 3 // 4]:
        old.unlink(missing_ok=True)
