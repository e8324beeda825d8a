"""A rule's conditions, and a query that evaluates them on the rows behind one alert.

`plan(kql, tables)` reads duckdb-kql's parse tree of a rule and follows the rows of every table
it reads (through `let` bindings, unions and left-outer joins) up to the first operator that
needs many rows at once (summarize, an inner join, take...). Each `where` on that per-row part
is split into its `and` / `or` / `not(...)` tree, and the query is rewritten so that instead of
dropping rows it keeps them with one boolean column per node of each tree, the value of every
column an atom reads, and a marker per `where` the row went through. A column a condition reads
that the rule computed earlier (`extend IsSetup = A and B`, `Stage = case(...)`) gets the tree
of its definition evaluated where it is defined.

Every text added is the rule's own (sliced from the query by the tree's positions) or a name
made here: a value from the data never becomes query text. The caller picks the alert's rows
out of the rewritten query's result by value, with bound parameters (see
`DuckDBBackend.query_matching`), and `Output.trace` says which column of that result holds each
of the alert's columns. What follows the per-row part (the aggregation of a correlation) is
listed as `Output.post`: it is shown, with the alert's own values, not evaluated per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from exhunt.kql import tree
from exhunt.kql.tree import node_kind

#: Every column the rewritten query adds starts with this.
PREFIX = "_why_"
#: The column naming the table each row was read from.
TABLE_COLUMN = PREFIX + "table"
#: The hidden columns of stored rows saying where each was read (exhunt.schema.PROVENANCE).
PROVENANCE = ("_source_file", "_record")
#: Operators a row passes through on its own, its columns kept by name.
_ROW_OPS = frozenset({"extend", "sort", "as", "serialize", "project-reorder", "render", "parse", "parse-where",
                      "mv-expand", "parse-kv"})
_NAMES = ("SimpleNameReference", "EntityName")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Condition:
    """One node of a `where` (or of a definition): `and` / `or` / `not`, or an atom."""

    #: "and", "or", "not", or "" for an atom (a comparison, a call, a name...).
    logic: str
    #: The rule's own text of the node.
    text: str
    #: The result column holding its value ("" where it is not evaluated per row).
    column: str = ""
    children: list[Condition] = field(default_factory=list)
    #: What an atom reads.
    reads: list[Read] = field(default_factory=list)


@dataclass
class Read:
    """A name an atom reads: a column (with the result column holding its value there) or one
    of the rule's `let` constants (with its text)."""

    name: str
    column: str = ""
    constant: str | None = None
    #: Where the rule computed this column before the condition read it (extend, project).
    definitions: list[Definition] = field(default_factory=list)
    #: The name as the rule writes it (`['a b']`), to read it in the rewritten query.
    written: str = ""


@dataclass
class Definition:
    """`Name = expression` computed on the per-row part; its conditions are evaluated when it
    is logical (and/or/not), a case() or an iff()."""

    name: str
    text: str
    #: The result column that is true when the row went through this definition.
    marker: str = ""
    tree: Condition | None = None
    #: case() / iff(): each branch's condition and the value text it gives, then the default.
    branches: list[tuple[Condition, str]] = field(default_factory=list)
    otherwise: str | None = None
    # where it stands, for the rewrite
    op: Any = None
    expr: Any = None
    scope: dict[str, list[Definition]] = field(default_factory=dict)
    assigned_before: frozenset[str] = frozenset()
    expanded: bool = False

    def columns(self) -> list[str]:
        return _columns(self.marker, self.tree, [c for c, _ in self.branches]) if self.expanded else []


@dataclass
class Step:
    """An operator of the rule a row meets: a `where` (with its condition tree) or a join /
    aggregation (shown as written)."""

    #: "where", "join", "lookup", "summarize", ...
    operator: str
    #: The `let` it is written in ("" for the query's last statement).
    part: str
    text: str
    #: The result column that is true when the row went through it ("" after the per-row part).
    marker: str = ""
    condition: Condition | None = None
    node: Any = None
    #: After the per-row part: a column here -> the rule's result column that is an unchanged copy.
    carried: dict[str, str] = field(default_factory=dict)

    def columns(self) -> list[str]:
        return _columns(self.marker, self.condition, []) if self.marker else []


