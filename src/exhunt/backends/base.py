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
5. Give the command line a way to choose it (`--cluster`, `--workspace`...) in `cli`, and
   test it over its real protocol against a local endpoint, never the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import pyarrow as pa

#: The column a replay's combined result carries each row's run end in (query_windows).
SLICE_END = "_exhunt_slice_end"

Window = tuple[datetime, datetime]


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

    def sources(self, rows: list[dict[str, Any]], tables: Sequence[str]) -> list[tuple[str, str] | None]:
        """For each alerting row, the file and record its data came from, when the engine knows."""
        ...
