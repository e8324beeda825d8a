"""Static column check: the columns a query names, against the tables it reads.

A small KQL reader, not a parser: the query is split into statements and
pipelines, and each pipeline that starts at a table (or at a `let` built from
one) is walked operator by operator, keeping the set of columns available.
Every bare identifier an operator uses must be in that set. Operators whose
output columns this reader does not model (join, parse, mv-expand, ...) end
the walk for that pipeline, so the check never guesses; the runtime check
(the query run on empty tables) still covers the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<comment>//[^\n]*)
    |(?P<string>[@hH]?(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
    |(?P<op>project-away|project-rename|project-keep|project-reorder|mv-expand|mv-apply|parse-where|parse-kv|
       make-series|top-nested|top-hitters)\b
    |(?P<number>\d+(?:\.\d+)?[A-Za-z]*)
    |(?P<ident>\$?[A-Za-z_][\w]*)
    |(?P<punct>!in~|!in|in~|=~|!~|==|!=|<=|>=|\.\.|[^\s\w])""",
    re.VERBOSE,
)
_VERBATIM = re.compile(r'@(?:"(?:[^"]|"")*"|\'(?:[^\']|\'\')*\')')

#: Words that are operators or keywords inside expressions, never columns.
_WORDS = {
    "and", "or", "not", "in", "has", "has_any", "has_all", "has_cs", "hasprefix", "hassuffix", "hasprefix_cs",
    "hassuffix_cs", "contains", "contains_cs", "notcontains", "startswith", "startswith_cs", "endswith",
    "endswith_cs", "matches", "regex", "between", "like", "by", "asc", "desc", "nulls", "first", "last", "true",
    "false", "null", "kind", "on", "with", "isfuzzy", "withsource", "typeof", "to", "of", "step", "from",
}
#: Calls whose arguments are literals, not expressions over columns.
_LITERAL_CALLS = {"datetime", "timespan", "dynamic", "typeof", "time", "guid", "todatetime_literal"}
#: Operators after which the output columns are not modelled here.
_OPAQUE = {
    "join", "lookup", "union", "mv-expand", "mv-apply", "parse", "parse-where", "parse-kv", "evaluate", "as",
    "invoke", "make-series", "top-nested", "top-hitters", "render", "fork", "facet", "scan", "partition",
    "serialize", "getschema", "sample", "sample-distinct", "reduce", "search", "find", "project-reorder",
    "project-keep", "consume", "externaldata",
}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str


def tokenize(kql: str) -> list[Tok]:
    out: list[Tok] = []
    pos = 0
    while pos < len(kql):
        m = _VERBATIM.match(kql, pos)
        if m:
            out.append(Tok("string", m.group(0)))
            pos = m.end()
            continue
        m = _TOKEN.match(kql, pos)
        if m is None:  # pragma: no cover - the punct branch matches any single character
            pos += 1
            continue
        kind = m.lastgroup or "punct"
        if kind not in ("ws", "comment"):
            out.append(Tok("ident" if kind == "op" else kind, m.group(0)))
        pos = m.end()
    return out