@dataclass
class Output:
    """One rewritten query: the rows at the end of a per-row part."""

    query: str
    #: Operators after that per-row part, up to the rule's result (evaluated over many rows).
    post: list[Step] = field(default_factory=list)
    #: The rule's result column -> the column of `query`'s rows it comes from unchanged.
    trace: dict[str, str] = field(default_factory=dict)
    #: The result's columns are the rule's own (no aggregation after the per-row part).
    whole: bool = False


@dataclass
class Plan:
    """A rule's per-row steps in the order rows meet them, and the queries that evaluate them."""

    steps: list[Step]
    outputs: list[Output]


def _columns(marker: str, cond: Condition | None, more: list[Condition]) -> list[str]:
    out = [marker]
    stack = ([cond] if cond is not None else []) + list(more)
    while stack:
        c = stack.pop(0)
        out.append(c.column)
        out.extend(r.column for r in c.reads if r.column and r.column not in out)
        stack = list(c.children) + stack
    return out


def _text(kql: str, node: Any) -> str:
    return kql[node.start.start:node.stop.stop + 1] if node.stop is not None else ""


def _kids(node: Any) -> list[Any]:
    return [k for k in tree._children(node) if node_kind(k)]


def _op_of(piped: Any) -> Any:
    """The operator node of a `| operator` (PipedOperator -> AfterPipeOperator -> XOperator)."""
    return next((n for n in tree.walk(piped) if tree.operator_name(n)), None)


def _assigned(item: Any) -> tuple[str | None, Any]:
    """(name, expression) of one item of extend / project / summarize: `N = e` -> (N, e),
    a bare name -> (name, its node), anything else -> (None, node)."""
    if node_kind(item) == "NamedExpression":
        kids = _kids(item)
        clause = next((k for k in kids if node_kind(k) == "NamedExpressionNameClause"), None)
        if clause is not None:
            names = [n for n in _kids(clause)]
            expr = kids[-1]
            if len(names) == 1:
                return tree.name_of(names[0]), expr
            return None, expr
        item = kids[-1] if kids else item
    core = tree._core(item)
    if node_kind(core) in _NAMES:
        return tree.name_of(core), core
    return None, item


def _items(op: Any) -> list[Any]:
    """The comma-separated items of an extend / project (the nodes after the keyword)."""
    return [k for k in _kids(op) if node_kind(k) not in ("RelaxedQueryOperatorParameter",
                                                         "SummarizeOperatorByClause")]


def _plain_name(expr: Any) -> str | None:
    core = tree._core(expr)
    return tree.name_of(core) if node_kind(core) in _NAMES else None


def _param(op: Any, name: str) -> str | None:
    for k in _kids(op):
        if node_kind(k) == "RelaxedQueryOperatorParameter":
            parts = [str(t.getText()) for t in tree._children(k)]
            if parts and parts[0].lower() == name:
                return parts[-1].lower()
    return None


@dataclass
class _Cut:
    """Rows whose per-row part ended at an operator needing many rows."""

    start: int
    stop: int  # exclusive: the text of the pipeline up to the operator before the cut
    post: list[Any] = field(default_factory=list)  # operator nodes from the cut on, in order
    parts: list[str] = field(default_factory=list)


@dataclass
class _Flow:
    """The rows of a tabular expression as the walk follows them."""

    alive: bool = True
    #: Steps and definitions the rows went through, in order (their columns ride along).
    producers: list[Step | Definition] = field(default_factory=list)
    scope: dict[str, list[Definition]] = field(default_factory=dict)
    provenance: bool = False
    cuts: list[_Cut] = field(default_factory=list)

    def copy(self) -> _Flow:
        return _Flow(self.alive, list(self.producers), {k: list(v) for k, v in self.scope.items()},
                     self.provenance, [_Cut(c.start, c.stop, list(c.post), list(c.parts)) for c in self.cuts])


