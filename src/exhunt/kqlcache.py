"""Translated KQL kept between runs, so a rule is parsed once per machine, not once per run.

duckdb-kql parses with a pure-Python ANTLR grammar: 10 to 110 ms per shipped rule, half
a second for all of them, paid again by every run although the SQL only depends on the
query text, the tables' columns, the clock placeholder and the translator's version.
Those make the key. The cache is an optimization only: a missing, unreadable or
damaged entry means translating again, and a cache that cannot be written is ignored.

`EXHUNT_CACHE_DIR` moves it (`off` turns it off); the default follows XDG
(`~/.cache/exhunt/kql`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

#: Bump when what is stored changes shape.
FORMAT = 1
#: Entries kept; past this the least recently written quarter goes (a key includes the
#: tables' columns, so inputs with new columns add entries).
MAX_ENTRIES = 1000


def directory() -> Path | None:
    """Where entries live, or None when caching is off."""
    env = os.environ.get("EXHUNT_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env) / "kql"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "exhunt" / "kql"


@cache
def _translator_version() -> str:
    return version("duckdb-kql")  # not duckdb_kql.__version__: importing the package is the cost saved


def key(kql: str, schema: dict[str, list[str]], query_now: datetime) -> str:
    blob = json.dumps([FORMAT, _translator_version(), kql, schema, query_now.isoformat()], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


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


def get(entry: str) -> tuple[str, dict[str, Any]] | None:
    """The SQL and parameters stored under `entry`, or None."""
    folder = directory()
    if folder is None:
        return None
    try:
        doc = json.loads((folder / f"{entry}.json").read_text(encoding="utf-8"))
        return str(doc["sql"]), _decode(doc["params"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def put(entry: str, sql: str, params: dict[str, Any]) -> None:
    """Store a translation (atomically: a reader never sees half a file)."""
    folder = directory()
    encoded = _encode(params)
    if folder is None or encoded is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"sql": sql, "params": encoded}, fh)
        os.replace(tmp, folder / f"{entry}.json")
        _trim(folder)
    except OSError:
        pass


def _trim(folder: Path) -> None:
    entries = list(folder.glob("*.json"))
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for old in entries[: len(entries) - MAX_ENTRIES * 3 // 4]:
        old.unlink(missing_ok=True)
