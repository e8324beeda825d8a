"""Operators duckdb-kql cannot translate, run as DuckDB SQL around the parts it does translate.

A query `Q | OP | R` whose own pipeline (not one inside a `let`, a join or a union leg) holds
`top-nested`, `partition`, `evaluate bag_unpack` or `evaluate pivot` becomes

    WITH "_exhunt_in1" AS (<Q, translated>), ... "_exhunt_out1" AS (<OP in SQL>)
    SELECT * FROM (<"_exhunt_out1 | R", translated>)

What OP holds in KQL (top-nested's aggregations, partition's sub-query, pivot's aggregation)
is translated by duckdb-kql too, over a table named after the CTE holding Q's rows, so every
expression keeps KQL's semantics; the SQL written here only ranks, joins and pivots. R may
hold another such operator (it goes through the same path). The `let` statements before the
query are kept in front of every part.

bag_unpack and pivot make one column per value found in the data, as Kusto does: the columns
are read off the rows when the query is translated (the translation is not stored across runs);
with no rows to read them off, what follows may name any column and the result is empty.
Not supported (a plain-words error instead): partition's `{ source | ... }` body, an output
schema (`: (...)`) after evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from exhunt.errors import RuleError
from exhunt.kql.compat import quoted_name, span
from exhunt.kql.tree import _children, name_of, node_kind, parse, walk
from exhunt.sqltext import ident as _q
from exhunt.sqltext import literal

#: Translates KQL over the loaded tables plus extra ones (name -> columns): (SQL, parameters).
ToSql = Callable[[str, dict[str, list[str]]], tuple[str, dict[str, Any]]]
#: Runs SQL with parameters and gives its result's columns (name, DuckDB type), or its rows.
Describe = Callable[[str, dict[str, Any]], list[tuple[str, str]]]
Rows = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]

#: The CTEs of the queries being spliced around the one being translated: a part of an inner
#: query reads them, so describing it needs them in front.
_OUTER: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("exhunt_splice_outer", default=())
_WORDS = re.compile(r"top-nested|partition|evaluate", re.IGNORECASE)
_PLUGINS = ("bag_unpack", "pivot")
#: Most columns bag_unpack or pivot may make from the data (keys and values are the data's: a
#: hostile input must not make a table of a million columns).
MAX_COLUMNS = 1000
#: Aggregations whose value over no rows is 0, not null (a pivot cell no row reached).
_ZERO_WHEN_EMPTY = frozenset({"count", "countif", "dcount", "dcountif", "sum", "sumif"})


@dataclass
class Plan:
    """A query cut around the first operator this module runs."""

    lets: str
    head: str
    op: Any
    tail: str
    kind: str


def _kind(op: Any) -> str | None:
    k = node_kind(op)
    if k == "TopNestedOperator":
        return "top-nested"
    if k == "PartitionOperator":
        return "partition"
    if k == "EvaluateOperator":
        call = next((n for n in walk(op) if node_kind(n) == "NamedFunctionCallExpression"), None)
        if call is not None:
            name = name_of(_children(call)[0]).lower()
            if name in _PLUGINS:
                return name
    return None


def find(kql: str) -> Plan | None:
    """The query cut around its pipeline's first top-nested, partition, bag_unpack or pivot."""
    if not _WORDS.search(kql):
        return None
    root = parse(kql)
    if root is None:
        return None
    query = next((n for n in walk(root) if node_kind(n) == "QueryStatement"), None)
    if query is None:
        return None
    pipe = next((n for n in walk(query) if node_kind(n) == "PipeExpression"), None)
    if pipe is None:
        return None
    for piped in (k for k in _children(pipe) if node_kind(k) == "PipedOperator"):
        op = next((n for n in walk(piped) if node_kind(n) in
                   ("TopNestedOperator", "PartitionOperator", "EvaluateOperator")), None)
        kind = _kind(op) if op is not None else None
        if kind is None:
            continue
        start, end = span(piped)
        q_start = span(query)[0]
        pipe_end = span(pipe)[1]
        return Plan(lets=kql[:q_start], head=kql[q_start:start].rstrip(), op=op,
                    tail=kql[end:pipe_end].strip(), kind=kind)
    return None


