"""Every workaround for what duckdb-kql cannot translate yet, in one place.

Analysts' KQL must run unchanged, so before a query reaches the translator the constructs it
rejects but Kusto accepts are rewritten into equivalents it does translate. Each rewrite edits
the query text only at the exact span of a parse-tree node (strings and comments are never
touched, and a column that happens to be named `makeset` stays a column):

- deprecated names: makeset, makelist, parsejson, argmax, argmin, columnifexists, arraylength,
  array_strcat, make_dictionary -> their current names (`RENAMES`);
- `extractjson`/`extract_json(path, text[, typeof(T)])` with a literal `$.a.b[0]['c']` path ->
  `tostring(parse_json(text).a.b[0]['c'])` (or `toT(...)`);
- `make_set(x, n)`, `make_list(x, n)` -> `array_slice(make_set(x), 0, n - 1)` (the translator
  drops the size limit; an unnamed one keeps its name `set_x`);
- `split(s, d, i)` -> `array_slice(split(s, d), i, i)` (Kusto returns a one-element array, or
  an empty one when `i` is out of range);
- `column_ifexists('X', d)` -> `['X']` when a table the query reads has the column X, else `(d)`;
- `ingestion_time()` -> `datetime(null)`: exhunt's tables keep no ingestion time (a note says so);
- `project-reorder A, B*` -> `project A, B..., <the other columns in input order>`; the input
  columns come from the caller (`columns_of`: the columns of the query up to that operator);
- `project-away A, A` -> `project-away A` (DuckDB refuses a name twice in EXCLUDE), and
  `project-away Initiating*` -> the input columns the wildcard matches;
- `X between ((t - 5min) .. 10min)` with a computed datetime lower bound -> `.. ((t - 5min) + 10min)`
  (the bound's type asked of the engine through `columns_of`);
- a parenthesised pipeline source `(union T, U) | ...` -> `union T, U | ...` (pipes are
  left-associative: the same query).

Functions the translator has no row for are added to its registry (`install`): `parse_command_line`
and `parse_xml` as DuckDB Python functions (`kql.udfs`, created on each connection by
`register_functions`), `bag_keys` and the aggregation `make_bag` as DuckDB SQL. Operators it lacks
(`top-nested`, `partition`, `evaluate bag_unpack`/`pivot`) run as SQL around its translations
(`kql.splice`). What is left (other evaluate plugins, `scan`, `make-series`...) gets an error in
plain words (`explain`). tests/test_kql_compat.py holds, for
each workaround, a canary asserting duckdb-kql still rejects the original construct: when one
fails, the translator learned it and the workaround can go.

`VERSION` is part of the translation cache's key (kqlcache): bump it when a rewrite changes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exhunt.errors import RuleError
from exhunt.kql import udfs
from exhunt.kql.tree import _children, call_name, name_of, node_kind, parse, tokens, walk

#: Part of the translation cache's key: bump it whenever a rewrite or an added function changes.
VERSION = "3"

#: Deprecated (or alternative) function names -> the names duckdb-kql translates.
RENAMES = {
    "makeset": "make_set", "makelist": "make_list", "parsejson": "parse_json", "argmax": "arg_max",
    "argmin": "arg_min", "columnifexists": "column_ifexists", "arraylength": "array_length",
    "array_strcat": "strcat_array", "make_dictionary": "make_bag",
}
#: Lower-case words whose presence makes a query worth parsing here (others pass untouched).
_TRIGGERS = frozenset({*RENAMES, "extractjson", "extract_json", "split", "column_ifexists", "make_set", "make_list",
                       "ingestion_time", "project-reorder", "project-away", "between", "!between"})
_JSON_PATH = re.compile(r"\$((?:\.[A-Za-z_]\w*|\[\d+\]|\['[^'\\]*'\]|\[\"[^\"\\]*\"\])*)")
_PATH_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]|\['([^'\\]*)'\]|\[\"([^\"\\]*)\"\]")
_TYPES = {"string": "tostring", "long": "tolong", "int": "toint", "real": "toreal", "double": "todouble",
          "bool": "tobool", "boolean": "tobool", "datetime": "todatetime", "timespan": "totimespan",
          "dynamic": "todynamic", "guid": "toguid", "decimal": "todecimal"}
#: Rounds of rewriting (nested constructs are rewritten innermost first, one level a round).
_ROUNDS = 16

#: Columns of a query's result (name, DuckDB type), by its KQL text (the caller translates and
#: describes it).
ColumnsOf = Callable[[str], list[tuple[str, str]]]
_TIMESPAN_LITERAL = re.compile(
    r"\d+(\.\d+)?(d|h|m|s|ms|min|sec|second|seconds|minute|minutes|hour|hours|day|days|tick|ticks|"
    r"microsecond|microseconds|millisecond|milliseconds)", re.IGNORECASE)


@dataclass
class Rewritten:
    """The query as duckdb-kql gets it, and what the user should know about the rewrite."""

    kql: str
    notes: list[str] = field(default_factory=list)


def span(node: Any) -> tuple[int, int]:
    return node.start.start, node.stop.stop + 1


def _text(kql: str, node: Any) -> str:
    a, b = span(node)
    return kql[a:b]


def _args(call: Any) -> list[Any]:
    """A function call's argument expressions."""
    out = []
    for kid in _children(call)[1:]:
        if node_kind(kid) == "ArgumentList":
            out += [k for k in _children(kid) if node_kind(k)]
        elif node_kind(kid):
            out.append(kid)
    return out