class _Planner:
    def __init__(self, kql: str, root: Any, tables: set[str]) -> None:
        self.kql = kql
        self.root = root
        self.tables = tables
        self.reader = tree._Reader()
        self.reader.read(root, {})
        self.bound: dict[int, Any] = {id(n): b for n, _, b in self.reader.refs}
        self.steps: list[Step] = []
        self.part = ""
        self.count = 0
        self.lets: dict[int, _Flow] = {}
        #: (start, stop, text) replacements of the query text; stop == start inserts.
        self.edits: list[tuple[int, int, str]] = []
        #: Definitions to evaluate before an operator, by the operator's start.
        self.before: dict[int, list[Definition]] = {}
        #: Operators whose result carries the columns of these producers (project), by its stop.
        self.carry: list[tuple[int, list[Step | Definition], bool, set[str]]] = []
        #: Each `where` made into columns, with the lets it is written in (innermost last).
        self.wheres: list[tuple[Step, tuple[Any, ...]]] = []
        self.decls: list[Any] = []
        #: References to lets the walk followed as rows (not as a lookup or an expression).
        self.flow_refs: set[int] = set()
        #: Operators after the per-row part (set by `plan`): what they read is not evaluated.
        self.dead: set[int] = set()

    def next(self) -> int:
        self.count += 1
        return self.count

    # -- following rows ---------------------------------------------------------------------

    def flow(self, node: Any) -> _Flow:
        core = tree._core(node)
        kind = node_kind(core)
        if kind in _NAMES:
            bound = self.bound.get(id(core), tree._PARAMETER)
            name = tree.name_of(core)
            if bound is None and name in self.tables and _IDENT.match(name):
                # The table's name on each row: an extend after the name, in parentheses where
                # the name is a union's leg (duckdb-kql reads none as a pipeline's source).
                tag = f'{_text(self.kql, core)} | extend {TABLE_COLUMN} = "{name}"'
                if node_kind(_wrapper(core).parentCtx) == "UnionOperator":
                    tag = f"({tag})"
                self.edits.append((core.start.start, core.stop.stop + 1, tag))
                return _Flow(provenance=True)
            if node_kind(bound) == "LetVariableDeclaration" and self.reader.tabular(bound):
                self.flow_refs.add(id(core))
                return self.let(bound).copy()
            return _Flow(alive=False)
        if kind == "PipeExpression":
            return self.pipeline(core)
        if kind == "UnionOperator":
            return self.union(core, None)
        if kind in ("DataTableExpression", "PrintOperator", "RangeExpression"):
            return _Flow()
        return _Flow(alive=False)

    def let(self, decl: Any) -> _Flow:
        if id(decl) not in self.lets:
            saved = self.part
            name_node = next(k for k in tree._children(decl) if node_kind(k).startswith("Identifier"))
            self.part = tree.name_of(name_node)
            self.decls.append(decl)
            self.lets[id(decl)] = self.flow(tree._children(decl)[-1])
            self.decls.pop()
            self.part = saved
        return self.lets[id(decl)]

    def union(self, op: Any, into: _Flow | None) -> _Flow:
        legs = [k for k in _kids(op) if node_kind(k) == "UnionOperatorExpression"]
        out = into if into is not None else _Flow(alive=False)
        for leg in legs:
            f = self.flow(leg)
            out.alive = out.alive or f.alive
            out.producers += f.producers
            for name, defs in f.scope.items():
                out.scope.setdefault(name, []).extend(defs)
            out.provenance = out.provenance or f.provenance
            out.cuts += f.cuts
        return out

    def pipeline(self, pipe: Any) -> _Flow:
        kids = tree._children(pipe)
        f = self.flow(kids[0])
        before = kids[0]
        for piped in kids[1:]:
            op = _op_of(piped)
            if op is None:
                return _Flow(alive=False)
            for cut in f.cuts:
                cut.post.append(op)
                cut.parts.append(self.part)
            if f.alive:
                self.operator(op, f, pipe, before)
            before = piped
        return f

    def operator(self, op: Any, f: _Flow, pipe: Any, before: Any) -> None:
        name = tree.operator_name(op) or ""
        if name == "where":
            self.where(op, f)
        elif name in ("extend", "project", "project-keep"):
            self.assignments(op, f, name)
        elif name == "project-away":
            for item in _items(op):
                f.scope.pop(tree.name_of(item), None)
        elif name == "project-rename":
            for item in _items(op):
                new, expr = _assigned(item)
                old = _plain_name(expr)
                if new and old:
                    f.scope[new] = f.scope.pop(old, [])
        elif name == "union":
            self.union(op, f)
        elif name in ("join", "lookup") and (_param(op, "kind") or ("leftouter" if name == "lookup" else "")) in (
                "leftouter", "left"):
            step = Step(name, self.part, _text(self.kql, op), f"{PREFIX}m{self.next()}", node=op)
            self.steps.append(step)
            f.producers.append(step)
            self.edits.append((op.stop.stop + 1, op.stop.stop + 1, f" | extend {step.marker} = true"))
        elif name in _ROW_OPS:
            pass
        else:
            f.alive = False
            f.cuts.append(_Cut(pipe.start.start, before.stop.stop + 1, [op], [self.part]))

    def assignments(self, op: Any, f: _Flow, name: str) -> None:
        scope_before = {k: list(v) for k, v in f.scope.items()}
        new: dict[str, list[Definition]] = {} if name != "extend" else f.scope
        assigned: set[str] = set()
        for item in _items(op):
            col, expr = _assigned(item)
            if col is None:
                continue
            plain = _plain_name(expr)
            if plain is not None:
                new[col] = scope_before.get(plain, [])  # kept or renamed
            else:
                d = Definition(col, _text(self.kql, item), op=op, expr=expr, scope=scope_before,
                               assigned_before=frozenset(assigned))
                new[col] = [d]
                f.producers.append(d)
            assigned.add(col)
        f.scope = new
        if name != "extend":
            listed = {(_assigned(i)[0] or "") for i in _items(op)}
            self.carry.append((op.stop.stop + 1, list(f.producers), f.provenance, listed))

    def where(self, op: Any, f: _Flow) -> None:
        k = self.next()
        pred = _kids(op)[-1]
        reads: dict[str, Read] = {}
        cond = self.split(pred, f"{PREFIX}c{k}_", [0], reads, f"{PREFIX}r{k}_", f.scope, frozenset())
        step = Step("where", self.part, _text(self.kql, pred), f"{PREFIX}m{k}", cond, node=op)
        self.steps.append(step)
        f.producers.append(step)
        self.wheres.append((step, tuple(self.decls)))

    def assign(self, item: Step | Definition) -> list[str]:
        """`column = (rule text)` for every column of a step or definition."""
        out = [f"{item.marker} = true"]
        conds = [item.condition] if isinstance(item, Step) else (
            [item.tree] if item.tree is not None else []) + [c for c, _ in item.branches]
        seen: set[str] = set()
        stack = [c for c in conds if c is not None]
        while stack:
            c = stack.pop(0)
            out.append(f"{c.column} = ({c.text})")
            for r in c.reads:
                if r.column and r.column not in seen:
                    seen.add(r.column)
                    out.append(f"{r.column} = {r.written}")
            stack = list(c.children) + stack
        return out

    # -- conditions ---------------------------------------------------------------------------

    def split(self, node: Any, prefix: str, counter: list[int], reads: dict[str, Read], read_prefix: str,
              scope: dict[str, list[Definition]], assigned: frozenset[str]) -> Condition:
        """The and / or / not tree of an expression, each node with its own result column."""
        core = tree._core(node)
        kind = node_kind(core)
        column = f"{prefix}{counter[0]}"
        counter[0] += 1
        kids = tree._children(core)
        parts: list[Any] = []
        logic = ""
        if kind in ("LogicalOrExpression", "LogicalAndExpression") and len(kids) > 1:
            logic = "or" if kind == "LogicalOrExpression" else "and"
            parts = [kids[0]] + [_kids(k)[-1] for k in kids[1:]]
        elif kind == "NamedFunctionCallExpression" and tree.call_name(core) == "not":
            args = [k for k in _kids(core)[1:]]
            if len(args) == 1:
                logic, parts = "not", args
        if logic:
            children = [self.split(p, prefix, counter, reads, read_prefix, scope, assigned) for p in parts]
            return Condition(logic, _text(self.kql, core), column, children)
        atom = Condition("", _text(self.kql, core), column)
        for ref in self.names_read(core):
            name = tree.name_of(ref)
            read = reads.get(name)
            if read is None:
                read = self.read(ref, name, f"{read_prefix}{len(reads)}", scope, assigned)
                reads[name] = read
            if read not in atom.reads:
                atom.reads.append(read)
        return atom

    def names_read(self, node: Any) -> list[Any]:
        """The name nodes an expression reads on its row (not inside a sub-query)."""
        out = []
        for n in tree.walk(node):
            if node_kind(n) != "SimpleNameReference" or id(n) not in self.bound:
                continue
            if any(node_kind(a) == "PipeExpression" and len(tree._children(a)) > 1
                   for a in _between(n, node)):
                continue
            out.append(n)
        return out

    def read(self, ref: Any, name: str, column: str, scope: dict[str, list[Definition]],
             assigned: frozenset[str]) -> Read:
        bound = self.bound.get(id(ref))
        if bound is not None:
            if node_kind(bound) == "LetVariableDeclaration" and not self.reader.tabular(bound):
                return Read(name, constant=_text(self.kql, tree._children(bound)[-1]))
            return Read(name)  # a function parameter, a tabular let: nothing to show
        if name in self.tables or name in assigned:
            return Read(name)
        out = Read(name, column, written=_text(self.kql, ref))
        for d in scope.get(name, []):
            self.expand(d)
            out.definitions.append(d)
        return out

    def expand(self, d: Definition) -> None:
        """Evaluate a definition's conditions where it is computed (once)."""
        if d.expanded or d.marker:
            return
        k = self.next()
        d.marker = f"{PREFIX}m{k}"
        core = tree._core(d.expr)
        kind = node_kind(core)
        reads: dict[str, Read] = {}
        counter = [0]
        prefix, rprefix = f"{PREFIX}c{k}_", f"{PREFIX}r{k}_"
        if (kind in ("LogicalOrExpression", "LogicalAndExpression") and len(tree._children(core)) > 1) or (
                kind == "NamedFunctionCallExpression" and tree.call_name(core) == "not"):
            d.tree = self.split(core, prefix, counter, reads, rprefix, d.scope, d.assigned_before)
        elif kind == "NamedFunctionCallExpression" and tree.call_name(core) in ("case", "iff", "iif"):
            args = _kids(core)[1:]
            if tree.call_name(core) != "case" and len(args) != 3:
                return
            for i in range(0, len(args) - 1, 2):
                when = self.split(args[i], prefix, counter, reads, rprefix, d.scope, d.assigned_before)
                d.branches.append((when, _text(self.kql, args[i + 1])))
            d.otherwise = _text(self.kql, args[-1]) if len(args) % 2 else None
        else:
            return
        if any(r.name in d.assigned_before for r in reads.values()):
            d.tree, d.branches, d.otherwise = None, [], None  # reads a column its own operator makes
            return
        d.expanded = True
        self.before.setdefault(d.op.start.start, []).append(d)

    # -- after the per-row part ---------------------------------------------------------------

    def post_step(self, op: Any, part: str) -> Step:
        """An operator after the per-row part, with the tree of a `where` (not evaluated)."""
        name = tree.operator_name(op) or ""
        if name != "where":
            return Step(name, part, _text(self.kql, op), node=op)
        pred = _kids(op)[-1]
        return Step(name, part, _text(self.kql, pred), condition=self.static(pred), node=op)

    def static(self, node: Any) -> Condition:
        """The and / or / not tree of an expression and the names each atom reads, without
        result columns (for what is evaluated over many rows)."""
        core = tree._core(node)
        kind = node_kind(core)
        kids = tree._children(core)
        if kind in ("LogicalOrExpression", "LogicalAndExpression") and len(kids) > 1:
            parts = [kids[0]] + [_kids(k)[-1] for k in kids[1:]]
            return Condition("or" if kind == "LogicalOrExpression" else "and", _text(self.kql, core),
                             children=[self.static(p) for p in parts])
        if kind == "NamedFunctionCallExpression" and tree.call_name(core) == "not" and len(_kids(core)) == 2:
            return Condition("not", _text(self.kql, core), children=[self.static(_kids(core)[1])])
        atom = Condition("", _text(self.kql, core))
        seen: set[str] = set()
        for ref in self.names_read(core):
            name = tree.name_of(ref)
            if name in seen or name in self.tables:
                continue
            seen.add(name)
            bound = self.bound.get(id(ref))
            if bound is None:
                atom.reads.append(Read(name, written=_text(self.kql, ref)))
            elif node_kind(bound) == "LetVariableDeclaration" and not self.reader.tabular(bound):
                atom.reads.append(Read(name, constant=_text(self.kql, tree._children(bound)[-1])))
        return atom

    # -- the rewritten text -------------------------------------------------------------------

    def shared(self, decl: Any) -> bool:
        """Is this let also read where its rows are not followed (a lookup, an expression)? Its
        filters then stay in place (after their columns), so that read sees the rows it did."""
        return any(bound is decl and id(n) not in self.flow_refs and not any(id(a) in self.dead for a in _ancestors(n))
                   for n, _, bound in self.reader.refs)

    def edited(self, start: int, stop: int) -> str:
        edits = list(self.edits)
        for step, decls in self.wheres:
            op = step.node
            text = "extend " + ", ".join(self.assign(step))
            if any(self.shared(d) for d in decls):
                text += f" | where {_text(self.kql, _kids(op)[-1])}"
            edits.append((op.start.start, op.stop.stop + 1, text))
        for pos, defs in self.before.items():
            items = [a for d in defs for a in self.assign(d)]
            edits.append((pos, pos, "extend " + ", ".join(items) + " | "))
        for pos, producers, provenance, listed in self.carry:
            cols = [c for p in producers for c in p.columns()]
            if provenance:
                cols += [TABLE_COLUMN, *PROVENANCE]
            cols = [c for c in dict.fromkeys(cols) if c not in listed]
            if cols:
                edits.append((pos, pos, ", " + ", ".join(cols)))
        out, at = [], start
        # An insertion at a range's edge belongs to the range it ends (it follows an operator).
        inside = [e for e in edits if (start < e[0] if e[0] == e[1] else start <= e[0]) and e[1] <= stop]
        for s, e, text in sorted(inside, key=lambda e: (e[0], e[1])):
            if s < at:
                continue
            out.append(self.kql[at:s])
            out.append(text)
            at = e
        out.append(self.kql[at:stop])
        return "".join(out)


