"""KQL that exhunt writes for remote engines: literals, names, and a query's clock, from its parse tree.

Everything a remote backend adds to a rule's text (a window, a pinned clock, an ingested
value) is built here, so that a value taken from attacker-controlled data can only ever be a
literal: strings are escaped for KQL's double-quoted form (every character outside printable
ASCII as a `\\uXXXX` escape, so no newline, quote, backslash, `|` or control character can end
the literal or the statement), names are bracket-quoted. Where a rule is read (the tables it
names, its `now()` and `ago()` calls), it is read from duckdb-kql's parse tree, never with a
regular expression: a `//` or a table's name inside a string is not code.
"""

from __future__ import annotations

import itertools
import math
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from exhunt.errors import RuleError

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Words a bare column name may not be in KQL (a name spelled so is bracket-quoted).
_KEYWORDS = frozenset({
    "and", "or", "not", "by", "on", "in", "with", "let", "set", "true", "false", "null", "as", "of", "to", "step",
    "from", "where", "project", "extend", "datatable", "typeof", "has", "contains", "between", "kind",
})


def ident(name: str) -> str:
    """A KQL name, bracket-quoted unless it is a plain identifier."""
    if _PLAIN_NAME.match(name) and name.lower() not in _KEYWORDS:
        return name
    if any(ch in name for ch in LINE_SEPARATORS) or "\n" in name or "\r" in name:
        raise RuleError(f"the column name {name!r} cannot be written in KQL (it holds a line break)")
    return "[" + string(name) + "]"


#: Escapes every KQL engine decodes (Kusto and duckdb-kql alike), besides quote and backslash.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Characters Kusto's lexer takes as a line break even inside a string literal, and for which
#: no escape is decoded the same way everywhere: a literal cannot hold them (see `string`).
LINE_SEPARATORS = "\u2028\u2029"


class Unquotable(ValueError):
    """The text holds a character no KQL string literal can carry (see LINE_SEPARATORS)."""


def string(value: str, separators: bool = False) -> str:
    """A double-quoted KQL string literal holding exactly `value`.

    A quote, a backslash, a newline, a carriage return and a tab are escaped; every other
    character stands for itself (what Microsoft's own Kusto.Language writes, and what every
    engine reads back unchanged), so nothing in `value` can end the literal or the statement.
    A value holding U+2028 or U+2029 raises Unquotable: Kusto would end the line there (unless
    `separators`, for duckdb-kql's endpoint, whose lexer keeps them inside a literal).
    """
    if not separators and any(ch in value for ch in LINE_SEPARATORS):
        raise Unquotable("text holds a Unicode line or paragraph separator")
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        else:
            out.append(_NAMED.get(ch, ch))
    out.append('"')
    return "".join(out)


def naive_utc(value: datetime) -> datetime:
    """`value` as a naive UTC datetime (KQL's datetimes are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def datetime_literal(value: datetime) -> str:
    """`datetime(...)` for `value`, to the microsecond."""
    return f"datetime({naive_utc(value).strftime('%Y-%m-%dT%H:%M:%S.%f')}Z)"


def timespan_literal(value: timedelta) -> str:
    """`time([-]d.hh:mm:ss.ffffff)` for `value`, exact to the microsecond."""
    micros = value // timedelta(microseconds=1)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    seconds, micros = divmod(micros, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"time({sign}{days}.{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d})"


def value_literal(value: Any, kql_type: str, separators: bool = False) -> str:
    """A KQL literal of type `kql_type` holding `value` (None: a typed null), as `datatable` takes
    it. A dynamic value is given as its JSON text, a string (see exhunt.backends.kusto_ingest)."""
    kind = kql_type.lower()
    if value is None:
        return '""' if kind in ("string", "dynamic") else f"{kind}(null)"
    if kind in ("string", "dynamic"):
        return string(str(value), separators)
    if kind == "bool":
        return "true" if value else "false"
    if kind in ("long", "int"):
        return f"{kind}({int(value)})"
    if kind in ("real", "double"):
        number = float(value)
        if math.isnan(number):
            return "real(nan)"
        if math.isinf(number):
            return "real(+inf)" if number > 0 else "real(-inf)"
        return f"real({number!r})"
    if kind == "datetime":
        if isinstance(value, str):
            raise RuleError(f"a datetime value arrived as text ({value[:40]!r}); exhunt stores datetimes typed")
        return datetime_literal(value)
    if kind == "timespan":
        return timespan_literal(value)
    if kind == "guid":
        return f"guid({uuid.UUID(str(value))})"  # a value that is no GUID raises ValueError
    raise RuleError(f"no KQL literal for type {kql_type!r}")


# -- reading a query -------------------------------------------------------------------------


def _parse(kql: str) -> Any:
    """The query's parse tree, or a RuleError saying where it does not parse."""
    import duckdb_kql

    try:
        return duckdb_kql.parse(kql).tree
    except duckdb_kql.KqlError as exc:
        raise RuleError(f"the query is not valid KQL: {exc}") from None
    except RecursionError:
        raise RuleError("the query is nested too deeply to read") from None


