"""Which columns the queries of a run can read, so loading can skip the rest.

Copying every column of every row into DuckDB is most of what a detect run costs on
Defender exports (60-70 columns per table, a rule reads a dozen). A column no query
names cannot change any result, so it may be left empty (a typed null) -- as long as no
query outputs whole rows of its table. The analysis is deliberately conservative:

- the columns kept are every word of the query text (strings included, so
  `column_ifexists("X", ...)` keeps X) plus the time, device and report columns;
- a table is pruned only if every place a query reads it is followed, in the same
  pipeline, by an operator that fixes the output columns (`project`, `summarize`,
  `count`, `distinct`, `make-series`) before any operator that is not known to pass
  rows through by name (`where`, `extend`, `join`, `sort`...); a pipeline that ends,
  is bound with `as`, closes a parenthesis or is a bare `let` value first keeps all;
- a `*` or `pack_all`/`bag_pack_all` met before that operator keeps all of the table (it
  reads whole rows); after it, it only sees the columns kept;
- a query with `search`, `find`, `getschema`, `evaluate`, `invoke`, `table()` (whose name may
  be computed) or a wildcard table name (`union Device*`) disables pruning altogether, as it can
  reach a table without naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Always loaded: what alerts and replay need whatever the query says (time, device).
ALWAYS = {"timestamp", "timegenerated", "devicename", "computer"}
_TERMINAL = {"project", "summarize", "count", "distinct", "make-series"}
_PASS = {
    "where", "filter", "extend", "sort", "order", "top", "take", "limit", "sample", "join", "lookup",
    "union", "project-rename", "project-reorder", "parse", "parse-where", "mv-expand", "serialize",
}
#: Reaches tables without naming them (or rows by a computed name): nothing is pruned.
_NO_PRUNE = re.compile(r"\b(search|getschema|evaluate|invoke|find)\b|\b(table|database|cluster)\s*\("
                       r"|\bunion\b[^|;]*\*|[A-Za-z_]\*", re.IGNORECASE)
#: Reads every column of the rows in front of it: a pipeline meeting one before it is cut keeps all.
_ROW_WIDE = re.compile(r"\*|\b(pack_all|bag_pack_all)\b", re.IGNORECASE)
_STRING = re.compile(r'@?"(?:[^"\\\n]|\\.)*"|@?\'(?:[^\'\\\n]|\\.)*\'')
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _strip(kql: str) -> tuple[str, set[str]]:
    """(text with comments removed and strings blanked, every word including those in strings)."""
    text = re.sub(r"//[^\n]*", "", kql)
    words = {w.lower() for w in _WORD.findall(text)}
    return _STRING.sub('""', text), words


def _limited(text: str, start: int) -> bool:
    """Is the pipeline continuing at `start` cut down to named columns before rows leave it?"""
    depth = 0
    piped = False
    i = start
    while i < len(text):
        ch = text[i]
        if ch in "*pb" and _ROW_WIDE.match(text, i):
            return False  # `*`, pack_all(): whole rows are read before the columns are cut
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return False
        elif depth == 0 and (ch == ";" or (ch == "," and not piped)):
            return False  # the end of a `let` or a `union` argument: whole rows leave
        elif depth == 0 and ch == "|":
            piped = True
            m = re.match(r"\s*([A-Za-z][A-Za-z0-9_-]*)", text[i + 1:])
            op = m.group(1).lower() if m else ""
            if op in _TERMINAL:
                return True
            if op not in _PASS:
                return False
        i += 1
    return False


def keep_columns(queries: Iterable[str], tables: Iterable[str]) -> dict[str, set[str]]:
    """Table -> lower-case names of the columns worth loading; tables not listed keep all."""
    stripped = [_strip(q) for q in queries]
    if not stripped or any(_NO_PRUNE.search(text) for text, _ in stripped):
        return {}
    words: set[str] = set(ALWAYS)
    for _, w in stripped:
        words |= w
    out: dict[str, set[str]] = {}
    for table in tables:
        ok = True
        pattern = re.compile(rf"(?<![\w.$]){re.escape(table)}(?![\w])")
        for text, _ in stripped:
            for m in pattern.finditer(text):
                if not _limited(text, m.end()):
                    ok = False
                    break
            if not ok:
                break
        if ok:
            out[table] = words
    return out


def unread_tables(queries: Iterable[str], tables: Iterable[str]) -> set[str]:
    """Tables no query names: their rows are checked and counted, never read by a query.

    Empty when a query could reach a table without naming it (`search`, `find`, `union Device*`...).
    """
    stripped = [_strip(q) for q in queries]
    if not stripped or any(_NO_PRUNE.search(text) for text, _ in stripped):
        return set()
    named = set().union(*(words for _, words in stripped))  # words of strings too: conservative
    return {t for t in tables if t.lower() not in named}