def _ancestors(node: Any) -> list[Any]:
    out = []
    p = node.parentCtx
    while p is not None:
        out.append(p)
        p = p.parentCtx
    return out


def _wrapper(node: Any) -> Any:
    """The outermost node that is `node` alone (through single-child wrappers)."""
    while node.parentCtx is not None and len(tree._children(node.parentCtx)) == 1:
        node = node.parentCtx
    return node


def _between(node: Any, top: Any) -> list[Any]:
    """The ancestors of `node` up to (not including) `top`."""
    out: list[Any] = []
    if node is top:
        return out
    p = node.parentCtx
    while p is not None and p is not top:
        out.append(p)
        p = p.parentCtx
    return out


def _trace(kql: str, post: list[Any], names: list[str]) -> dict[str, str]:
    """For each of the rule's result columns, the column before the operators `post` that it
    is an unchanged copy of (project renames, group-by keys, arg_min/arg_max rows, joins' left
    side); columns computed on the way are left out."""
    current = {n: n for n in names}
    for op in reversed(post):
        name = tree.operator_name(op) or ""
        if name in ("project", "project-keep"):
            back: dict[str, str] = {}
            for item in _items(op):
                col, expr = _assigned(item)
                src = _plain_name(expr) if col else None
                if col and src:
                    back[col] = src
            current = {out: back[c] for out, c in current.items() if c in back}
        elif name == "project-rename":
            ren = {}
            for item in _items(op):
                col, expr = _assigned(item)
                src = _plain_name(expr)
                if col and src:
                    ren[col] = src
            current = {out: ren.get(c, c) for out, c in current.items()}
        elif name == "extend":
            made = {_assigned(i)[0] for i in _items(op)}
            current = {out: c for out, c in current.items() if c not in made}
        elif name == "summarize":
            keep: dict[str, str] = {}
            by = next((k for k in _kids(op) if node_kind(k) == "SummarizeOperatorByClause"), None)
            for item in _kids(by) if by is not None else []:
                col, expr = _assigned(item)
                src = _plain_name(expr)
                if col and src:
                    keep[col] = src
            every = False
            for item in _items(op):
                col, expr = _assigned(item)
                core = tree._core(expr)
                if node_kind(core) == "NamedFunctionCallExpression" and tree.call_name(core) in (
                        "arg_min", "arg_max", "take_any", "any"):
                    for arg in _kids(core)[1:]:
                        if _text(kql, arg).strip() == "*":
                            every = True
                        elif (n := _plain_name(arg)) is not None:
                            keep.setdefault(n, n)
            current = {out: keep.get(c, c) for out, c in current.items() if c in keep or every}
        elif name in ("where", "sort", "top", "take", "join", "lookup", "union", "serialize", "as"):
            continue
        elif name == "distinct":
            listed = {n for i in _items(op) if (n := _plain_name(i)) is not None}
            current = {out: c for out, c in current.items() if c in listed}
        else:
            return {}
    return current