def _kind(node: Any) -> str:
    name = type(node).__name__
    return name[:-7] if name.endswith("Context") else ""


def _walk(node: Any) -> Iterator[Any]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(getattr(n, "children", None) or [])))


#: Nodes naming a table, column or `let` (a name in `union A, B` is an EntityName).
_NAMES = frozenset({"SimpleNameReference", "EntityName"})


def tables_named(kql: str, known: list[str]) -> list[str]:
    """The tables of `known` the query reads (names nothing in it binds: exhunt.kql.tree), in
    `known`'s order."""
    from exhunt.kql import tree

    names = set(tree.tables(kql))
    return [t for t in known if t in names]


def _call_name(call: Any) -> Any:
    return call.children[0]


def _clock_calls(tree: Any) -> list[tuple[str, int, int, list[tuple[int, int]]]]:
    """(function, start, stop, argument spans) of each now() and ago() call, by position."""
    calls = []
    for n in _walk(tree):
        if _kind(n) != "NamedFunctionCallExpression":
            continue
        name = str(_call_name(n).getText())
        if name not in ("now", "ago"):
            continue
        args = [(k.start.start, k.stop.stop) for k in n.children[1:] if _kind(k) == "ArgumentExpression"]
        calls.append((name, n.start.start, n.stop.stop, args))
    return sorted(calls, key=lambda c: c[1])


def uses_clock(kql: str) -> bool:
    """Whether the query reads the clock (now() or ago())."""
    tree = _parse(kql)
    return tree is not None and bool(_clock_calls(tree))


def pin_clock(kql: str, moment: datetime | str) -> str:
    """`kql` with every now() and ago() replaced by arithmetic on a `datetime(...)` literal.

    now() -> datetime(T), now(d) -> (datetime(T) + (d)), ago(d) -> (datetime(T) - (d)): what
    the engine's clock would give with now() at T (`moment` may also be a KQL expression, such
    as a column holding each row's time). Edits are made at the positions the parse
    tree gives, so text inside strings and comments is never touched.
    """
    tree = _parse(kql)
    if tree is None:
        return kql
    calls = _clock_calls(tree)
    for (_, _, stop, _), (_, start, _, _) in itertools.pairwise(calls):
        if start <= stop:
            raise RuleError("now() or ago() inside another now() or ago() call cannot be pinned to a time")
    at = datetime_literal(moment) if isinstance(moment, datetime) else moment
    out, pos = [], 0
    for name, start, stop, args in calls:
        out.append(kql[pos:start])
        arg = kql[args[0][0]:args[0][1] + 1] if args else None
        if name == "now":
            out.append(at if arg is None else f"({at} + ({arg}))")
        else:
            if arg is None:
                raise RuleError("ago() needs a timespan argument")
            out.append(f"({at} - ({arg}))")
        pos = stop + 1
    out.append(kql[pos:])
    return "".join(out)


# -- one rule, many windows -----------------------------------------------------------------