@dataclass
class _Level:
    """One top-nested clause."""

    limit: int | None
    key: str  # as written (`Name = expr` or `expr`)
    key_expr: str
    agg: str
    agg_name: str | None
    desc: bool
    others: str | None


class Splicer:
    """Builds the SQL of one query; `n` keeps CTE names unique across nested operators."""

    def __init__(self, kql: str, plan: Plan, to_sql: ToSql, describe: Describe, rows: Rows, n: int = 1,
                 extra: dict[str, list[str]] | None = None) -> None:
        self.kql, self.plan = kql, plan
        self.to_sql, self.describe, self.rows = to_sql, describe, rows
        self.n = n
        self.params: dict[str, Any] = {}
        self.outer = _OUTER.get()
        #: bag_unpack or pivot found nothing to make columns of: the rest of the query may name
        #: columns only data would bring (an empty result then, not an unknown column).
        self.no_data_columns = False
        self.ctes: list[tuple[str, str]] = []
        #: Tables the parts read besides the loaded ones (an enclosing query's CTEs, then ours).
        self.extra: dict[str, list[str]] = dict(extra or {})

    # -- helpers -----------------------------------------------------------------------

    def _name(self, what: str) -> str:
        return f"_exhunt_{what}{self.n}"

    def _merge(self, params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key in self.params and self.params[key] != value:
                raise RuleError(f"the query's parts need different values of the parameter {key}")
            self.params[key] = value

    def _translate(self, kql: str) -> str:
        token = _OUTER.set((*self.outer, *self.ctes))
        try:
            sql, params = self.to_sql(kql, self.extra)
        finally:
            _OUTER.reset(token)
        self._merge(params)
        return sql

    def _with(self, tail: str = "", outer: bool = True) -> str:
        """`tail` under this query's CTEs (and the enclosing queries' ones, to run it alone)."""
        ctes = ",\n".join(f"{_q(name)} AS ({sql})" for name, sql in [*(self.outer if outer else ()), *self.ctes])
        return f"WITH {ctes}\n{tail}" if ctes else tail

    def _columns(self, sql: str) -> list[tuple[str, str]]:
        return self.describe(self._with(f"SELECT * FROM ({sql}) AS _c LIMIT 0"), self.params)

    def _add(self, name: str, sql: str) -> list[str]:
        """Add a CTE, and make it a table the KQL parts can read; its column names."""
        cols = [c for c, _ in self._columns(sql)]
        self.ctes.append((name, sql))
        self.extra[name] = cols
        return cols

    # -- the query ---------------------------------------------------------------------

    def build(self) -> tuple[str, dict[str, Any]]:
        plan = self.plan
        source = self._name("in")
        in_cols = self._add(source, self._translate(plan.lets + plan.head))
        build = {"top-nested": self._top_nested, "partition": self._partition, "bag_unpack": self._bag_unpack,
                 "pivot": self._pivot}[plan.kind]
        out = self._name("out")
        self._add(out, build(source, in_cols))
        rest = f"{plan.lets}{quoted_name(out)}\n{plan.tail}"
        tail = f"SELECT * FROM {_q(out)}"
        if plan.tail:
            try:
                tail = self._translate(rest)
                if self.no_data_columns:
                    self._columns(tail)  # a column no row brought fails here, not when the rule runs
            except RuleError:
                if not self.no_data_columns:
                    raise
                tail = f"SELECT * FROM {_q(out)} WHERE false"
        return self._with(f"SELECT * FROM ({tail}) AS _exhunt_q", outer=False), self.params

    def _text(self, node: Any) -> str:
        a, b = span(node)
        return self.kql[a:b]

    # -- top-nested ----------------------------------------------------------------------

    def _top_nested(self, source: str, in_cols: list[str]) -> str:
        """Level i: the input summarised by the keys of levels 1..i, joined to the rows kept at
        level i-1 and ranked within each of them. `with others = V` adds, per row kept at level
        i-1, one row whose key is V and whose aggregation runs over the input rows of that group
        not kept at level i; deeper levels leave it as it is (their columns null)."""
        levels = [self._level(part) for part in _children(self.plan.op) if node_kind(part) == "TopNestedOperatorPart"]
        lets, src = self.plan.lets, quoted_name(source)
        keyed = ""
        if any(level.others is not None for level in levels):
            keyed = self._name("keyed")
            self._add(keyed, self._translate(f"{lets}{src}\n| extend " + ", ".join(
                f"_exhunt_k{i} = {level.key_expr}" for i, level in enumerate(levels, 1))))
        keys: list[str] = []
        prev = ""
        prev_keys: list[str] = []
        others: list[str] = []
        for i, level in enumerate(levels, 1):
            keys.append(level.key)
            sql = self._translate(f"{lets}{src}\n| summarize _exhunt_agg = {level.agg} by " + ", ".join(keys))
            names = [c for c, _ in self._columns(sql)]
            key_name = names[len(keys) - 1]
            out_agg = level.agg_name or f"aggregated_{key_name}"
            order = f'q."_exhunt_agg" {"DESC" if level.desc else "ASC"} NULLS LAST'
            part = f"PARTITION BY {', '.join('q.' + _q(k) for k in prev_keys)} " if prev_keys else ""
            rank = (f" QUALIFY row_number() OVER ({part}ORDER BY {order}) <= {level.limit}"
                    if level.limit is not None else "")
            if prev:
                on = " AND ".join(f"q.{_q(k)} IS NOT DISTINCT FROM p.{_q(k)}" for k in prev_keys)
                body = (f"SELECT p.*, q.{_q(key_name)}, q.\"_exhunt_agg\" AS {_q(out_agg)} FROM ({sql}) AS q "
                        f"JOIN {_q(prev)} AS p ON {on}{rank}")
            else:
                body = f"SELECT q.{_q(key_name)}, q.\"_exhunt_agg\" AS {_q(out_agg)} FROM ({sql}) AS q{rank}"
            kept = self._name(f"tn{i}_")
            self.ctes.append((kept, body))
            if level.others is not None:
                others.append(self._others(i, level, keyed, kept, prev, prev_keys, key_name, out_agg,
                                           names[: len(keys)]))
            prev, prev_keys = kept, names[: len(keys)]
        return " UNION ALL BY NAME ".join([f"SELECT * FROM {_q(prev)}", *(f"SELECT * FROM {_q(o)}" for o in others)])

    def _others(self, i: int, level: _Level, keyed: str, kept: str, prev: str, prev_keys: list[str], key_name: str,
                out_agg: str, level_keys: list[str]) -> str:
        """The `with others` rows of level i (a CTE name)."""
        parent = [f"r._exhunt_k{j} IS NOT DISTINCT FROM p.{_q(k)}" for j, k in enumerate(prev_keys, 1)]
        join = f" JOIN {_q(prev)} AS p ON {' AND '.join(parent)}" if prev else ""
        same = " AND ".join(f"q.{_q(k)} IS NOT DISTINCT FROM r._exhunt_k{j}" for j, k in enumerate(level_keys, 1))
        rest = self._name(f"oth{i}_rows")
        self._add(rest, f"SELECT r.* FROM {_q(keyed)} AS r{join} WHERE NOT EXISTS (SELECT 1 FROM {_q(kept)} AS q "
                        f"WHERE {same})")
        by = ", ".join(f"_exhunt_k{j}" for j in range(1, i))
        agg = self._translate(f"{self.plan.lets}{quoted_name(rest)}\n| summarize _exhunt_agg = {level.agg}"
                              + (f" by {by}" if by else ""))
        value = self._translate(f"{self.plan.lets}print _exhunt_v = {level.others}")
        row = f"(SELECT _exhunt_v FROM ({value}) AS v) AS {_q(key_name)}, o._exhunt_agg AS {_q(out_agg)}"
        if prev:
            on = " AND ".join(f"o._exhunt_k{j} IS NOT DISTINCT FROM p.{_q(k)}" for j, k in enumerate(prev_keys, 1))
            body = f"SELECT p.*, {row} FROM ({agg}) AS o JOIN {_q(prev)} AS p ON {on}"
        else:
            body = f"SELECT {row} FROM ({agg}) AS o WHERE EXISTS (SELECT 1 FROM {_q(rest)})"
        name = self._name(f"oth{i}_")
        self.ctes.append((name, body))
        return name

    def _level(self, part: Any) -> _Level:
        """One `top-nested [N] of Key [with others = V] by Agg [asc|desc]`."""
        limit_node = key_node = ordered = others = None
        seen_of = False
        for kid in _children(part):
            k = node_kind(kid)
            text = kid.getText().lower() if not k else ""
            if text == "of":
                seen_of = True
            elif k == "TopNestedOperatorWithOthersClause":
                others = self._text(next(n for n in _children(kid) if node_kind(n) == "NamedExpression"))
            elif k == "NamedExpression":
                if seen_of:
                    key_node = kid
                else:
                    limit_node = kid
            elif k == "OrderedExpression":
                ordered = kid
        if key_node is None or ordered is None:
            raise RuleError(f"cannot read the top-nested clause `{self._text(part)}`")
        limit = None
        if limit_node is not None:
            text = self._text(limit_node).strip()
            if not text.isdigit():
                raise RuleError(f"top-nested takes a whole number before `of`, not `{text}`")
            limit = int(text)
        agg_name, agg = self._named(next(k for k in _children(ordered) if node_kind(k) == "NamedExpression"))
        _, key_expr = self._named(key_node)
        sorting = next((k for k in _children(ordered) if node_kind(k) == "SortOrdering"), None)
        desc = not (sorting is not None and sorting.getText().lower().startswith("asc"))
        return _Level(limit, self._text(key_node), key_expr, agg, agg_name, desc, others)

    def _named(self, named: Any) -> tuple[str | None, str]:
        """A `Name = expression` (or a bare expression): its name, if given, and the expression."""
        clause = next((k for k in _children(named) if node_kind(k) == "NamedExpressionNameClause"), None)
        if clause is None:
            return None, self._text(named)
        expr = next(k for k in _children(named) if node_kind(k) == "UnnamedExpression")
        return name_of(next(k for k in _children(clause) if node_kind(k))), self._text(expr)

    # -- partition -----------------------------------------------------------------------

    def _partition(self, source: str, in_cols: list[str]) -> str:
        op = self.plan.op
        body = next((k for k in _children(op) if node_kind(k) == "PartitionOperatorSubExpressionBody"), None)
        column = next((k for k in _children(op) if node_kind(k) == "EntityExpression"), None)
        if body is None or column is None:
            raise RuleError("only `partition by Column (sub-query)` is supported by the local engine (not the "
                            "`{ source | ... }` form); run the query on Azure Data Explorer or Log Analytics")
        sub = next(k for k in _children(body) if node_kind(k) == "PipeSubExpression")
        col = name_of(next(n for n in walk(column) if node_kind(n).startswith("Identifier")))
        if col not in in_cols:
            raise RuleError(f"partition by `{col}`: the input has no such column")
        part = self._name("part")
        self.extra[part] = in_cols
        sub_sql = self._translate(f"{self.plan.lets}{quoted_name(part)}\n| {self._text(sub)}")
        del self.extra[part]
        c = _q(col)
        return (f"SELECT s.* FROM (SELECT DISTINCT {c} FROM {_q(source)}) AS g, LATERAL (WITH {_q(part)} AS "
                f"(SELECT * FROM {_q(source)} AS i WHERE i.{c} IS NOT DISTINCT FROM g.{c}) "
                f"SELECT * FROM ({sub_sql}) AS _s) AS s")

    # -- evaluate ------------------------------------------------------------------------

    def _arguments(self) -> list[Any]:
        op = self.plan.op
        if any(node_kind(k) == "EvaluateOperatorSchemaClause" for k in _children(op)):
            raise RuleError(f"`evaluate {self.plan.kind}(...) : (schema)` is not supported by the local engine: "
                            f"drop the output schema (the columns come from the data)")
        call = next(n for n in walk(op) if node_kind(n) == "NamedFunctionCallExpression")
        return [k for k in _children(call) if node_kind(k) == "ArgumentExpression"]

    def _string_arg(self, node: Any, what: str) -> str:
        from exhunt.kql.tree import _literal

        value = _literal(node)
        if value is None:
            raise RuleError(f"evaluate {self.plan.kind}: {what} must be a string literal, not `{self._text(node)}`")
        return value

    def _bag_unpack(self, source: str, in_cols: list[str]) -> str:
        args = self._arguments()
        if not args:
            raise RuleError("evaluate bag_unpack needs the column to unpack")
        bag = self._text(args[0]).strip()
        prefix = self._string_arg(args[1], "the column prefix") if len(args) > 1 else ""
        conflict = self._string_arg(args[2], "columnsConflict") if len(args) > 2 else "error"
        if conflict not in ("error", "replace_source", "keep_source"):
            raise RuleError(f"evaluate bag_unpack: columnsConflict is error, replace_source or keep_source, "
                            f"not {conflict!r}")
        ignored: list[str] = []
        if len(args) > 3:
            ignored = [str(v) for v in self._literal_list(args[3])]
        # the bag as JSON, by the translator (a column, or any expression over the row)
        marked = self._translate(f"{self.plan.lets}{quoted_name(source)}\n| extend _exhunt_bag = todynamic({bag})")
        src_col = bag if bag in in_cols else None
        rid = self._name("rows")
        self.ctes.append((rid, f"SELECT row_number() OVER () AS _exhunt_rid, * FROM ({marked}) AS m"))
        kv = self._name("kv")
        skip = (" AND j.key NOT IN (" + ", ".join(literal(v) for v in ignored) + ")") if ignored else ""
        self.ctes.append((kv, f"SELECT r._exhunt_rid, {literal(prefix)} || j.key AS _exhunt_k, "
                              f"j.value AS _exhunt_v FROM {_q(rid)} AS r, json_each(r._exhunt_bag) AS j "
                              f"WHERE json_type(r._exhunt_bag) = 'OBJECT'{skip}"))
        types = {str(k): list(t) for k, t in self.rows(
            self._with(f"SELECT _exhunt_k, list(DISTINCT json_type(_exhunt_v)) FROM {_q(kv)} GROUP BY 1"), self.params)}
        _cap(len(types), "bag_unpack", "distinct keys")
        keep = [c for c in in_cols if c != src_col]
        clash = sorted(set(types) & set(keep))
        if clash and conflict == "error":
            raise RuleError(f"evaluate bag_unpack: the bag's keys {', '.join(clash)} are columns of the input already "
                            f"(pass 'replace_source' or 'keep_source' as columnsConflict, or a prefix)")
        if conflict == "replace_source":
            keep = [c for c in keep if c not in types]
        unpacked = sorted(k for k in types if not (conflict == "keep_source" and k in keep))
        self.no_data_columns = not types
        if not unpacked:
            if not keep:  # the bag was the only column and held nothing: no column, no row
                return "SELECT NULL AS _exhunt_nothing WHERE false"
            return "SELECT " + ", ".join(f"r.{_q(c)}" for c in keep) + f" FROM {_q(rid)} AS r ORDER BY r._exhunt_rid"
        pv = self._name("pv")
        self.ctes.append((pv, f"PIVOT {_q(kv)} ON _exhunt_k IN ({', '.join(literal(k) for k in unpacked)}) "
                              f"USING first(_exhunt_v) GROUP BY _exhunt_rid"))
        cols = [f"r.{_q(c)}" for c in keep] + [_typed(f"pv.{_q(k)}", types[k], k) for k in unpacked]
        return (f"SELECT {', '.join(cols)} FROM {_q(rid)} AS r LEFT JOIN {_q(pv)} AS pv USING (_exhunt_rid) "
                f"ORDER BY r._exhunt_rid")

    def _literal_list(self, node: Any) -> list[Any]:
        """A constant array argument (`dynamic(["a", 'b'])`), evaluated by the translator."""
        import orjson

        text = self._text(node).strip()
        sql = self._translate(f"print _exhunt_x = todynamic({text})")
        rows = self.rows(f"SELECT CAST(_exhunt_x AS VARCHAR) FROM ({sql}) AS _x", self.params)
        value = orjson.loads(rows[0][0]) if rows and rows[0][0] is not None else None
        if not isinstance(value, list):
            raise RuleError(f"evaluate {self.plan.kind}: ignoredProperties must be an array, such as "
                            f"dynamic(['a', 'b']), not `{text}`")
        return value

    def _pivot(self, source: str, in_cols: list[str]) -> str:
        args = self._arguments()
        if not args:
            raise RuleError("evaluate pivot needs the column to pivot")
        pivot = self._text(args[0]).strip()
        agg = self._text(args[1]).strip() if len(args) > 1 else "count()"
        groups = [self._text(a).strip() for a in args[2:]]
        if not groups:
            used = {name_of(n) for a in args[:2] for n in walk(a) if node_kind(n) == "SimpleNameReference"}
            groups = [quoted_name(c) for c in in_cols if c not in used]
        by = ", ".join(["_exhunt_p = tostring(" + pivot + ")", *groups])
        sql = self._translate(f"{self.plan.lets}{quoted_name(source)}\n| summarize _exhunt_v = {agg} by {by}")
        names = [c for c, _ in self._columns(sql)]
        group_cols = [c for c in names if c not in ("_exhunt_p", "_exhunt_v")]
        grouped = self._name("agg")
        self.ctes.append((grouped, sql))
        values = [r[0] for r in self.rows(
            self._with(f"SELECT DISTINCT coalesce(_exhunt_p, '') FROM {_q(grouped)} ORDER BY 1"), self.params)]
        _cap(len(values), "pivot", "distinct values")
        clash = sorted(set(values) & set(group_cols))
        if clash:
            raise RuleError(f"evaluate pivot: the values {', '.join(clash)} are also names of the output's columns")
        zero = re.match(r"\s*([A-Za-z_]\w*)\s*\(", agg)
        fill = zero is not None and zero.group(1).lower() in _ZERO_WHEN_EMPTY
        gsel = [f"{_q(c)}" for c in group_cols]
        self.no_data_columns = not values
        if not values:
            return f"SELECT {', '.join(gsel) or '*'} FROM {_q(grouped)} WHERE false"
        pv = self._name("pv")
        group_by = f" GROUP BY {', '.join(gsel)}" if gsel else ""
        inner = ", ".join([*gsel, "coalesce(_exhunt_p, '') AS _exhunt_p", "_exhunt_v"])
        listed = ", ".join(literal(v) for v in values)
        self.ctes.append((pv, f"PIVOT (SELECT {inner} FROM {_q(grouped)}) ON _exhunt_p IN ({listed}) "
                              f"USING first(_exhunt_v){group_by}"))
        cells = [f"coalesce({_q(v)}, 0) AS {_q(v)}" if fill else _q(v) for v in values]
        return f"SELECT {', '.join([*gsel, *cells])} FROM {_q(pv)}"


def _cap(count: int, plugin: str, what: str) -> None:
    if count > MAX_COLUMNS:
        raise RuleError(f"evaluate {plugin} would make {count} columns from the data's {what} (at most "
                        f"{MAX_COLUMNS}): filter the rows first")


def _typed(expr: str, json_types: list[str], name: str) -> str:
    """An unpacked slot typed as Kusto types it: the slot's type when all its values share it,
    else dynamic (JSON)."""
    kinds = {t for t in json_types if t not in (None, "NULL")}
    if kinds == {"VARCHAR"}:
        sql = f"({expr} ->> '$')"
    elif kinds and kinds <= {"BIGINT", "UBIGINT"}:
        sql = f"TRY_CAST({expr} AS BIGINT)"
    elif kinds == {"DOUBLE"}:
        sql = f"TRY_CAST({expr} AS DOUBLE)"
    elif kinds == {"BOOLEAN"}:
        sql = f"TRY_CAST({expr} AS BOOLEAN)"
    else:
        sql = expr
    return f"{sql} AS {_q(name)}"


def splice(kql: str, plan: Plan, to_sql: ToSql, describe: Describe, rows: Rows,
           extra: dict[str, list[str]] | None = None) -> tuple[str, dict[str, Any]]:
    """The SQL (and parameters) of a query cut by `find`. A query that is the rest of another
    (it reads `_exhunt_outN`) numbers its own CTEs after N, so no name shadows another."""
    n = 1 + max((int(m) for m in re.findall(r"_exhunt_out(\d+)", kql)), default=0)
    try:
        return Splicer(kql, plan, to_sql, describe, rows, n, extra).build()
    except (StopIteration, AttributeError, IndexError, ValueError):  # a tree shape not foreseen
        a, _ = span(plan.op)
        line = kql.count("\n", 0, a) + 1
        column = a - (kql.rfind("\n", 0, a) + 1) + 1
        raise RuleError(f"cannot read the `{plan.kind}` operator (line {line}, column {column}): check its "
                        f"syntax, or run the query on Azure Data Explorer or Log Analytics") from None
