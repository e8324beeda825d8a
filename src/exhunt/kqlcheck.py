"""Static column check: the columns a query names, against the tables it reads.

Read from duckdb-kql's parse tree (exhunt.kql.tree), so a name in a string, a comment, a
function's name or a dynamic property (`P.Name`) is never taken for a column. Each
pipeline that starts at a table (or at a `let` built from one) is walked operator by
operator, keeping the set of columns available; every column an operator reads must be in
that set. Operators whose output columns this check does not model (join, parse,
mv-expand, ...) end the walk for that pipeline, so the check never guesses; pipelines inside
them (a join's right side, `in (T | ...)`) are checked on their own. A query that does not
parse is left to the translator, which names the syntax error; the runtime check (the query
run on empty tables) still covers the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from exhunt.kql import tree
from exhunt.kql.tree import call_name, name_of, node_kind, walk

Columns = set[str] | None
#: Calls in a `summarize ... by` that keep their first argument's name (`bin(Timestamp, 1h)`).
_BINS = frozenset({"bin", "floor", "bin_at"})
#: Where a statement's value or a pipeline's source comes down to.
_LETS = frozenset({"LetVariableDeclaration", "LetMaterializeDeclaration", "LetViewDeclaration"})


@dataclass
class Problem:
    column: str
    source: str
    operator: str

    def __str__(self) -> str:
        return (f"column {self.column!r} does not exist in {self.source} where `{self.operator}` uses it "
                f"(static check of the query text)")


def _kids(node: Any) -> list[Any]:
    """A node's grammar-rule children (tokens left out)."""
    return [k for k in getattr(node, "children", None) or [] if node_kind(k)]


def _core(node: Any) -> Any:
    """What an expression comes down to, through wrappers and parentheses."""
    while True:
        kids = _kids(node)
        if node_kind(node) in ("SimpleNameReference", "EntityName", "NamedExpression") or len(kids) != 1:
            return node
        if node_kind(node) == "PipeExpression" and len(getattr(node, "children", [])) > 1:
            return node
        node = kids[0]


def _named(item: Any) -> tuple[str | None, Any, bool]:
    """A list item (`Name = expr` or `expr`) -> (Name, expr, whether it names several columns)."""
    if node_kind(item) != "NamedExpression":
        return None, item, False
    kids = _kids(item)
    if kids and node_kind(kids[0]) == "NamedExpressionNameClause":
        clause = kids[0]
        several = any(node_kind(k) == "NamedExpressionNameList" for k in _kids(clause))
        return (None if several else name_of(_kids(clause)[0])), kids[-1], several
    return None, kids[-1] if kids else item, False


def _bare(expr: Any) -> str | None:
    """The column an expression is, when it is nothing but a column's name."""
    core = _core(expr)
    return name_of(core) if node_kind(core) == "SimpleNameReference" else None


def _outermost(node: Any, kinds: set[str]) -> Iterator[Any]:
    """Nodes of these kinds under `node`, not looking inside one found."""
    stack = list(reversed(_kids(node)))
    while stack:
        n = stack.pop()
        if node_kind(n) in kinds and (node_kind(n) != "PipeExpression" or len(n.children) > 1):
            yield n
            continue
        stack.extend(reversed(_kids(n)))


