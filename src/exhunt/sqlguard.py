"""Checks on translated SQL before DuckDB runs it, using DuckDB's own parser.

A rule's SQL comes from the translator or from the translation cache; either way it
must be one SELECT (never COPY, ATTACH, INSTALL, SET, PRAGMA or a second statement),
and with file access off (Session.seal) a SELECT can read only the tables and the
inputs hunted in place. Its regular expressions are compiled here too, because
DuckDB's RE2 refuses some patterns only when a row reaches them: a rule that is
bound and run over empty tables (`rules validate`) would otherwise look fine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb

#: DuckDB functions whose second argument is an RE2 pattern (`~` and SIMILAR TO parse
#: to regexp_full_match / regexp_matches).
REGEX_FUNCTIONS = frozenset({
    "regexp_matches", "regexp_full_match", "regexp_extract", "regexp_extract_all", "regexp_replace",
    "regexp_split_to_array", "regexp_split_to_table", "string_split_regex", "str_split_regex",
})
#: Patterns checked per query at most (the shipped rules have a few dozen).
MAX_PATTERNS = 2000


def statement_kind(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """None when `sql` is exactly one SELECT statement; else what it is, in words."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        return f"SQL DuckDB cannot parse ({str(exc).splitlines()[0]})"
    if len(statements) != 1:
        return f"{len(statements)} statements"
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        return f"a {kind.name} statement"
    return None


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a parse tree (iteratively: a translation can nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _constant(node: dict[str, Any]) -> tuple[bool, set[str]]:
    """Whether an expression reads no column or subquery, and the parameters it names."""
    params: set[str] = set()
    for n in _nodes(node):
        cls = n.get("class")
        if cls in ("COLUMN_REF", "SUBQUERY", "LAMBDA", "STAR", "LAMBDA_REF", "WINDOW"):
            return False, set()
        if cls == "PARAMETER":
            params.add(str(n.get("identifier")))
    return True, params


def regex_problems(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(pattern, RE2's complaint) for each constant pattern in `sql` that RE2 refuses.

    Each pattern expression (a literal, a parameter, `'a' || regexp_escape('b')`...) is
    evaluated alone and then compiled by DuckDB on a one-row constant, exactly the
    engine the rule runs on. Patterns computed from columns are left to run time.
    """
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])  # type: ignore[index]
        template = json.loads(con.execute("SELECT json_serialize_sql('SELECT NULL')").fetchone()[0])  # type: ignore[index]
    except (duckdb.Error, TypeError, ValueError):
        return []
    if tree.get("error"):
        return []
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for node in _nodes(tree):
        if node.get("class") != "FUNCTION" or str(node.get("function_name", "")).lower() not in REGEX_FUNCTIONS:
            continue
        args = node.get("arguments") or []
        if len(args) < 2:
            continue
        expr = args[1].get("expression") if isinstance(args[1], dict) else None
        if not isinstance(expr, dict):
            continue
        constant, named = _constant(expr)
        if not constant or not named <= params.keys():
            continue
        template["statements"][0]["node"]["select_list"] = [expr]
        try:
            select = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(template)]).fetchone()[0]  # type: ignore[index]
            value = con.execute(select, {k: params[k] for k in named}).fetchone()[0]  # type: ignore[index]
        except (duckdb.Error, TypeError):
            continue
        if not isinstance(value, str) or value in seen:
            continue
        seen.add(value)
        try:
            con.execute("SELECT regexp_matches('', ?)", [value]).fetchall()
        except duckdb.Error as exc:
            out.append((value, _first_line(exc).removeprefix("Invalid Input Error: ")))
        if len(seen) >= MAX_PATTERNS:
            break
    return out


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