def plan(kql: str, tables: set[str], result_columns: list[str] | None = None) -> Plan | None:
    """The per-row steps of `kql` and the rewritten queries evaluating them; None when the
    query does not parse or has no single tabular statement at its end."""
    root = tree.parse(kql)
    if root is None:
        return None
    statements = [n for n in tree.walk(root) if node_kind(n) == "QueryStatement"]
    if len(statements) != 1:
        return None
    final = statements[0]
    planner = _Planner(kql, root, tables)
    try:
        f = planner.flow(_kids(final)[-1])
    except (RecursionError, StopIteration):
        return None
    planner.dead = {id(op) for cut in f.cuts for op in cut.post}
    head, tail = planner.edited(0, final.start.start), planner.edited(final.stop.stop + 1, len(kql))
    outputs = []
    if f.alive:
        outputs.append(Output(head + planner.edited(final.start.start, final.stop.stop + 1) + tail, whole=True))
    for cut in f.cuts:
        post = [planner.post_step(op, part) for op, part in zip(cut.post, cut.parts, strict=True)]
        for i, step in enumerate(post):
            after = _trace(kql, cut.post[i + 1:], result_columns or [])
            step.carried = {src: col for col, src in after.items()}
        outputs.append(Output(head + planner.edited(cut.start, cut.stop) + tail, post,
                              _trace(kql, cut.post, result_columns or [])))
    return Plan(planner.steps, outputs)