def _string_value(node: Any) -> str | None:
    from exhunt.kql.tree import _literal

    return _literal(node)


def quoted_name(name: str) -> str:
    """A column name as KQL text that is always a name: ['...']."""
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def _declared_functions(root: Any) -> set[str]:
    names = set()
    for n in walk(root):
        if node_kind(n) == "LetFunctionDeclaration":
            first = next((k for k in _children(n) if node_kind(k).startswith("Identifier")), None)
            if first is not None:
                names.add(name_of(first).lower())
    return names


def _enclosing(node: Any, kind: str) -> Any | None:
    p = node.parentCtx
    while p is not None and node_kind(p) != kind:
        p = p.parentCtx
    return p


class _Round:
    """One pass over the parse tree: the edits (start, end, text) it finds."""

    def __init__(self, kql: str, root: Any, schema: dict[str, list[str]], columns_of: ColumnsOf | None,
                 notes: list[str]) -> None:
        self.kql, self.root, self.schema, self.columns_of, self.notes = kql, root, schema, columns_of, notes
        self.declared = _declared_functions(root)
        self.edits: list[tuple[int, int, str]] = []

    def run(self) -> list[tuple[int, int, str]]:
        for n in walk(self.root):
            kind = node_kind(n)
            if kind == "NamedFunctionCallExpression":
                self._call(n)
            elif kind == "ProjectReorderOperator":
                self._reorder(n)
            elif kind == "ParenthesizedExpression":
                self._paren_source(n)
            elif kind == "ProjectAwayOperator":
                self._away_twice(n)
            elif kind == "BetweenEqualityExpression":
                self._between_span(n)
        # innermost first: an edit containing another waits for the next round
        inner = [e for e in self.edits
                 if not any(o is not e and e[0] <= o[0] and o[1] <= e[1] for o in self.edits)]
        return inner

    def _call(self, call: Any) -> None:
        name = call_name(call)
        if name in self.declared:
            return  # the query's own function of that name
        args = _args(call)
        if name in RENAMES:
            a, b = span(_children(call)[0])
            self.edits.append((a, b, RENAMES[name]))
        elif name in ("extractjson", "extract_json") and len(args) in (2, 3):
            self._extract_json(call, args)
        elif name in ("make_set", "make_list") and len(args) == 2:
            self._max_size(call, name, args)
        elif name == "split" and len(args) == 3:
            s, d, i = (_text(self.kql, a) for a in args)
            self.edits.append((*span(call), f"array_slice(split({s}, {d}), {i}, {i})"))
        elif name == "column_ifexists" and len(args) == 2:
            column = _string_value(args[0])
            if column is None:
                return
            known = {c for t in self._tables() for c in self.schema.get(t, [])}
            repl = quoted_name(column) if column in known else f"({_text(self.kql, args[1])})"
            self.edits.append((*span(call), repl))
        elif name == "ingestion_time" and not args:
            self.edits.append((*span(call), "datetime(null)"))
            note = "ingestion_time() is null here: exhunt's tables keep no ingestion time"
            if note not in self.notes:
                self.notes.append(note)

    def _max_size(self, call: Any, name: str, args: list[Any]) -> None:
        """`make_set(x, n)`: the translator drops the size limit; keep the first n elements.
        Unnamed, the column keeps Kusto's name (`set_x`, `list_x`) when x is a plain column."""
        value, size = (_text(self.kql, a) for a in args)
        repl = f"array_slice({name}({value}), 0, ({size}) - 1)"
        holder = call.parentCtx
        while holder is not None and node_kind(holder) != "NamedExpression" and len(_children(holder)) == 1:
            holder = holder.parentCtx
        if (holder is not None and node_kind(holder) == "NamedExpression" and len(_children(holder)) == 1
                and node_kind(holder.parentCtx) != "ArgumentExpression"):
            if node_kind(_core_of(args[0])) != "SimpleNameReference":
                return  # Kusto's own name for it is not ours to guess: left as the translator does it
            repl = f"{'set' if name == 'make_set' else 'list'}_{name_of(_core_of(args[0]))} = {repl}"
        self.edits.append((*span(call), repl))

    def _tables(self) -> list[str]:
        from exhunt.kql.tree import tables

        return [t for t in tables(self.kql) if t in self.schema]

    def _extract_json(self, call: Any, args: list[Any]) -> None:
        path = _string_value(args[0])
        m = _JSON_PATH.fullmatch(path or "")
        if m is None:
            return  # left for the translator to refuse, in plain words (explain)
        steps = []
        for step in _PATH_STEP.finditer(m.group(1)):
            key = step.group(1) or step.group(3) or step.group(4)
            steps.append(f"[{step.group(2)}]" if step.group(2) is not None else f"[{_kql_string(key or '')}]")
        convert = "tostring"
        if len(args) == 3:
            target = _text(self.kql, args[2]).replace(" ", "")
            t = re.fullmatch(r"typeof\((\w+)\)", target)
            if t is None or t.group(1).lower() not in _TYPES:
                return
            convert = _TYPES[t.group(1).lower()]
        value = f"parse_json({_text(self.kql, args[1])}){''.join(steps)}"
        self.edits.append((*span(call), f"{convert}({value})"))

    def _reorder(self, op: Any) -> None:
        words = [t.getText().lower() for t in walk(op) if not node_kind(t)]
        if any(w in ("asc", "desc", "granny-asc", "granny-desc") for w in words):
            raise RuleError("`project-reorder` with asc/desc (columns sorted by name) is not supported by the "
                            "local engine; name the columns in order, or run the query on Azure Data Explorer "
                            "or Log Analytics (--cluster/--database or --workspace)")
        columns = self._input_columns(op)
        if columns is None:
            return
        specs = [_reorder_spec(e) for e in walk(op) if node_kind(e) == "ProjectReorderExpression"]
        first: list[str] = []
        for spec in specs:
            for c in columns:
                if c not in first and (fnmatch.fnmatchcase(c, spec) if "*" in spec else c == spec):
                    first.append(c)
        order = first + [c for c in columns if c not in first]
        self.edits.append((*span(op), "project " + ", ".join(quoted_name(c) for c in order)))

    def _prefix(self, op: Any) -> str | None:
        """The query up to the piped operator holding `op`: the statements before its own,
        then its pipeline up to the pipe (None when `op` is not in a piped operator)."""
        piped = _enclosing(op, "PipedOperator")
        pipe = _enclosing(op, "PipeExpression")
        if piped is None or pipe is None or self.columns_of is None:
            return None
        statement = pipe
        while statement.parentCtx is not None and node_kind(statement.parentCtx) not in ("Query", "Top"):
            statement = statement.parentCtx
        before = self.kql[:statement.start.start] if node_kind(statement) == "Statement" else ""
        return before + self.kql[pipe.start.start:piped.start.start]

    def _input_columns(self, op: Any) -> list[str] | None:
        """The columns reaching a piped operator, from the caller."""
        prefix = self._prefix(op)
        if prefix is None or self.columns_of is None:
            return None
        return [name for name, _ in self.columns_of(prefix)]

    def _between_span(self, node: Any) -> None:
        """`T between ((t - 5min) .. 10min)`: Kusto reads a timespan upper bound after a datetime
        lower one as lower + span; the translator does so only for a datetime literal, else
        compares a time with a span. The lower bound's type comes from the engine."""
        parts = [k for k in _children(node) if node_kind(k)]
        if len(parts) != 2:
            return
        lo, hi = parts
        hi_text = _text(self.kql, hi).strip()
        if not _TIMESPAN_LITERAL.fullmatch(hi_text) or _TIMESPAN_LITERAL.fullmatch(_text(self.kql, lo).strip()):
            return
        if node_kind(_core_of(lo)) == "NamedFunctionCallExpression" and call_name(_core_of(lo)) == "datetime":
            return  # the translator does this one itself
        prefix = self._prefix(node)
        if prefix is None or self.columns_of is None:
            return
        lo_text = _text(self.kql, lo)
        try:
            typed = self.columns_of(f"{prefix}| project _exhunt_lo = ({lo_text}) | take 0")
        except RuleError:
            return
        if typed and typed[0][1].upper().startswith("TIMESTAMP"):
            self.edits.append((*span(hi), f"(({lo_text}) + {hi_text})"))

    def _away_twice(self, op: Any) -> None:
        """`project-away A, A`: DuckDB refuses a name twice in EXCLUDE; once removes the same.
        `project-away Initiating*`: the translator takes names only, so a wildcard becomes the
        input columns it matches."""
        kids = _children(op)
        specs = [_reorder_spec(k) for k in kids if node_kind(k) == "SimpleOrWildcardedNameReference"]
        if any("*" in spec for spec in specs):
            columns = self._input_columns(op)
            if columns is None:
                return
            gone = [c for c in columns if any(fnmatch.fnmatchcase(c, p) if "*" in p else c == p for p in specs)]
            first = next(k for k in kids if node_kind(k))
            if gone:
                self.edits.append((span(first)[0], span(op)[1], ", ".join(quoted_name(c) for c in gone)))
            else:  # nothing to remove: the operator passes its rows on unchanged
                self.edits.append((*span(op), "where true"))
            return
        seen: set[str] = set()
        for i, kid in enumerate(kids):
            if node_kind(kid) != "SimpleOrWildcardedNameReference":
                continue
            name = _reorder_spec(kid)
            if name in seen and i > 0:
                comma = kids[i - 1]  # the comma before it goes too
                self.edits.append((comma.symbol.start, span(kid)[1], ""))
            seen.add(name)

    def _paren_source(self, paren: Any) -> None:
        """`(union T, U) | ...` -> `union T, U | ...`: only a pipeline's source."""
        child, parent = paren, paren.parentCtx
        while parent is not None and node_kind(parent) != "PipeExpression" and len(_children(parent)) == 1:
            child, parent = parent, parent.parentCtx
        if parent is None or node_kind(parent) != "PipeExpression" or len(_children(parent)) < 2:
            return
        if _children(parent)[0] is not child:
            return
        inner = next(k for k in _children(paren) if node_kind(k))
        self.edits.append((*span(paren), _text(self.kql, inner)))


