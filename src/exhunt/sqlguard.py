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
import re
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


#: Words that begin a statement other than a query. None appears as a keyword in a query the
#: translator writes (it quotes every column name), so finding one means the SQL is not one.
_STATEMENT_WORDS = frozenset({
    "insert", "update", "delete", "merge", "truncate", "copy", "export", "import", "attach", "detach", "use",
    "install", "load", "force", "pragma", "set", "reset", "create", "drop", "alter", "comment", "call",
    "checkpoint", "vacuum", "analyze", "begin", "commit", "rollback", "abort", "start", "prepare", "execute",
    "deallocate", "explain", "describe", "show", "summarize", "grant", "revoke",
})
_QUERY_START = frozenset({"select", "with", "from", "values", "("})
#: Strings, quoted names and comments: their words are no statement's.
_LEXEMES = re.compile(r"'[^']*(?:''[^']*)*'|\"[^\"]*(?:\"\"[^\"]*)*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)
_FIRST = re.compile(r"\s*(\(|[A-Za-z_]\w*)")
_WORDS = re.compile(r"[A-Za-z_]\w*")


def _quick_kind(sql: str) -> str | None:
    """statement_kind from the SQL's words alone: a millisecond for SQL DuckDB's parser takes a
    tenth of a second over. Strict: one query, and no statement keyword anywhere outside a
    string, quoted name or comment (where DuckDB's reading and this one differ, E'' escapes
    and nested comments, this one sees more words, never fewer)."""
    bare = _LEXEMES.sub(" ", sql)
    end = bare.rstrip().removesuffix(";")
    if ";" in end:
        return "more than one statement"
    start = _FIRST.match(end)
    first = start.group(1).lower() if start else ""
    if first not in _QUERY_START:
        return f"a statement beginning {first.upper() or 'with nothing'}"
    found = _STATEMENT_WORDS.intersection(_WORDS.findall(end.lower()))
    if found:
        return f"a statement containing {', '.join(sorted(w.upper() for w in found))}"
    return None


def statement_kind(con: duckdb.DuckDBPyConnection, sql: str, thorough: bool = True) -> str | None:
    """None when `sql` is exactly one query (SELECT); else what it is, in words.

    `thorough` also has DuckDB's parser say what the statement is; the tokenizer's check
    alone is used for SQL that passed this check when it was stored (the signed cache).
    """
    quick = _quick_kind(sql)
    if quick is not None or not thorough:
        return quick
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        return f"SQL DuckDB cannot parse ({_first_line(exc)})"
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
    # Every result fetched whole: one left pending blocks the connection's next register().
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
        template = json.loads(con.execute("SELECT json_serialize_sql('SELECT NULL')").fetchall()[0][0])
    except (duckdb.Error, TypeError, ValueError, IndexError):
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
            select = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(template)]).fetchall()[0][0]
            value = con.execute(select, {k: params[k] for k in named}).fetchall()[0][0]
        except (duckdb.Error, TypeError, IndexError):
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
