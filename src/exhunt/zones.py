"""--timezone: times shown in a responder's zone in the table and CSV output only.

Rules, --now, --from/--to and JSON output stay in UTC (KQL's clock; JSON consumers need one
unambiguous form). For display, a UTC time becomes the zone's local time with its offset
(`2026-03-01T11:00:00.123456+01:00`), so the CSV still names the instant exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exhunt.errors import UsageError

_OFFSET = re.compile(r"^(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?$", re.IGNORECASE)
#: How exhunt writes a UTC time (alerts.iso); only values of time columns are converted.
_ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z$")


@dataclass(frozen=True)
class Zone:
    """A display zone and the name the output gives it."""

    tz: tzinfo
    label: str

    @property
    def is_utc(self) -> bool:
        return self.label == "UTC"


UTC_ZONE = Zone(UTC, "UTC")


def parse_zone(text: str) -> Zone:
    """An IANA name (Europe/Berlin), UTC, or an offset (+02:00, -0530, UTC+2); UsageError else."""
    raw = text.strip()
    if raw.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC_ZONE
    m = _OFFSET.match(raw)
    if m:
        sign, hours, minutes = m.group(1), int(m.group(2)), int(m.group(3) or 0)
        delta = timedelta(hours=hours, minutes=minutes)
        if minutes >= 60 or delta > timedelta(hours=14):
            raise UsageError(f"--timezone: {raw!r} is not a UTC offset (from -14:00 to +14:00)")
        if not delta:
            return UTC_ZONE
        label = f"{sign}{hours:02d}:{minutes:02d}"
        return Zone(timezone(delta if sign == "+" else -delta, label), label)
    try:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*", raw):
            raise ValueError(raw)
        return Zone(ZoneInfo(raw), raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(f"--timezone: {raw!r} is not a time zone; use an IANA name such as Europe/Berlin, "
                         "UTC, or an offset such as +02:00") from None


def local(value: Any, zone: Zone) -> Any:
    """A UTC time as exhunt writes it (`...Z`) in `zone`, with its offset; anything else as is."""
    if zone.is_utc or not isinstance(value, str) or not _ISO_Z.match(value):
        return value
    t = datetime.fromisoformat(value[:-1] + "+00:00").astimezone(zone.tz)
    return t.isoformat(timespec="microseconds")


def localize(rows: list[dict[str, Any]], zone: Zone, columns: set[str]) -> list[dict[str, Any]]:
    """Copies of `rows` with the values of the time `columns` shown in `zone`."""
    if zone.is_utc or not columns:
        return rows
    return [{k: (local(v, zone) if k in columns else v) for k, v in row.items()} for row in rows]


def time_columns(rows: list[dict[str, Any]]) -> set[str]:
    """The columns holding a date-time in any row: the ones --timezone converts (a text
    column that merely looks like a time is data, and stays as it is)."""
    return {k for row in rows for k, v in row.items() if isinstance(v, datetime)}