def _core_of(node: Any) -> Any:
    """The node an expression comes down to through one-child wrappers (a name stays a name)."""
    while node_kind(node) != "SimpleNameReference" and len(_children(node)) == 1 and node_kind(_children(node)[0]):
        node = _children(node)[0]
    return node


def _reorder_spec(expr: Any) -> str:
    """A project-reorder item's name or wildcard pattern (`Device*`)."""
    for n in walk(expr):
        if node_kind(n) in ("SimpleNameReference", "WildcardedName"):
            return name_of(n) if node_kind(n) == "SimpleNameReference" else str(n.getText())
    return str(expr.getText())


def _kql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def needed(kql: str) -> bool:
    """Does the query hold any word a rewrite looks for (cheap: the lexer, no parse)?

    A plain look for the words in the text comes first, only to skip the lexer (a tenth of a
    second for a long rule) when none occurs anywhere: what it finds is checked on tokens."""
    low = kql.lower()
    if not any(w in low for w in _TRIGGERS) and "union" not in low:
        return False
    words = [t.text.lower() for t in tokens(kql) if t.kind not in ("STRINGLITERAL", "COMMENT")]
    return any(w in _TRIGGERS or (w == "(" and nxt == "union") for w, nxt in zip(words, [*words[1:], ""], strict=True))


