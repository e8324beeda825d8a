"""What a KQL query names and does, read from duckdb-kql's parse tree.

Regular expressions over the query text got KQL wrong: a verbatim string `@"\\x\\"` ends at
its second quote (a backslash escapes nothing in it), `//` inside a string is not a comment,
and a table name inside a string is not a table. The grammar duckdb-kql parses with
(Microsoft's Kql.g4, through ANTLR) knows all of that, so every answer here comes from its tree:

- `tables(kql)`: the names the query reads that no `let`, function parameter or query
  parameter binds where they are read, in order of appearance. Its tables are among them
  (and its columns: a caller keeps the names it knows as tables);
- `columns_read(kql, tables)`: per table, the names of the columns the query can read, or
  None when whole rows of it leave the query;
- `rowwise(kql, tables)`: is each row judged on its own (Sentinel's schedule then only
  needs each row seen once);
- `operators(kql)`, `functions(kql)`: the tabular operators and the functions it uses.

Parsing is pure-Python ANTLR (10-300 ms a rule), so a query's facts are computed once per
text and process, and kept between runs in the signed translation cache (`kqlcache`): a run
whose rules were seen before parses nothing. A query that does not parse gets facts that
claim nothing: no tables, not row by row, no column can be left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from exhunt import kqlcache

#: Operators that judge each row on its own, never looking at another row. Any other one
#: (summarize, join, take, top, distinct, count, serialize, scan, evaluate, ...) makes the
#: answer depend on which rows a run sees.
ROW_BY_ROW = frozenset({
    "where", "extend", "project", "project-away", "project-keep", "project-rename", "project-reorder",
    "parse", "parse-where", "parse-kv", "mv-expand", "mv-apply", "union", "sort", "as", "render", "search",
    "find",
})
#: Functions that read other rows: aggregations, window functions, sub-queries.
MANY_ROWS = frozenset({
    "toscalar", "totable", "materialize", "arg_max", "arg_min", "avg", "avgif", "any", "anyif", "binary_all_and",
    "binary_all_or", "binary_all_xor", "buildschema", "count", "count_distinct", "count_distinctif", "countif",
    "dcount", "dcountif", "hll", "hll_if", "hll_merge", "make_bag", "make_bag_if", "make_list", "make_list_if",
    "make_list_with_nulls", "make_set", "make_set_if", "max", "maxif", "min", "minif", "percentile", "percentiles",
    "percentiles_array", "percentilew", "percentilesw", "stdev", "stdevif", "stdevp", "sum", "sumif", "take_any",
    "take_anyif", "tdigest", "tdigest_merge", "merge_tdigest", "variance", "varianceif", "variancep", "next", "prev",
    "row_number", "row_cumsum", "row_rank_dense", "row_rank_min", "row_window_session",
    # deprecated names kql.compat rewrites into the above
    "makeset", "makelist", "argmax", "argmin", "make_dictionary", "makeset_if", "makelist_if",
})
#: Operators and functions that reach tables without naming them, or rows by a computed name.
REACHES_UNNAMED = frozenset({
    "search", "find", "evaluate", "invoke", "getschema", "macro-expand", "table", "database", "cluster",
    "external_table", "materialized_view", "materialized-view-combine",
})
#: Operators after which only the columns they name leave the pipeline.
_CUTS = frozenset({
    "project", "summarize", "count", "distinct", "make-series", "top-nested", "top-hitters", "sample-distinct",
    "reduce", "project-keep",
})
#: Operators that pass every column of their input rows on by name.
_PASSES = frozenset({
    "where", "extend", "sort", "top", "take", "sample", "join", "lookup", "union", "project-rename",
    "project-reorder", "parse", "parse-where", "parse-kv", "mv-expand", "serialize", "render",
})
#: Calls that read every column of a row.
_ROW_WIDE_CALLS = frozenset({"pack_all", "bag_pack_all"})
#: Calls whose first argument is a column's name as a string.
_COLUMN_BY_NAME = frozenset({"column_ifexists", "columnifexists"})
#: Where a `*` is not "every column": multiplication, and a wildcard in a `parse` pattern.
_STAR_NOT_COLUMNS = frozenset({"MultiplicativeOperation", "ParseOperatorPatternSegment"})
#: Rule classes ending in "Operator" that are not KQL operators.
_NOT_OPERATORS = frozenset({
    "PipedOperator", "AfterPipeOperator", "BeforeOrAfterPipeOperator", "ForkPipeOperator", "StringBinaryOperator",
    "EntityPathOrElementOperator", "EntityPathOperator", "EntityElementOperator",
    "LegacyEntityPathElementOperator", "ForkOperatorPipedOperator", "ContextualPipeExpressionPipedOperator",
})
#: Spellings of one operator.
_SAME = {"filter": "where", "order": "sort", "limit": "take"}
#: Tabular expressions other than a pipeline or a name.
_TABULAR = frozenset({
    "UnionOperator", "ExternalDataExpression", "DataTableExpression", "ContextualDataTableExpression",
    "PrintOperator", "SearchOperator", "FindOperator", "ToTableExpression", "RangeExpression",
    "MacroExpandOperator",
})
_DECLARATIONS = frozenset({
    "LetVariableDeclaration", "LetMaterializeDeclaration", "LetViewDeclaration", "LetFunctionDeclaration",
})
_NAMES = frozenset({"SimpleNameReference", "EntityName"})
#: A name bound by a function parameter or a query parameter (a scalar, never a table).
_PARAMETER = "parameter"


@dataclass(frozen=True)
class Facts:
    """What a query names and does; plain values, so they can be cached as JSON."""

    parsed: bool = False
    #: Names read that nothing in the query binds, in order (tables and columns among them).
    tables: tuple[str, ...] = ()
    #: Lower-case: every name the query uses, and the column names it passes as strings.
    names: frozenset[str] = frozenset()
    operators: frozenset[str] = frozenset()
    functions: frozenset[str] = frozenset()
    #: Lower-case unbound names whose rows may leave the query with all their columns.
    whole_rows: frozenset[str] = frozenset()
    #: Lower-case unbound names read inside an expression (columns; or a table as a sub-query).
    in_expressions: frozenset[str] = frozenset()
    #: A pipeline or tabular `let` read inside an expression (`in (T | ...)`).
    subquery: bool = False
    #: The query may reach a table without naming it (search, find, table(), `union T*`...).
    unnamed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {k: sorted(v) if isinstance(v, frozenset) else list(v) if isinstance(v, tuple) else v
                for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, doc: Any) -> Facts | None:
        """Facts from `to_json`'s output, or None when it is not that shape."""
        try:
            out = cls(
                parsed=bool(doc["parsed"]), tables=tuple(map(str, doc["tables"])),
                names=frozenset(map(str, doc["names"])), operators=frozenset(map(str, doc["operators"])),
                functions=frozenset(map(str, doc["functions"])), whole_rows=frozenset(map(str, doc["whole_rows"])),
                in_expressions=frozenset(map(str, doc["in_expressions"])), subquery=bool(doc["subquery"]),
                unnamed=bool(doc["unnamed"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return out if out.to_json() == doc else None


# -- the tree -----------------------------------------------------------------------------


def node_kind(node: Any) -> str:
    """The grammar rule of a node ("" for a token)."""
    name = type(node).__name__
    return name[:-7] if name.endswith("Context") else ""


def _children(node: Any) -> list[Any]:
    return list(getattr(node, "children", None) or [])


def walk(node: Any) -> Iterator[Any]:
    """Every node under `node` (itself included), depth first."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(_children(n)))


def _string(text: str) -> str:
    """The value of one KQL string literal token: verbatim, obfuscated, multi-line or escaped."""
    if text[:1] in ("h", "H"):
        text = text[1:]
    if text[:3] in ("```", "~~~"):
        return text[3:-3]
    if text.startswith("@"):
        quote = text[1]
        return text[2:-1].replace(quote * 2, quote)
    body, out, i = text[1:-1], [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in escapes:
            out.append(escapes[body[i + 1]])
            i += 2
            continue
        out.append(body[i])
        i += 1
    return "".join(out)


def _literal(node: Any) -> str | None:
    """The value of a string literal expression (adjacent literals are one string), else None."""
    while node_kind(node) != "StringLiteralExpression":
        kids = _children(node)
        if len(kids) != 1:
            return None
        node = kids[0]
    return "".join(_string(t.getText()) for t in _children(node))


def name_of(node: Any) -> str:
    """The name a name node spells (`['a b']` and `[@"a b"]` are `a b`)."""
    for n in walk(node):
        if node_kind(n) == "EscapedName":
            return "".join(_literal(k) or "" for k in _children(n) if node_kind(k) == "StringLiteralExpression")
    return str(node.getText())


def _core(node: Any) -> Any:
    """The node an expression comes down to, through wrappers and parentheses."""
    while True:
        kids = _children(node)
        if node_kind(node) == "ParenthesizedExpression":
            node = next(k for k in kids if node_kind(k))
        elif len(kids) == 1 and node_kind(kids[0]) and node_kind(node) not in _NAMES:
            node = kids[0]
        else:
            return node


def operator_name(node: Any) -> str | None:
    """The KQL spelling of an operator node (`make-series`, `where` for `filter`), else None."""
    kind = node_kind(node)
    if not kind.endswith("Operator") or kind in _NOT_OPERATORS:
        return None
    first = _children(node)[0] if _children(node) else None
    word = str(first.getText()).lower() if first is not None and not node_kind(first) else kind[:-8].lower()
    return _SAME.get(word, word)


def call_name(node: Any) -> str:
    """The lower-case name a NamedFunctionCallExpression calls."""
    return name_of(_children(node)[0]).lower()


class _Reader:
    """One walk over a parse tree: its names and what binds each, its operators and functions."""

    def __init__(self) -> None:
        #: (node, name, the declaration binding it, _PARAMETER, or None when unbound)
        self.refs: list[tuple[Any, str, Any]] = []
        self.operators: set[str] = set()
        self.functions: set[str] = set()
        self.names: set[str] = set()
        self.pipelines: list[Any] = []
        self.wildcard_source = False
        self.values: dict[int, Any] = {}  # id(declaration) -> its value (or body)
        self.calls: list[tuple[Any, Any]] = []  # (call, the let function it calls)

    # The walk: `scope` maps a bound name to its declaration; statements add to it in order.
    def read(self, node: Any, scope: dict[str, Any]) -> None:
        kind = node_kind(node)
        if not kind:
            self._token(node)
            return
        handler = getattr(self, "_" + kind, None)
        if handler is not None and handler(node, scope):
            return
        name = operator_name(node)
        if name:
            self.operators.add(name)
        for child in _children(node):
            self.read(child, scope)

    def _token(self, node: Any) -> None:
        text = str(node.getText())
        if node_kind(node.parentCtx) != "StringLiteralExpression" and text.lstrip("$").isidentifier():
            self.names.add(text.lower())

    def _declare(self, node: Any, scope: dict[str, Any], value: Any, inner: dict[str, Any]) -> bool:
        """A `let`: its value is read where it stands, then its name binds what follows."""
        self.values[id(node)] = value
        self.read(value, inner)
        name_node = next(k for k in _children(node) if node_kind(k).startswith("Identifier"))
        self.names.add(name_of(name_node).lower())
        scope[name_of(name_node)] = node
        return True

    def _LetVariableDeclaration(self, node: Any, scope: dict[str, Any]) -> bool:
        return self._declare(node, scope, _children(node)[-1], scope)

    def _LetMaterializeDeclaration(self, node: Any, scope: dict[str, Any]) -> bool:
        self.functions.add("materialize")
        value = next(k for k in _children(node)[3:] if node_kind(k))
        return self._declare(node, scope, value, scope)

    def _LetFunctionDeclaration(self, node: Any, scope: dict[str, Any]) -> bool:
        inner = dict(scope)
        for params in _children(node):
            if node_kind(params) not in ("LetFunctionParameterList", "LetViewParameterList"):
                continue
            for n in walk(params):
                if node_kind(n) in ("ScalarParameter", "TabularParameter"):
                    param = next((k for k in _children(n) if node_kind(k) == "ParameterName"), None)
                    if param is not None:
                        inner[name_of(param)] = _PARAMETER
                elif node_kind(n) == "ScalarParameterDefault":
                    self.read(n, scope)
        body = next(k for k in _children(node) if node_kind(k) == "LetFunctionBody")
        return self._declare(node, scope, body, inner)

    _LetViewDeclaration = _LetFunctionDeclaration

    def _LetEntityGroupDeclaration(self, node: Any, scope: dict[str, Any]) -> bool:
        self.operators.add("macro-expand")
        for child in _children(node):
            self.read(child, scope)
        scope[name_of(_children(node)[1])] = _PARAMETER
        return True

    def _DeclareQueryParametersStatementParameter(self, node: Any, scope: dict[str, Any]) -> bool:
        for child in _children(node)[1:]:
            self.read(child, scope)
        scope[name_of(_children(node)[0])] = _PARAMETER
        return True

    def _LetFunctionBody(self, node: Any, scope: dict[str, Any]) -> bool:
        inner = dict(scope)  # a body's own lets end with it
        for child in _children(node):
            self.read(child, inner)
        return True

    def _PipeExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        if len(_children(node)) > 1:
            self.pipelines.append(node)
        return False

    def _SimpleNameReference(self, node: Any, scope: dict[str, Any]) -> bool:
        name = name_of(node)
        self.names.add(name.lower())
        if node_kind(node.parentCtx) != "NamedFunctionCallExpression":
            self.refs.append((node, name, scope.get(name)))
        return True

    def _EntityName(self, node: Any, scope: dict[str, Any]) -> bool:
        name = name_of(node)
        self.names.add(name.lower())
        self.refs.append((node, name, scope.get(name)))
        return True

    def _WildcardedName(self, node: Any, scope: dict[str, Any]) -> bool:
        if not any(node_kind(a) == "SimpleOrWildcardedNameReference" for a in _ancestors(node)):
            self.wildcard_source = True  # `union Device*`, not `project-away Initiating*`
        return False

    def _NamedFunctionCallExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        name = call_name(node)
        self.functions.add(name)
        bound = scope.get(name_of(_children(node)[0]))
        if node_kind(bound) == "LetFunctionDeclaration":
            self.calls.append((node, bound))
        if name in _COLUMN_BY_NAME:
            args = [k for k in _children(node) if node_kind(k)][1:]
            value = _literal(args[0]) if args else None
            if value is not None:
                self.names.add(value.lower())
        return False

    def _FunctionCallOrPathPathExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        """`database("d").T`: T is a table (of another database), not a property."""
        kids = _children(node)
        root = _core(kids[0]) if kids else None
        if node_kind(root) == "NamedFunctionCallExpression" and call_name(root) in ("database", "cluster"):
            for op in kids[1:]:
                for n in walk(op):
                    if node_kind(n) == "IdentifierOrKeywordOrEscapedName":
                        self.refs.append((n, name_of(n), None))
                        break
                break
        return False

    def _CountExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        self.functions.add("count")
        return False

    def _ToScalarExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        self.functions.add("toscalar")
        return False

    def _ToTableExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        self.functions.add("totable")
        return False

    def _ExternalDataExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        self.operators.add("externaldata")
        return False

    def _DataTableExpression(self, node: Any, scope: dict[str, Any]) -> bool:
        self.operators.add("datatable")
        return False

    # -- after the walk ---------------------------------------------------------------------

    def tabular(self, decl: Any) -> bool:
        """Does this `let` (view, materialize, function) stand for a table rather than a value?"""
        kind = node_kind(decl)
        if kind in ("LetViewDeclaration", "LetMaterializeDeclaration"):
            return True
        value = self.values.get(id(decl))
        if value is None:
            return False
        if kind == "LetFunctionDeclaration":
            value = next((k for k in reversed(_children(value))
                          if node_kind(k) and node_kind(k) != "LetFunctionBodyStatement"), None)
            if value is None:
                return False
        core = _core(value)
        if node_kind(core) == "PipeExpression" or node_kind(core) in _TABULAR:
            return True
        if node_kind(core) in ("SimpleNameReference", "EntityName"):
            bound = next((b for n, _, b in self.refs if n is core), _PARAMETER)
            return bound is None or (bound is not _PARAMETER and bound is not decl and self.tabular(bound))
        return False

    def in_table_place(self, node: Any) -> bool:
        """Is the tabular expression at `node` read as a table (a pipeline's source, a union leg,
        a join's right side, a `let` value), rather than inside an expression (`in (...)`)?"""
        child, parent = node, node.parentCtx
        while parent is not None:
            kind = node_kind(parent)
            if kind == "PipeExpression" and len(_children(parent)) > 1:
                return child is _children(parent)[0]  # the source of a pipeline
            if kind in ("UnionOperator", "JoinOperator", "LookupOperator", "FindOperatorSource",
                        "SearchOperatorInClause", "QueryStatement", "LetFunctionBody") or kind in _DECLARATIONS:
                return True
            if kind != "ParenthesizedExpression" and len(_children(parent)) != 1:
                return False
            child, parent = parent, parent.parentCtx
        return True

    def escapes(self, node: Any, seen: set[int]) -> bool:
        """Can the rows of the tabular expression at `node` leave the query with all their
        columns? False only when every way out passes an operator that names its columns."""
        child, parent = node, node.parentCtx
        while parent is not None:
            kind = node_kind(parent)
            if kind == "PipeExpression":
                kids = _children(parent)
                start = kids.index(child) + 1 if node_kind(child) == "PipedOperator" else 1
                for piped in kids[start:]:
                    verdict = _verdict(piped)
                    if verdict == "cut":
                        return False
                    if verdict == "stop":
                        return True
            elif kind in ("LetVariableDeclaration", "LetMaterializeDeclaration"):
                return self._escapes_through(parent, seen)
            elif kind == "LetFunctionBody":
                decl = parent.parentCtx
                return node_kind(decl) != "LetViewDeclaration" or self._escapes_through(decl, seen)
            elif kind in ("JoinOperator", "LookupOperator"):
                return True  # a right side's columns come out renamed when they clash (FileName1)
            elif kind not in ("PipedOperator", "UnionOperator", "ParenthesizedExpression") and len(
                    _children(parent)) != 1:
                return True  # an expression, a statement's result: whole rows may be used or returned
            child, parent = parent, parent.parentCtx
        return True

    def _escapes_through(self, decl: Any, seen: set[int]) -> bool:
        """Can the rows a `let` binds leave with all their columns through any of its uses?"""
        if id(decl) in seen:
            return False
        seen.add(id(decl))
        return any(self.escapes(n, seen) for n, _, bound in self.refs if bound is decl)

    def facts(self) -> Facts:
        free = [(n, name) for n, name, bound in self.refs if bound is None]
        tables = tuple(dict.fromkeys(name for _, name in free))
        bound_tables = [n for n, _, bound in self.refs
                        if bound is not None and bound is not _PARAMETER and self.tabular(bound)]
        bound_tables += [call for call, decl in self.calls if self.tabular(decl)]
        subquery = any(not self.in_table_place(p) for p in self.pipelines) or any(
            not self.in_table_place(n) for n in bound_tables)
        unnamed = self.wildcard_source or bool((self.operators | self.functions) & REACHES_UNNAMED)
        return Facts(
            parsed=True, tables=tables, names=frozenset(self.names), operators=frozenset(self.operators),
            functions=frozenset(self.functions),
            whole_rows=frozenset(name.lower() for n, name in free if self.escapes(n, set())),
            in_expressions=frozenset(name.lower() for n, name in free if not self.in_table_place(n)),
            subquery=subquery, unnamed=unnamed,
        )


def _ancestors(node: Any) -> Iterator[Any]:
    parent = node.parentCtx
    while parent is not None:
        yield parent
        parent = parent.parentCtx


def _row_wide(node: Any) -> bool:
    """Does this operator read every column of its rows (`*`, pack_all())?"""
    for n in walk(node):
        kind = node_kind(n)
        if not kind and n.getText() == "*" and node_kind(n.parentCtx) not in _STAR_NOT_COLUMNS:
            return True
        if kind == "NamedFunctionCallExpression" and call_name(n) in _ROW_WIDE_CALLS:
            return True
    return False


def _verdict(piped: Any) -> str:
    """What a piped operator does to the columns of the rows coming in: "cut" (only those it
    names go on), "pass" (all go on by name) or "stop" (anything else: all may be used)."""
    op = next((n for n in walk(piped) if operator_name(n)), None)
    name = operator_name(op) if op is not None else None
    if name is None or _row_wide(piped):
        return "stop"
    return "cut" if name in _CUTS else "pass" if name in _PASSES else "stop"


# -- parsing, once per text -----------------------------------------------------------------


@lru_cache(maxsize=8)  # a tree is megabytes; facts() keeps what runs need
def parse(kql: str) -> Any | None:
    """duckdb-kql's parse tree of `kql`, or None when it does not parse (or is a command)."""
    import duckdb_kql

    try:
        return duckdb_kql.parse(kql).tree
    except (duckdb_kql.KqlError, RecursionError):
        return None


@cache
def _reader_version() -> str:
    """This module's own digest: facts cached by another version of it are not used."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def read(kql: str) -> Facts:
    """The facts of `kql`, from its parse tree (no cache)."""
    root = parse(kql)
    if root is None:
        return Facts()
    reader = _Reader()
    try:
        reader.read(root, {})
        return reader.facts()
    except RecursionError:
        return Facts()


@lru_cache(maxsize=256)
def facts(kql: str) -> Facts:
    """The facts of `kql`: from this process's memory, the signed cache, or its parse tree."""
    key = kqlcache.fact_inputs(kql, _reader_version())
    stored = kqlcache.get_facts(key)
    found = Facts.from_json(stored) if stored is not None else None
    if found is None:
        found = read(kql)
        kqlcache.put_facts(key, found.to_json())
    return found


# -- the questions ------------------------------------------------------------------------


def tables(kql: str) -> list[str]:
    """The names the query reads that nothing in it binds, in order: its tables are among them."""
    return list(facts(kql).tables)


def operators(kql: str) -> frozenset[str]:
    """The tabular operators the query uses, as KQL spells them (`filter` is `where`)."""
    return facts(kql).operators


def functions(kql: str) -> frozenset[str]:
    """The lower-case names of the functions the query calls (`count()` and `toscalar` included)."""
    return facts(kql).functions


def rowwise(kql: str, known_tables: Iterable[str] = ()) -> bool:
    """Is each row judged on its own: only row-by-row operators, no aggregation or window
    function, and no table read inside an expression (`where x in (T | ...)`)?"""
    f = facts(kql)
    known = {t.lower() for t in known_tables}
    return (f.parsed and f.operators <= ROW_BY_ROW and not f.functions & MANY_ROWS and not f.subquery
            and not f.in_expressions & known)


def columns_read(kql: str, known_tables: Iterable[str]) -> dict[str, frozenset[str] | None] | None:
    """Per known table the query names: the lower-case names of the columns it can read (a
    superset: every name the query uses), or None when whole rows of it can leave the query
    (`T | where ...` returns every column; `*` and pack_all() read them). None overall when the
    query may reach a table without naming it, or does not parse."""
    f = facts(kql)
    if not f.parsed or f.unnamed:
        return None
    named = {t.lower() for t in f.tables}
    return {t: None if t.lower() in f.whole_rows else f.names for t in known_tables if t.lower() in named}


# -- tokens, for text that does not parse ----------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One token of duckdb-kql's KQL lexer: its type's name, its text and its offsets."""

    kind: str
    text: str
    start: int
    stop: int  # exclusive


@lru_cache(maxsize=64)
def tokens(kql: str) -> tuple[Token, ...]:
    """The query's tokens as duckdb-kql's lexer reads them, whitespace left out (comments
    kept: `COMMENT`). Works where parsing does not: a query with a syntax error still lexes."""
    try:
        from antlr4 import InputStream
        from duckdb_kql._antlr.KqlLexer import KqlLexer
    except ImportError:  # pragma: no cover - the lexer moved in another duckdb-kql
        return ()
    lexer = KqlLexer(InputStream(kql))
    lexer.removeErrorListeners()
    names = KqlLexer.symbolicNames
    out = []
    for t in lexer.getAllTokens():
        kind = names[t.type] if 0 <= t.type < len(names) else "?"
        if kind != "WHITESPACE":
            out.append(Token(kind, t.text, t.start, t.stop + 1))
    return tuple(out)


def strings_and_comments(kql: str) -> list[tuple[int, int]]:
    """The (start, end) offsets of every string literal and `//` comment in the query."""
    return [(t.start, t.stop) for t in tokens(kql) if t.kind in ("STRINGLITERAL", "COMMENT")]
