"""Exact rewrites of duckdb-kql's SQL that DuckDB's optimizer does not make.

Two of them, both changing how the SQL is written, never what it computes:

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

duckdb-kql writes every `tostring(x)` (and each implicit one: `strcat`, `tolower`,
`=~`, `has`...) as a 900-character CASE on `typeof(x)` with `x` eight times and a
lambda: binding those is most of what planning a rule costs (the cmdlet rule has
200 of them in 277 KB of SQL; 0.5-1 s to plan, on any data). The same CASE
defined once as a DuckDB macro, `TOSTRING(x)`, is expanded by DuckDB into exactly
that expression, but parsed once and bound at about half the cost. Only the
translator's own text is replaced, and only where `x` is a column name, a string
literal, a function call or a CASE ... END, so `x ->> '$'` means what it meant inline.
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


#: duckdb-kql's text for tostring(x), `@` standing for x.
_TOSTRING = (
    "CASE typeof(@) WHEN 'JSON' THEN @ ->> '$' WHEN 'BOOLEAN' THEN CASE CAST(@ AS VARCHAR) WHEN 'true' "
    "THEN 'True' WHEN 'false' THEN 'False' END WHEN 'TIMESTAMP' THEN (strftime(CAST(@ AS TIMESTAMP), "
    "'%Y-%m-%dT%H:%M:%S.%f') || '0Z') WHEN 'INTERVAL' THEN list_transform([epoch_us(CAST(@ AS INTERVAL))], "
    "lambda _us: CASE WHEN _us < 0 THEN '-' ELSE '' END || CASE WHEN abs(_us) >= 86400000000 THEN "
    "CAST(abs(_us) // 86400000000 AS VARCHAR) || '.' ELSE '' END || lpad(CAST(abs(_us) // 3600000000 % 24 "
    "AS VARCHAR), 2, '0') || ':' || lpad(CAST(abs(_us) // 60000000 % 60 AS VARCHAR), 2, '0') || ':' || "
    "lpad(CAST(abs(_us) // 1000000 % 60 AS VARCHAR), 2, '0') || CASE WHEN abs(_us) % 1000000 <> 0 THEN '.' || "
    "lpad(CAST(abs(_us) % 1000000 AS VARCHAR), 6, '0') || '0' ELSE '' END)[1] WHEN 'DOUBLE' THEN CASE "
    "CAST(@ AS VARCHAR) WHEN 'nan' THEN 'NaN' WHEN '-nan' THEN 'NaN' ELSE CAST(@ AS VARCHAR) END ELSE "
    "CAST(@ AS VARCHAR) END"
)
TOSTRING = "_exhunt_tostring"
#: Run once per connection before any rewritten SQL (a temporary macro: nothing is stored).
MACROS = [f"CREATE OR REPLACE TEMP MACRO {TOSTRING}(_exhunt_v) AS {_TOSTRING.replace('@', '_exhunt_v')}"]
_HEAD = "CASE typeof("
_ATOM = re.compile(rf"{_COL}|{_STR}|[A-Za-z_][A-Za-z0-9_]*\(")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _quote_end(sql: str, i: int) -> int:
    """Index of the quote closing the one at `sql[i]` (a doubled quote is part of the text), or -1."""
    ch = sql[i]
    j = sql.find(ch, i + 1)
    while j != -1 and sql.startswith(ch, j + 1):
        j = sql.find(ch, j + 2)
    return j


def _paren_end(sql: str, i: int) -> int:
    """Index just past the parenthesis closing the one at `sql[i]` (quotes skipped), or -1."""
    depth = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            i = _quote_end(sql, i)
            if i == -1:
                return -1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def _case_end(sql: str) -> int:
    """Index just past the END closing the CASE that `sql` starts with (quotes skipped), or -1."""
    depth = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            i = _quote_end(sql, i)
            if i == -1:
                return -1
            i += 1
            continue
        m = _WORD.match(sql, i)
        if m is None:
            i += 1
            continue
        word = m.group(0).upper()
        if word == "CASE":
            depth += 1
        elif word == "END":
            depth -= 1
            if depth == 0:
                return m.end()
        i = m.end()
    return -1


def _atomic(expr: str) -> bool:
    """A column name, a string literal, one function call or one CASE ... END: an operand
    that the operators around it cannot split."""
    if expr.startswith("CASE "):
        return _case_end(expr) == len(expr)
    m = _ATOM.match(expr)
    if m is None:
        return False
    if m.group(0).endswith("("):
        return _paren_end(expr, m.end() - 1) == len(expr)
    return m.end() == len(expr)


def use_tostring_macro(sql: str) -> str:
    """Each tostring CASE over an atomic operand -> `TOSTRING(operand)` (see MACROS)."""
    if _HEAD not in sql:
        return sql
    out = []
    pos = 0
    start = sql.find(_HEAD)
    while start != -1:
        close = _paren_end(sql, start + len(_HEAD) - 1)
        if close == -1:
            break
        arg = sql[start + len(_HEAD):close - 1]
        whole = _TOSTRING.replace("@", arg)
        if _atomic(arg) and sql.startswith(whole, start):
            out.append(sql[pos:start])
            out.append(f"{TOSTRING}({use_tostring_macro(arg)})")
            pos = start + len(whole)
            start = sql.find(_HEAD, pos)
        else:
            start = sql.find(_HEAD, start + 1)
    out.append(sql[pos:])
    return "".join(out)