class Checker:
    def __init__(self, tables: Mapping[str, Iterable[str]]) -> None:
        self.tables = {name: set(cols) for name, cols in tables.items()}
        self.lets: dict[str, Columns] = {}
        self.scalars: set[str] = set()
        self.problems: list[Problem] = []

    def run(self, kql: str) -> list[Problem]:
        root = tree.parse(kql)
        if root is not None:
            for query in _kids(root):
                self.statements(_kids(query))
        return self.problems

    # -- statements -----------------------------------------------------------------------

    def statements(self, statements: Iterable[Any]) -> None:
        """Each statement in order: `let`s bind what follows, queries are walked."""
        for stmt in statements:
            node = stmt
            while node_kind(node) in ("Statement", "LetStatement", "LetFunctionBodyStatement"):
                node = _kids(node)[0]
            kind = node_kind(node)
            if kind in _LETS:
                self._let(node)
            elif kind == "LetFunctionDeclaration":
                self._function(node)
            elif kind == "DeclareQueryParametersStatement":
                self.scalars.update(name_of(_kids(p)[0]) for p in _kids(node)
                                    if node_kind(p) == "DeclareQueryParametersStatementParameter")
            elif kind in ("QueryStatement", "PipeExpression", "Expression") or kind.endswith("Expression"):
                self.tabular(node)

    def _let(self, node: Any) -> None:
        name = name_of(next(k for k in _kids(node) if node_kind(k).startswith("Identifier")))
        if node_kind(node) == "LetViewDeclaration":
            body = next(k for k in _kids(node) if node_kind(k) == "LetFunctionBody")
            self.lets[name] = self._body(body)
            return
        value = _kids(node)[-1]
        if node_kind(node) == "LetMaterializeDeclaration" or self._is_tabular(value):
            self.lets[name] = self.tabular(value)[0]
        else:
            self.scalars.add(name)

    def _function(self, node: Any) -> None:
        """A let function: its name is a call, not a column; its body is checked with its
        parameters as values."""
        name = name_of(next(k for k in _kids(node) if node_kind(k).startswith("Identifier")))
        params = {name_of(p) for p in walk(node) if node_kind(p) == "ParameterName"
                  and node_kind(p.parentCtx) in ("ScalarParameter", "TabularParameter")}
        saved = (dict(self.lets), set(self.scalars))
        self.scalars |= params
        for p in params:
            self.lets.pop(p, None)
        body = next(k for k in _kids(node) if node_kind(k) == "LetFunctionBody")
        self._body(body)
        self.lets, self.scalars = saved
        self.scalars.add(name)

    def _body(self, body: Any) -> Columns:
        """A function or view body: its statements, then the columns of its result."""
        saved = (dict(self.lets), set(self.scalars))
        self.statements(k for k in _kids(body) if node_kind(k) == "LetFunctionBodyStatement")
        rest = [k for k in _kids(body) if node_kind(k) != "LetFunctionBodyStatement"]
        cols = self.tabular(rest[-1])[0] if rest else None
        self.lets, self.scalars = saved
        return cols

    def _is_tabular(self, value: Any) -> bool:
        core = _core(value)
        kind = node_kind(core)
        if kind == "PipeExpression" or kind in ("UnionOperator", "DataTableExpression", "ExternalDataExpression",
                                                "PrintOperator", "RangeExpression", "ToTableExpression"):
            return True
        return kind in ("SimpleNameReference", "EntityName") and (name_of(core) in self.tables
                                                                  or name_of(core) in self.lets)

    # -- tabular expressions ----------------------------------------------------------------

    def tabular(self, node: Any) -> tuple[Columns, str]:
        """Check a tabular expression; (the columns it ends with or None when not modelled, its source)."""
        core = _core(node)
        kind = node_kind(core)
        if kind == "PipeExpression":
            kids = [k for k in core.children if node_kind(k)]
            cols, source = self.tabular(kids[0])
            for piped in kids[1:]:
                op = next(n for n in walk(piped) if tree.operator_name(n))
                self.subqueries(op)
                if cols is not None:
                    cols = self.operator(op, cols, source)
            return cols, source
        if kind in ("SimpleNameReference", "EntityName"):
            name = name_of(core)
            if name in self.tables:
                return set(self.tables[name]), name
            if name in self.lets:
                found = self.lets[name]
                return (set(found) if found is not None else None), name
            return None, name
        if kind == "UnionOperator":
            return self._union(core)
        self.subqueries(core)
        return None, ""

    def _union(self, node: Any) -> tuple[Columns, str]:
        legs = [k for k in _kids(node) if node_kind(k) not in ("RelaxedQueryOperatorParameter",
                                                                 "StrictQueryOperatorParameter")]
        union_cols: set[str] = set()
        names: list[str] = []
        known = True
        for leg in legs:
            if any(node_kind(n) == "WildcardedName" for n in walk(leg)):
                known = False
                continue
            cols, name = self.tabular(leg)
            if cols is None:
                known = False
            else:
                union_cols |= cols
                names.append(name)
        return (union_cols if known else None), "union of " + ", ".join(names)

    def subqueries(self, node: Any) -> None:
        """Check the pipelines inside an operator or expression on their own."""
        for sub in _outermost(node, {"PipeExpression"}):
            self.tabular(sub)

    # -- operators --------------------------------------------------------------------------

    def refs(self, node: Any) -> list[str]:
        """The columns an expression reads (not functions, properties, `let` values or sub-queries)."""
        out: list[str] = []
        stack = [node]
        while stack:
            n = stack.pop()
            kind = node_kind(n)
            if (kind == "PipeExpression" and len(n.children) > 1) or kind == "ToScalarExpression":
                continue
            if kind == "SimpleNameReference":
                name = name_of(n)
                if (node_kind(n.parentCtx) != "NamedFunctionCallExpression" and not name.startswith("$")
                        and name not in self.scalars and name not in self.lets and name not in self.tables):
                    out.append(name)
                continue
            stack.extend(reversed(_kids(n)))
        return out

    def _check(self, names: Iterable[str], cols: set[str], source: str, op: str) -> None:
        for name in names:
            if name not in cols and not any(p.column == name and p.source == source for p in self.problems):
                self.problems.append(Problem(name, source, op))

    def operator(self, node: Any, cols: set[str], source: str) -> Columns:
        op = tree.operator_name(node) or ""
        items = [k for k in _kids(node) if node_kind(k) not in ("RelaxedQueryOperatorParameter",
                                                                 "StrictQueryOperatorParameter")]
        if op in ("where", "sort", "top"):
            self._check(self.refs(node), cols, source, op)
            return cols
        if op == "take":
            return cols
        if op == "count":
            return {"Count"}
        if op == "extend":
            return self._extend(items, cols, source)
        if op == "project":
            return self._project(items, cols, source)
        if op == "project-away":
            if any(node_kind(n) == "WildcardedName" for n in walk(node)):
                return None
            names = [name_of(n) for n in walk(node) if node_kind(n) == "SimpleNameReference"]
            self._check(names, cols, source, op)
            return cols - set(names)
        if op == "project-rename":
            return self._rename(items, cols, source)
        if op == "distinct":
            return self._distinct(node, items, cols, source)
        if op == "summarize":
            return self._summarize(node, cols, source)
        return None

    def _extend(self, items: list[Any], cols: set[str], source: str) -> Columns:
        out = set(cols)
        known = True
        for item in items:
            name, expr, several = _named(item)
            self._check(self.refs(expr), out, source, "extend")
            if name:
                out.add(name)
            elif several or _bare(expr) is None:
                known = False  # names the engine makes up (Column1) or several at once
        return out if known else None

    def _project(self, items: list[Any], cols: set[str], source: str) -> Columns:
        out: set[str] = set()
        known = True
        for item in items:
            name, expr, several = _named(item)
            self._check(self.refs(expr), cols, source, "project")
            bare = _bare(expr)
            if name:
                out.add(name)
            elif bare is not None and not several:
                out.add(bare)
            else:
                known = False
        return out if known else None

    def _rename(self, items: list[Any], cols: set[str], source: str) -> Columns:
        out = set(cols)
        for item in items:
            name, expr, _ = _named(item)
            old = _bare(expr)
            if name is None or old is None:
                return None
            self._check([old], cols, source, "project-rename")
            out.discard(old)
            out.add(name)
        return out

    def _distinct(self, node: Any, items: list[Any], cols: set[str], source: str) -> Columns:
        if any(node_kind(k) == "DistinctOperatorStarTarget" for k in _kids(node)):
            return cols
        out: set[str] = set()
        known = True
        for item in (n for k in items for n in ([k] if node_kind(k) != "DistinctOperatorColumnListTarget"
                                                 else _kids(k))):
            self._check(self.refs(item), cols, source, "distinct")
            name, expr, _ = _named(item)
            bare = _bare(expr)
            if name or bare:
                out.add(name or bare or "")
            else:
                known = False
        return out if known else None

    def _summarize(self, node: Any, cols: set[str], source: str) -> Columns:
        by_clause = [k for k in _kids(node) if node_kind(k) == "SummarizeOperatorByClause"]
        aggs = [k for k in _kids(node) if node_kind(k) not in ("SummarizeOperatorByClause",
                                                                "RelaxedQueryOperatorParameter",
                                                                "StrictQueryOperatorParameter")]
        out: set[str] = set()
        known = True
        for item in (k for clause in by_clause for k in _kids(clause)):
            self._check(self.refs(item), cols, source, "summarize")
            name, expr, several = _named(item)
            core = _core(expr)
            if name:
                out.add(name)
            elif _bare(expr) is not None and not several:
                out.add(_bare(expr) or "")
            elif node_kind(core) == "NamedFunctionCallExpression" and call_name(core) in _BINS and self.refs(core):
                out.add(self.refs(core)[0])
            else:
                known = False
        for item in aggs:
            self._check(self.refs(item), cols, source, "summarize")
            name, expr, several = _named(item)
            core = _core(expr)
            fn = call_name(core) if node_kind(core) == "NamedFunctionCallExpression" else ""
            if fn in ("arg_max", "arg_min") and not name and not several:
                known = self._arg_columns(core, cols, out) and known
            elif name:
                out.add(name)
            elif node_kind(core) == "CountExpression":
                out.add("count_")
            else:
                known = False
        return out if known else None

    def _arg_columns(self, call: Any, cols: set[str], out: set[str]) -> bool:
        """arg_max(By, A, B = x, *): the columns it returns; False when one is not known."""
        known = True
        for arg in _kids(call)[1:]:
            name, expr, several = _named(_core(arg))
            core = _core(expr)
            if node_kind(core) == "StarExpression" or core.getText() == "*":
                out |= cols
            elif name:
                out.add(name)
            elif _bare(expr) is not None and not several:
                out.add(_bare(expr) or "")
            else:
                known = False
        return known


def check(kql: str, tables: Mapping[str, Iterable[str]]) -> list[Problem]:
    """Problems (unknown columns) the query shows, against the given table schemas."""
    return Checker(tables).run(kql)
