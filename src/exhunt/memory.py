"""The memory budget: one figure for every exhunt process of a run (`--memory`, `EXHUNT_MEMORY`).

DuckDB is the only part whose memory grows with the input (its buffer pool, which spills
to a temporary folder beyond its limit), so the budget is split: half to DuckDB's
`memory_limit`, half left for this process's Python objects and pending Arrow batches and
for the reader worker processes (about 120 MB each). The default reproduces the limit
DuckDB always had here (768 MiB).
"""

from __future__ import annotations

import os
import re

from exhunt.errors import UsageError

DEFAULT = "1536MB"
ENV = "EXHUNT_MEMORY"
#: Below this, DuckDB cannot plan the shipped rules over a real export.
MINIMUM = 256 << 20
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
          "tib": 1 << 40}


def parse(text: str, source: str = "--memory") -> int:
    """Bytes from `1GB`, `512MB`, `1.5G` (binary units, as `free -h` shows); a UsageError
    naming `source` otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise UsageError(f"{source}: {text!r} is not a memory size (e.g. 1GB, 1536MB)")
    size = int(float(m.group(1)) * _UNITS[unit])
    if size < MINIMUM:
        raise UsageError(f"{source}: {text!r} is too little; exhunt needs at least {MINIMUM >> 20}MB")
    return size


def budget(option: str | None) -> int:
    """The run's budget in bytes: the option, else the environment variable, else DEFAULT."""
    if option is not None:
        return parse(option)
    env = os.environ.get(ENV)
    if env:
        return parse(env, ENV)
    return parse(DEFAULT)


def duckdb_limit(total: int) -> str:
    """DuckDB's `memory_limit` for a budget of `total` bytes (see the module docstring)."""
    return f"{max(MINIMUM // 2, total // 2) >> 20}MiB"