def _split(tokens: list[Tok], sep: str | set[str]) -> list[list[Tok]]:
    """Split at top level (outside brackets) on a separator token text."""
    seps = {sep} if isinstance(sep, str) else sep
    parts: list[list[Tok]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "punct" and t.text in "([{":
            depth += 1
        elif t.kind == "punct" and t.text in ")]}":
            depth -= 1
        if depth == 0 and t.kind in ("punct", "ident") and t.text in seps:
            parts.append([])
            continue
        parts[-1].append(t)
    return [p for p in parts if p]


def _groups(tokens: list[Tok]) -> list[list[Tok]]:
    """The contents of every top-level parenthesized group."""
    out: list[list[Tok]] = []
    depth = 0
    start = 0
    for i, t in enumerate(tokens):
        if t.kind == "punct" and t.text == "(":
            if depth == 0:
                start = i + 1
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
            if depth == 0:
                out.append(tokens[start:i])
    return out


def _refs(tokens: list[Tok], scalars: set[str]) -> list[str]:
    """Bare identifiers an expression uses as columns."""
    refs: list[str] = []
    skip_depth = 0
    depth = 0
    for i, t in enumerate(tokens):
        if t.kind == "punct" and t.text in "([":
            depth += 1
            continue
        if t.kind == "punct" and t.text in ")]":
            depth -= 1
            if skip_depth and depth < skip_depth:
                skip_depth = 0
            continue
        if skip_depth or t.kind != "ident":
            continue
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        prev = tokens[i - 1] if i > 0 else None
        if nxt is not None and nxt.kind == "punct" and nxt.text == "(":
            if t.text.lower() in _LITERAL_CALLS:
                skip_depth = depth + 1
            continue
        if prev is not None and prev.kind == "punct" and prev.text == ".":
            continue
        if t.text.startswith("$") or t.text in _WORDS or t.text.lower() in _WORDS or t.text in scalars:
            continue
        refs.append(t.text)
    return refs


def _assignment(item: list[Tok]) -> tuple[str | None, list[Tok]]:
    """`Name = expr` -> (Name, expr); anything else -> (None, item)."""
    if len(item) >= 2 and item[0].kind == "ident" and item[1].kind == "punct" and item[1].text == "=":
        return item[0].text, item[2:]
    return None, item


@dataclass
class Problem:
    column: str
    source: str
    operator: str

    def __str__(self) -> str:
        return (f"column {self.column!r} does not exist in {self.source} where `{self.operator}` uses it "
                f"(static check of the query text)")


class Checker:
    def __init__(self, tables: Mapping[str, Iterable[str]]) -> None:
        self.tables = {name: set(cols) for name, cols in tables.items()}
        self.lets: dict[str, set[str] | None] = {}
        self.scalars: set[str] = set()
        self.problems: list[Problem] = []

    def run(self, kql: str) -> list[Problem]:
        for stmt in _split(tokenize(kql), ";"):
            if stmt[0].kind == "ident" and stmt[0].text == "let" and len(stmt) >= 3:
                name = stmt[1].text
                body = stmt[3:] if len(stmt) > 3 and stmt[2].text == "=" else []
                if body and body[0].kind == "punct" and body[0].text == "(":
                    self.scalars.add(name)  # a let function
                    continue
                cols = self.pipeline(body) if body else None
                if cols is None and not self._is_tabular(body):
                    self.scalars.add(name)
                else:
                    self.lets[name] = cols
                continue
            if stmt[0].kind == "ident" and stmt[0].text in ("set", "declare", "alias", "pattern"):
                continue
            self.pipeline(stmt)
        return self.problems

    def _is_tabular(self, body: list[Tok]) -> bool:
        return bool(body) and body[0].kind == "ident" and (
            body[0].text in self.tables or body[0].text in self.lets
            or body[0].text in ("union", "datatable", "range", "print", "materialize", "view"))

    def _source(self, seg: list[Tok]) -> tuple[set[str] | None, str]:
        if len(seg) == 1 and seg[0].kind == "ident":
            name = seg[0].text
            if name in self.tables:
                return set(self.tables[name]), name
            if name in self.lets:
                cols = self.lets[name]
                return (set(cols) if cols is not None else None), name
            return None, name
        if seg and seg[0].text == "union":
            legs = [t for t in _split(seg[1:], ",") if t]
            union_cols: set[str] = set()
            names = []
            for leg in legs:
                if len(leg) == 1 and leg[0].kind == "ident" and leg[0].text not in ("isfuzzy", "kind"):
                    sub, name = self._source(leg)
                    if sub is None:
                        return None, "union"
                    union_cols |= sub
                    names.append(name)
                elif leg and leg[0].text in ("isfuzzy", "kind", "withsource"):
                    continue
                else:
                    self.pipeline(leg[1:-1] if leg[0].text == "(" else leg)
                    return None, "union"
            return union_cols, "union of " + ", ".join(names)
        return None, ""

    def pipeline(self, tokens: list[Tok]) -> set[str] | None:
        """Walk one pipeline; the columns it ends with (None when not modelled)."""
        segs = _split(tokens, "|")
        if not segs:
            return None
        cols, source = self._source(segs[0])
        for seg in segs[1:]:
            for group in _groups(seg):  # sub-queries, e.g. join (Table | project ...)
                if group and group[0].kind == "ident" and (group[0].text in self.tables or group[0].text in self.lets):
                    self.pipeline(group)
            if cols is None:
                continue
            cols = self.operator(seg, cols, source)
        return cols

    def _check(self, names: Iterable[str], cols: set[str], source: str, op: str) -> None:
        for name in names:
            if name not in cols and not any(p.column == name and p.source == source for p in self.problems):
                self.problems.append(Problem(name, source, op))

    def operator(self, seg: list[Tok], cols: set[str], source: str) -> set[str] | None:
        op = seg[0].text
        rest = seg[1:]
        if op in ("where", "filter"):
            self._check(_refs(rest, self.scalars), cols, source, op)
            return cols
        if op == "extend":
            out = set(cols)
            for item in _split(rest, ","):
                name, expr = _assignment(item)
                if item[0].text == "(":
                    return None
                self._check(_refs(expr, self.scalars), out, source, op)
                if name:
                    out.add(name)
            return out
        if op == "project":
            out = set()
            for item in _split(rest, ","):
                name, expr = _assignment(item)
                self._check(_refs(expr, self.scalars), cols, source, op)
                if name:
                    out.add(name)
                elif len(expr) == 1 and expr[0].kind == "ident":
                    out.add(expr[0].text)
                else:
                    return None
            return out
        if op == "project-away":
            names = [t.text for t in rest if t.kind == "ident"]
            if any(t.text == "*" for t in rest):
                return None
            self._check(names, cols, source, op)
            return cols - set(names)
        if op == "project-rename":
            out = set(cols)
            for item in _split(rest, ","):
                name, expr = _assignment(item)
                if name is None or len(expr) != 1:
                    return None
                self._check([expr[0].text], cols, source, op)
                out.discard(expr[0].text)
                out.add(name)
            return out
        if op in ("sort", "order", "top"):
            self._check(_refs(rest, self.scalars), cols, source, op)
            return cols
        if op in ("take", "limit"):
            return cols
        if op == "count":
            return {"Count"}
        if op == "distinct":
            if any(t.text == "*" for t in rest):
                return cols
            out = set()
            for item in _split(rest, ","):
                self._check(_refs(item, self.scalars), cols, source, op)
                if len(item) == 1 and item[0].kind == "ident":
                    out.add(item[0].text)
                else:
                    return None
            return out
        if op == "summarize":
            return self._summarize(rest, cols, source)
        return None

    def _summarize(self, rest: list[Tok], cols: set[str], source: str) -> set[str] | None:
        parts = _split(rest, "by")
        aggs, by = (parts[0], parts[1]) if len(parts) == 2 else ((parts[0], []) if parts else ([], []))
        if rest and rest[0].text == "by":
            aggs, by = [], parts[0] if parts else []
        out: set[str] = set()
        known = True
        for item in _split(by, ","):
            name, expr = _assignment(item)
            self._check(_refs(expr, self.scalars), cols, source, "summarize")
            idents = [t.text for t in expr if t.kind == "ident" and t.text in cols]
            if name:
                out.add(name)
            elif len(expr) == 1 and expr[0].kind == "ident":
                out.add(expr[0].text)
            elif expr and expr[0].text == "bin" and idents:
                out.add(idents[0])
            else:
                known = False
        for item in _split(aggs, ","):
            name, expr = _assignment(item)
            self._check(_refs(expr, self.scalars), cols, source, "summarize")
            fn = expr[0].text.lower() if expr else ""
            if fn in ("arg_max", "arg_min") and not name:
                args = _groups(expr)[0] if _groups(expr) else []
                for arg in _split(args, ","):
                    if len(arg) == 1 and arg[0].text == "*":
                        out |= cols
                    elif len(arg) == 1 and arg[0].kind == "ident":
                        out.add(arg[0].text)
                    elif _assignment(arg)[0]:
                        out.add(str(_assignment(arg)[0]))
                    else:
                        known = False
            elif name:
                out.add(name)
            elif fn == "count" and len(expr) == 3:
                out.add("count_")
            else:
                known = False
        return out if known else None


def check(kql: str, tables: Mapping[str, Iterable[str]]) -> list[Problem]:
    """Problems (unknown columns) the query text shows, against the given table schemas."""
    return Checker(tables).run(kql)
