"""Exact rewrites of duckdb-kql's SQL that DuckDB's optimizer does not make.

duckdb-kql turns `has_any (a, b, c)` (and `has a or has b ...`) into one
`regexp_matches` per needle, OR-ed together, so RE2 reads each string once per
needle. One alternation `(?:A)|(?:B)|(?:C)` finds a match exactly when one of the
patterns does, in one pass: on the seed rule's five folder needles that is most of
the rule's cost. Flags stay per branch (`(?:(?i)A)` keeps `(?i)` inside its group)
and NULL stays NULL, so the result is the same row for row.

Only the translator's own shape is touched: a parenthesized run of calls on the
same column whose patterns are constant (string literals, `||`, `regexp_escape` of
a literal), and nothing else inside the parentheses, so operator precedence around
the run cannot change. Anything else is left as it is.
"""

from __future__ import annotations

import re

_STR = r"'(?:[^']|'')*'"
_COL = r'"(?:[^"]|"")+"'
_HAYSTACK = rf"(?:{_COL}|coalesce\({_COL} ->> '\$', ''\))"
_PATTERN = rf"{_STR}(?: \|\| (?:regexp_escape\({_STR}\)|{_STR}))*"
_CALL = rf"regexp_matches\(({_HAYSTACK}), ({_PATTERN})\)"
_CALL_RE = re.compile(_CALL)
_RUN_RE = re.compile(rf"\((?:{_CALL})(?: OR (?:{_CALL}))+\)")


def _merge(match: re.Match[str]) -> str:
    calls = _CALL_RE.findall(match.group(0))
    haystacks = {h for h, _ in calls}
    if len(haystacks) != 1:
        return match.group(0)
    branches = " || ')|(?:' || ".join(f"{p}" for _, p in calls)
    return f"(regexp_matches({calls[0][0]}, '(?:' || {branches} || ')'))"


def merge_regex_runs(sql: str) -> str:
    """`(regexp_matches(c, p1) OR regexp_matches(c, p2) ...)` -> one alternation over `c`."""
    if "regexp_matches" not in sql:
        return sql
    return _RUN_RE.sub(_merge, sql)
