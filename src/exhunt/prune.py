"""Which columns the queries of a run can read, so loading can skip the rest.

Copying every column of every row into DuckDB is most of what a detect run costs on
Defender exports (60-70 columns per table, a rule reads a dozen). A column no query
names cannot change any result, so it may be left empty (a typed null) -- as long as no
query outputs whole rows of its table. What a query reads comes from its parse tree
(exhunt.kql.tree.columns_read), and the analysis stays conservative:

- the columns kept for a table are every name the queries reading it use (a name used
  for anything, and the string a `column_ifexists("X", ...)` passes), plus the time,
  device and report columns;
- a table is pruned only if every way its rows leave a query passes an operator that
  fixes the output columns (`project`, `summarize`, `count`, `distinct`, `make-series`...)
  after operators known to pass rows through by name (`where`, `extend`, `join`, `sort`...),
  following `let` names to where they are read and union legs into the union; rows that
  reach the query's result, an expression (`in (T)`), a function or a join's right side
  (whose clashing columns come out renamed) keep all;
- a `*` or `pack_all`/`bag_pack_all` met before that operator keeps all of the table (it
  reads whole rows); after it, it only sees the columns kept;
- a query with `search`, `find`, `getschema`, `evaluate`, `invoke`, `table()`/`database()`/
  `cluster()` or a wildcard table name (`union Device*`), or one that does not parse,
  disables pruning altogether, as it can reach a table without naming it.
"""

from __future__ import annotations

from collections.abc import Iterable

from exhunt.kql import tree

#: Always loaded: what alerts and replay need whatever the query says (time, device).
ALWAYS = {"timestamp", "timegenerated", "devicename", "computer"}


def keep_columns(queries: Iterable[str], tables: Iterable[str]) -> dict[str, set[str]]:
    """Table -> lower-case names of the columns worth loading; tables not listed keep all."""
    names = list(tables)
    reads = [tree.columns_read(q, names) for q in queries]
    if not reads or any(r is None for r in reads):
        return {}
    out: dict[str, set[str]] = {}
    whole: set[str] = set()
    for read in reads:
        for table, columns in (read or {}).items():
            if columns is None:
                whole.add(table)
            else:
                out.setdefault(table, set(ALWAYS)).update(columns)
    for table in names:
        if table not in out and table not in whole:
            out[table] = set(ALWAYS)  # no query reads it (unread_tables: nothing is stored)
    return {t: cols for t, cols in out.items() if t not in whole}


def unread_tables(queries: Iterable[str], tables: Iterable[str]) -> set[str]:
    """Tables no query names: their rows are checked and counted, never read by a query.

    Empty when a query could reach a table without naming it (`search`, `find`, `union Device*`...).
    """
    names = list(tables)
    reads = [tree.columns_read(q, names) for q in queries]
    if not reads or any(r is None for r in reads):
        return set()
    named = set().union(*(r or {} for r in reads))
    return {t for t in names if t not in named}
