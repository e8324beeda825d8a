"""What a hunt needs from the engine that holds the tables, and how to add one.

`replay`, `alerts`, `ruletest` and the commands talk to an engine only through `Backend`,
so the same rules, replay and alert schema run on embedded DuckDB, on Azure Data Explorer
(or any Kusto endpoint) and on a Log Analytics workspace.

Writing a backend
-----------------
1. Make a module under `exhunt/backends/` with a class that has the methods below. Only
   `tables`, `time_span`, `slice_ends` and `query` are required for correct results; the
   two `query_*` shortcuts may return None ("cannot do that exactly here"), and replay then
   runs each window with `query`.
2. Times are naive datetimes in UTC, as KQL's are. A window (start, end) shows a query the
   rows with start < Timestamp <= end (TimeGenerated where a table has no Timestamp), and
   `now()` reads `now`. Engines that cannot pin the clock must refuse, not approximate.
3. Return results as Arrow tables with the query's own column names and order.
4. Raise `exhunt.errors.RuleError` with plain words (which table, column, permission or
   limit) when a query fails; never let an engine's own exception reach the user.
5. `sources` gives each alerting row's file and record when the engine knows them (None
   otherwise). When finding them costs one pass whatever the number of rows, return a
   `Later` per row instead: the caller asks (`Later.get`) only after every rule has run.
6. `events` (the HTML report's timeline) returns the rows of some tables on one server
   around some times, or None when the engine cannot read them without writing a value from
   the data (a server's name, a time) into the query's text: only bound parameters may carry
   those. The report then says that no timeline is available.
7. Give the command line a way to choose it (`--cluster`, `--workspace`...) in `cli`, pass it
   to `exhunt.hunt.hunt(..., backend=...)`, and test it over its real protocol against a
   local endpoint, never the network (docs/architecture.md, "A backend").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa

#: The column a replay's combined result carries each row's run end in (query_windows).
SLICE_END = "_exhunt_slice_end"

Window = tuple[datetime, datetime]
#: Where an alerting row's data came from: (file, record); "" for a part not known.
Source = tuple[str, str]


@dataclass
class Events:
    """Rows of a server's tables in a time range (Backend.events): the `limit` nearest to the
    given times, and how many the range holds in all."""

    #: (table, row) in time order; a row holds its table's columns (null ones left out) and
    #: its provenance (`_source_file`, `_record`) when known.
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Rows in the range, those not in `rows` included.
    total: int = 0


class Later:
    """A row's source its backend finds only when first asked (`get`), together with every
    other `Later` it handed out until then.

    For a backend whose look-up costs one read of a file whatever the number of rows (DuckDB
    reading a CSV file hunted in place again for its alerts' lines): a caller that asks only
    after every rule has run pays that read once for all the rules' alerts, not once per rule.
    """

    def __init__(self, settle: Callable[[], None], known: Source = ("", "")) -> None:
        #: Finds the source of every unsettled `Later` of the backend (sets `source`, `settled`).
        self._settle = settle
        #: The source so far (what `get` gives if the look-up finds nothing better).
        self.source = known
        self.settled = False

    def get(self) -> Source:
        """The source, looked up now (with every other pending one) if it was not yet."""
        if not self.settled:
            self._settle()
            self.settled = True
        return self.source


class Backend(Protocol):
    """An engine holding the hunted tables (see the module's how-to)."""

    #: Shown in the run summary: "duckdb", "kusto https://c.kusto.windows.net/db", ...
    name: str

    def tables(self) -> dict[str, list[str]]:
        """Every table a query can read, with its columns in order."""
        ...

    def time_span(self, tables: Sequence[str]) -> Window | None:
        """Earliest and latest row time over `tables`; None when none of them holds a row."""
        ...

    def slice_ends(self, tables: Sequence[str], step: timedelta) -> list[datetime]:
        """Ascending ends of the `step` slices that hold a row of `tables`. Slices are aligned
        on the Unix epoch and closed at their end: a row at t is in the slice ending at the
        first multiple of `step` at or after t."""
        ...

    def query(self, kql: str, now: datetime | None = None, window: Window | None = None) -> pa.Table:
        """`kql`'s result with now() pinned to `now` (the current time when None), seeing only
        the rows of `window` (every row when None)."""
        ...

    def query_windows(self, kql: str, windows: list[Window], step: timedelta | None = None) -> pa.Table | None:
        """Every run of a replay in one query: the rows of `query(kql, end, (start, end))` for each
        window, each with its run's end in SLICE_END; None when that cannot be done exactly."""
        ...

    def query_sliced(self, kql: str, step: timedelta) -> pa.Table | None:
        """For a rule judged row by row, the rows of one run per `step` slice with now() at the
        slice's end, in one query; None when that cannot be done exactly."""
        ...

    def worker(self) -> Backend:
        """A handle to run another rule at the same time (self when the engine allows it)."""
        ...

    def seal(self) -> None:
        """Nothing more will be loaded: from here on only queries run (DuckDB turns file access off)."""
        ...

    def sources(self, rows: list[dict[str, Any]], tables: Sequence[str]) -> Sequence[Source | Later | None]:
        """For each alerting row, the file and record its data came from, when the engine knows
        (None when it does not); a `Later` when finding it is cheaper for many rows at once."""
        ...

    def events(self, tables: Sequence[str], host: str, window: Window, near: Sequence[datetime],
               limit: int) -> Events | None:
        """Rows of `tables` from server `host` (`exhunt.incidents.host_key` of their `DeviceName`
        or `Computer`: lower case, up to the first dot unless an IP address) with start <= time
        <= end, at most `limit` of them, those nearest to a time of `near` first; None when the
        engine cannot (see the how-to, 6)."""
        ...
