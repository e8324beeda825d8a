"""Sentinel schedule spans: `5m`, `1h`, `14d` in rule YAML, `PT5M`/`P1D` in ARM templates."""

from __future__ import annotations

import re
from datetime import timedelta

_SHORT = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse(text: str) -> timedelta:
    """Parse `1h` / `PT1H` into a timedelta; ValueError names the bad text."""
    m = _SHORT.match(str(text))
    if m:
        return timedelta(**{_UNITS[m.group(2).lower()]: int(m.group(1))})
    m = _ISO.match(str(text).strip())
    if m and any(m.groups()):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    raise ValueError(f"not a time span: {text!r} (use e.g. 5m, 1h, 1d or PT1H)")


def short(span: timedelta) -> str:
    """The Sentinel YAML spelling: the largest whole unit."""
    secs = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % size == 0:
            return f"{secs // size}{unit}"
    return f"{secs}s"


def iso(span: timedelta) -> str:
    """The ARM template spelling (ISO 8601 duration)."""
    secs = int(span.total_seconds())
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    tail = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    return out + ("T" + tail if tail else ("" if days else "T0S"))
