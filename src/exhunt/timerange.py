"""--from/--to: hunt only the data inside a time range, and count what was left out.

A responder narrowing a hunt to an incident's window expects the rules to see only that
window's events, as if the export had been cut there: a rule counting events in an hour
must not count events before --from. So rows outside the range are hidden from every
query after loading (Session.restrict), and each file's report moves them from `used` to
`skipped` with the reason OUTSIDE, so read = used + skipped still holds per file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from exhunt.engine import EARLIEST, LATEST, Session
from exhunt.errors import UsageError
from exhunt.sources.base import FileReport

#: The skip reason of rows outside --from/--to (not a problem for --strict).
OUTSIDE = "outside --from/--to"
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class TimeRange:
    """From `start` to `end`, both included; naive UTC (None: open on that side)."""

    start: datetime | None
    end: datetime | None

    def bounds(self) -> tuple[datetime, datetime]:
        """The (after, upto] pair Session.restrict takes: times are stored to the microsecond,
        so `after` one microsecond before `start` includes `start` itself."""
        return (self.start - _US if self.start else EARLIEST, self.end or LATEST)


def parse_bound(text: str, option: str) -> datetime:
    """ISO-8601 -> naive UTC. Without an offset the time is UTC (KQL's clock); a date alone
    is the start of that day for --from and its end (the last microsecond) for --to."""
    raw = text.strip()
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: {raw!r} is not an ISO-8601 date or date-time "
                         "(e.g. 2026-03-01 or 2026-03-01T12:00:00Z)") from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    if option == "--to" and _DATE_ONLY.match(raw):
        t += timedelta(days=1) - _US
    return t


def parse_range(start: str | None, end: str | None) -> TimeRange | None:
    """The range --from/--to ask for; None when neither is given. UsageError when one is not
    a date or --from is after --to."""
    if start is None and end is None:
        return None
    lo = parse_bound(start, "--from") if start is not None else None
    hi = parse_bound(end, "--to") if end is not None else None
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--from ({lo.isoformat()}Z) is after --to ({hi.isoformat()}Z)")
    return TimeRange(lo, hi)


def apply(session: Session, reports: list[FileReport], span: TimeRange) -> None:
    """Hide the rows outside `span` from the session's queries and count them per file."""
    by_path: dict[str, FileReport] = {}
    for r in reports:
        by_path.setdefault(r.path, r)
    for (table, path), n in session.restrict(*span.bounds()).items():
        report = by_path.get(path)
        if report is None or n <= 0:
            continue
        report.used[table] -= n
        if report.used[table] <= 0:
            del report.used[table]
        report.skipped[OUTSIDE] += n