def rewrite(kql: str, schema: dict[str, list[str]], columns_of: ColumnsOf | None = None) -> Rewritten:
    """The query with every workaround applied (unchanged when none applies or it does not parse)."""
    out = Rewritten(kql)
    if not needed(kql):
        return out
    for _ in range(_ROUNDS):
        root = parse(out.kql)
        if root is None:
            return out
        edits = _Round(out.kql, root, schema, columns_of, out.notes).run()
        if not edits:
            return out
        text = out.kql
        for a, b, repl in sorted(edits, reverse=True):
            text = text[:a] + repl + text[b:]
        out.kql = text
    return out


#: Scalar functions added to the translator: KQL name -> (DuckDB SQL with {0}, {1}... for the
#: arguments, the argument counts). A dynamic result is JSON, as the translator's own are.
FUNCTIONS: dict[str, tuple[str, tuple[int, ...]]] = {
    "parse_command_line": ("TRY_CAST(exhunt_parse_command_line(CAST({0} AS VARCHAR), CAST({1} AS VARCHAR)) AS JSON)",
                           (2,)),
    "parse_xml": ("TRY_CAST(exhunt_parse_xml(CAST({0} AS VARCHAR)) AS JSON)", (1,)),
    "bag_keys": ("(CASE WHEN json_type(TRY_CAST({0} AS JSON)) = 'OBJECT' "
                 "THEN to_json(json_keys(TRY_CAST({0} AS JSON))) END)", (1,)),
}
#: Aggregations added: KQL name -> (DuckDB SQL, argument counts, the prefix of the column name
#: Kusto gives an unnamed one: `make_bag(d)` -> `bag_d`). make_bag merges the rows' bags (a key
#: seen in several rows keeps one of its values, as Kusto's does; bags nested under a key are
#: merged too, where Kusto keeps one); an empty input gives `{}`.
AGGREGATES: dict[str, tuple[str, tuple[int, ...], str]] = {
    "make_bag": ("coalesce(list_reduce(list(TRY_CAST({0} AS JSON)) FILTER (WHERE json_type(TRY_CAST({0} AS JSON)) "
                 "= 'OBJECT'), lambda a, b: json_merge_patch(a, b), '{{}}'::JSON), '{{}}'::JSON)", (1, 2), "bag"),
}
#: The DuckDB Python functions FUNCTIONS calls: name -> (function, argument count).
UDFS: dict[str, tuple[Callable[..., str | None], int]] = {
    "exhunt_parse_command_line": (udfs.parse_command_line, 2),
    "exhunt_parse_xml": (udfs.parse_xml, 1),
}