class Template:
    """A rule's text split at the places that change from one replay run to another: the names
    of its `let`s and the tables it reads (renamed per run, so that many runs can be statements
    of one query), and its now() and ago() calls (pinned per run).

    `statements` are the rule's `let` statements and `body` its final query, each a list of
    text pieces and edits; `render` fills them in for one run.
    """

    def __init__(self, lets: list[list[Any]], body: list[Any], names: set[str]) -> None:
        self.lets, self.body, self.names = lets, body, names

    @staticmethod
    def _fill(parts: list[Any], suffix: str, at: str) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif part[0] == "name":
                out.append(part[1] + suffix)
            elif part[0] == "now":
                arg = None if part[1] is None else part[1].replace("{suffix}", suffix)
                out.append(at if arg is None else f"({at} + ({arg}))")
            else:  # ago
                out.append(f"({at} - ({part[1].replace('{suffix}', suffix)}))")
        return "".join(out)

    def render(self, suffix: str, moment: datetime) -> tuple[list[str], str]:
        """The run's `let` statements (without `;`) and its final query, names ending in `suffix`."""
        at = datetime_literal(moment)
        return [self._fill(s, suffix, at) for s in self.lets], self._fill(self.body, suffix, at)


def template(kql: str, tables: list[str], columns: set[str]) -> Template | None:
    """The rule as a Template, renaming its `let`s and the `tables` it reads; None when that
    cannot be done exactly: a statement other than `let` before the query, a `let` name that is
    also a column (of `columns`, or one the rule makes), escaped names, nested clock calls."""
    tree = _parse(kql)
    if tree is None:
        return None
    query = next((n for n in _walk(tree) if _kind(n) == "Query"), None)
    if query is None:
        return None
    statements = [k for k in (query.children or []) if _kind(k) == "Statement"]
    if not statements:
        return None
    lets: set[str] = set()
    for st in statements[:-1]:
        decl = st.children[0].children[0] if _kind(st.children[0]) == "LetStatement" else None
        if decl is None or _kind(decl.children[1]) != "IdentifierOrKeywordOrEscapedName":
            return None
        name = decl.children[1]
        if any(_kind(n) == "EscapedName" for n in _walk(name)):
            return None
        lets.add(str(name.getText()))
    made = {str(n.children[0].getText()) for n in _walk(tree) if _kind(n) == "NamedExpressionNameClause"}
    if lets & (columns | made):
        return None
    renamed = lets | set(tables)
    names: list[tuple[int, int, Any]] = []
    for n in _walk(tree):
        kind = _kind(n)
        if kind in _NAMES and str(n.getText()) in renamed:
            names.append((n.start.start, n.stop.stop, ("name", str(n.getText()))))
        elif kind.startswith("Let") and kind.endswith("Declaration"):
            name = n.children[1]
            names.append((name.start.start, name.stop.stop, ("name", str(name.getText()))))
    names.sort(key=lambda e: e[0])

    def pieces(start: int, stop: int, edits: list[tuple[int, int, Any]]) -> list[Any]:
        out: list[Any] = []
        pos = start
        for a, b, edit in edits:
            if a < start or b > stop:
                continue
            out.append(kql[pos:a])
            out.append(edit)
            pos = b + 1
        out.append(kql[pos:stop + 1])
        return out

    calls = _clock_calls(tree)
    for (_, _, stop, _), (_, start, _, _) in itertools.pairwise(calls):
        if start <= stop:
            return None  # a clock call inside another
    edits: list[tuple[int, int, Any]] = []
    for name, start, stop, args in calls:
        if name == "ago" and not args:
            return None
        arg = "".join(Template._fill(pieces(args[0][0], args[0][1], names), "{suffix}", "")) if args else None
        edits.append((start, stop, (name, arg)))
    edits += [e for e in names if not any(c[1] <= e[0] and e[1] <= c[2] for c in calls)]
    edits.sort(key=lambda e: e[0])
    let_parts = [pieces(st.start.start, st.stop.stop, edits) for st in statements[:-1]]
    body = statements[-1]
    return Template(let_parts, pieces(body.start.start, body.stop.stop, edits), renamed)