def install() -> None:
    """Add FUNCTIONS and AGGREGATES to duckdb-kql's registries (once; a name it learned is left
    to it: the canaries in tests/test_kql_compat.py then fail, and the row here can go)."""
    from duckdb_kql.translate import functions as registry

    for name, (template, arities) in FUNCTIONS.items():
        if name not in registry.SCALAR_FUNCTIONS:
            registry.SCALAR_FUNCTIONS[name] = registry.FunctionSpec(name, "udf", template, arities, note="exhunt")
    for name, (template, arities, prefix) in AGGREGATES.items():
        if name not in registry.AGGREGATE_FUNCTIONS:
            registry.AGGREGATE_FUNCTIONS[name] = registry.AggregateSpec(name, template, arities, name_prefix=prefix,
                                                                        note="exhunt")


def register_functions(con: Any) -> None:
    """Create UDFS on a DuckDB connection (a cursor of it shares them)."""
    import duckdb

    for name, (fn, argc) in UDFS.items():
        try:
            con.create_function(name, fn, ["VARCHAR"] * argc, "VARCHAR", null_handling="special", side_effects=False)
        except duckdb.CatalogException:  # created before on this database
            pass


#: duckdb-kql construct names -> what the user wrote, for the errors.
_CONSTRUCTS = {
    "TopNestedOperatorPart": "`top-nested`", "TopNestedOperator": "`top-nested`", "PartitionOperator": "`partition`",
    "ProjectReorderOperator": "`project-reorder`", "ScanOperator": "`scan`", "MakeSeriesOperator": "`make-series`",
}


def explain(message: str) -> str:
    """A duckdb-kql 'unsupported construct' message in plain words, naming what to do instead."""
    m = re.search(r"unsupported KQL construct '([^']+)'(?:.*?near '([^']*)')?", message)
    what = "a KQL construct"
    if m:
        construct, near = m.group(1), m.group(2) or ""
        kind, _, name = construct.partition(":")
        if kind in ("function", "aggregate") and name:
            what = f"the {'aggregation' if kind == 'aggregate' else 'function'} `{name}()`"
            arity = re.search(r"\(([^()]*takes[^()]*)\)", message)
            if arity:
                what += " with these arguments"
        elif construct == "EvaluateOperator":
            plugin = re.match(r"evaluate([A-Za-z_]\w*)", near)
            what = f"`evaluate {plugin.group(1)}`" if plugin else "`evaluate`"
        elif kind == "source":
            what = ("a parenthesised pipeline source" if name == "ParenthesizedExpression"
                    else "`" + re.sub(r"(Expression|Operator)$", "", name).lower() + "` as a pipeline source")
        elif construct in _CONSTRUCTS:
            what = _CONSTRUCTS[construct]
        else:
            words = re.sub(r"(Operator|Expression|Part)$", "", construct)
            what = "`" + re.sub(r"(?<!^)(?=[A-Z])", "-", words).lower() + "`"
    return (f"the query uses KQL the engine cannot run: {what} is not supported by the local engine; "
            f"run the query on Azure Data Explorer or "
            f"Log Analytics (--cluster/--database or --workspace), or rewrite that part")
