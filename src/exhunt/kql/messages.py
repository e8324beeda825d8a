"""Why a query cannot run, in KQL's words: what is wrong, naming the table, column, operator
or function, and where in the query (line and column, both counted from 1).

The translator (duckdb-kql) and the engine (DuckDB) describe failures in their own terms: a
parser's token list, a "Catalog Error" about a SQL table, a "Conversion Error" about a cast the
SQL made. The person running exhunt wrote KQL, so every such message is turned into one about
their KQL here; none of the engine's own wording reaches them (`engine` keeps the gist of an
unrecognised one, with the engine's vocabulary removed).
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import Any

from exhunt.kql import tree

#: Names Kusto deprecated whose replacement the local engine may run instead.
DEPRECATED = {
    "makeset": "make_set", "makelist": "make_list", "make_dictionary": "make_bag", "extractjson": "extract_json",
    "parsejson": "parse_json", "argmax": "arg_max", "argmin": "arg_min", "any": "take_any", "anyif": "take_anyif",
    "base64_encodestring": "base64_encode_tostring", "base64_decodestring": "base64_decode_tostring",
}
#: The engine's column types, as KQL names them.
_KQL_TYPES = {
    "VARCHAR": "string", "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime", "BIGINT": "long",
    "INTEGER": "int", "INT64": "long", "INT32": "int", "DOUBLE": "real", "FLOAT": "real", "BOOLEAN": "bool",
    "BOOL": "bool", "INTERVAL": "timespan", "JSON": "dynamic", "UUID": "guid", "DECIMAL": "decimal",
    "DATE": "datetime", "HUGEINT": "long", "UBIGINT": "long",
}
#: The engine's functions the translation uses, as the query spells them.
_SQL_SPELLINGS = {
    "regexp_matches": "matches regex", "regexp_full_match": "matches regex", "regexp_extract": "extract",
    "lower": "tolower", "upper": "toupper", "length": "strlen", "date_trunc": "bin", "time_bucket": "bin",
    "starts_with": "startswith", "ends_with": "endswith", "~~": "like", "~~*": "like", "concat": "strcat",
}
#: The engine's own vocabulary: never shown (`engine` drops a message's head naming it).
_ENGINE_WORDS = re.compile(r"\b(?:duckdb|DuckDB|SQL|Catalog Error|Binder Error|Parser Error|Conversion Error)\b")


def at(kql: str, offset: int) -> str:
    """`line L, column C` of a character offset (both from 1)."""
    line = kql.count("\n", 0, offset) + 1
    column = offset - (kql.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def find(kql: str, name: str, kinds: Iterable[str] = ()) -> str | None:
    """Where the query first spells `name` as a token (a name, keyword or `['escaped']` name;
    never inside a string or a comment): `line L, column C`, else None."""
    wanted = set(kinds)
    low = name.lower()
    for t in tree.tokens(kql):
        if t.kind in ("STRINGLITERAL", "COMMENT") and not (t.kind == "STRINGLITERAL" and _bracketed(kql, t)):
            continue
        if wanted and t.kind not in wanted:
            continue
        text = t.text
        if t.kind == "STRINGLITERAL":
            text = tree._string(text)
        if text == name or (not wanted and text.lower() == low and t.kind != "IDENTIFIER"):
            return at(kql, t.start)
    return None


def _bracketed(kql: str, t: tree.Token) -> bool:
    """Is this string literal an escaped name (`['a b']`)?"""
    return kql[:t.start].rstrip().endswith("[")


def located(kql: str, name: str) -> str:
    """` (line L, column C)` where the query spells `name`, or nothing."""
    spot = find(kql, name)
    return f" ({spot})" if spot else ""


def let_names(kql: str) -> list[str]:
    """The names the query's `let` statements bind (read from its tokens: works on a query
    that does not parse)."""
    toks = tree.tokens(kql)
    out = []
    for i, t in enumerate(toks[:-1]):
        if t.text == "let" and toks[i + 1].kind != "COMMENT":
            out.append(tree._string(toks[i + 1].text) if toks[i + 1].kind == "STRINGLITERAL" else toks[i + 1].text)
    return out


def _nearest(name: str, names: Iterable[str], cutoff: float = 0.75) -> str | None:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=cutoff)
    return close[0] if close else None


def unknown_table(kql: str, name: str, tables: Iterable[str]) -> str:
    """A table the query reads that the engine does not have: the nearest known table or let
    name, and where the query names it."""
    lets = let_names(kql)
    known = sorted(tables)
    guess = _nearest(name, lets, 0.6)
    if guess is not None:
        hint = f"; did you mean `{guess}`, which the query's `let` binds?"
    else:
        guess = _nearest(name, known)
        hint = f"; did you mean `{guess}`?" if guess else f" (known tables: {', '.join(known)})"
    return f"table `{name}` does not exist{located(kql, name)}{hint}"


# -- the translator's errors ------------------------------------------------------------------


def translator(kql: str, exc: Exception, tables: Iterable[str]) -> str:
    """A duckdb-kql error (the query does not parse, or uses what it cannot translate) in KQL's words."""
    import duckdb_kql

    if isinstance(exc, duckdb_kql.KqlSyntaxError):
        return syntax(kql, exc)
    if isinstance(exc, duckdb_kql.KqlUnsupportedError):
        return unsupported(kql, exc.construct, exc.span, exc.hint)
    if isinstance(exc, duckdb_kql.KqlSchemaError):
        name = str(exc.name)
        if name not in set(tables) and name not in let_names(kql) and "unknown table" in str(exc.hint or "") + str(exc):
            return unknown_table(kql, name, tables)
        hint = f": {_plain(exc.hint)}" if exc.hint else ""
        return f"`{name}`{located(kql, name)} cannot be used here{hint}"
    text = str(exc)
    m = re.search(r"unknown table '?([A-Za-z_]\w*)", text)
    if m and m.group(1) not in set(tables):
        return unknown_table(kql, m.group(1), tables)
    return f"the query cannot be translated: {_plain(text)}"


def _plain(text: str) -> str:
    """A translator hint without the engine's name or the translator's file names."""
    text = re.sub(r";?\s*see [\w/]+\.py", "", text)
    text = re.sub(r"no DuckDB mapping(?: in this wave)?|not implemented in this wave", "not implemented", text)
    return _ENGINE_WORDS.sub("engine", text).strip()


def _span(kql: str, span: Any) -> str | None:
    """`line L, column C` of a translator span (its columns count from 0)."""
    if span is None:
        return None
    return f"line {span.line}, column {span.column + 1}"


def syntax(kql: str, exc: Any) -> str:
    """Why the query does not parse, and where."""
    words = [t for t in tree.tokens(kql) if t.kind != "COMMENT"]
    if not words:
        empty = "holds only comments" if tree.tokens(kql) else "is empty"
        return f"the query {empty}: there is no KQL to run"
    diags = list(getattr(exc, "diagnostics", None) or [])
    spot = _span(kql, diags[0].span) if diags else None
    said = diags[0].message if diags else str(exc)
    where = f" at {spot}" if spot else ""
    m = re.search(r"token recognition error at: '(.*)'$", said, re.S)
    if m:
        bad = m.group(1)
        if bad[:1] in ("'", '"') or bad[:2] in ("@'", '@"', "h'", 'h"', "H'", 'H"'):
            return f"unterminated string{where}: it has no closing quote"
        char = bad[:1]
        if char and not char.isascii():
            uname = unicodedata.name(char, "unknown character")
            return (f"character `{char}` (U+{ord(char):04X} {uname}){where} is not allowed in a KQL name: names "
                    "are ASCII letters, digits and `_` (a look-alike of a Latin letter? quote other names as ['...'])")
        return f"unexpected character `{_shown(bad[:20])}`{where}"
    opened = _unclosed(kql)
    if opened is not None:
        fault = "is never closed" if kql[opened] in "([{" else "closes nothing"
        return f"unbalanced brackets: `{kql[opened]}` at {at(kql, opened)} {fault}"
    m = re.search(r"(?:mismatched|extraneous) input '(.*?)' expecting", said) or \
        re.search(r"no viable alternative at input '(.*?)'$", said)
    if m and m.group(1) == "<EOF>":
        return f"the query ends too early{where}: an operator or expression is incomplete"
    if m:
        near = m.group(1)[-30:]
        return f"the query does not parse{where}: unexpected `{_shown(near)}`"
    m = re.search(r"missing '(.*?)' at '(.*?)'", said)
    if m:
        return f"the query does not parse{where}: `{_shown(m.group(1))}` expected before `{_shown(m.group(2))}`"
    return f"the query does not parse{where}"


def _shown(text: str) -> str:
    """Query text shown inside a message: one line, printable."""
    return "".join(c if c.isprintable() else " " for c in text).replace("`", "'")


def _unclosed(kql: str) -> int | None:
    """Offset of the first `(`, `[` or `{` (outside strings and comments) that is never closed,
    or of a closing one with no opening; None when they balance."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[tuple[str, int]] = []
    for t in tree.tokens(kql):
        if t.text in ("(", "[", "{"):
            stack.append((t.text, t.start))
        elif t.text in pairs:
            if not stack or stack[-1][0] != pairs[t.text]:
                return t.start
            stack.pop()
    return stack[0][1] if stack else None


def unsupported(kql: str, construct: str, span: Any = None, hint: str | None = None) -> str:
    """A KQL construct duckdb-kql recognises but does not translate."""
    spot = _span(kql, span)
    kind, _, name = construct.partition(":")
    if kind in ("function", "aggregate") and name:
        spot = spot or find(kql, name)
        where = f" ({spot})" if spot else ""
        if name.lower() in DEPRECATED:
            return f"`{name}`{where} is deprecated in Kusto: use `{DEPRECATED[name.lower()]}` instead"
        m = re.search(r"takes \(([\d, ]*)\) argument\(s\), got (\d+)", hint or "")
        if m:
            counts = [c.strip() for c in m.group(1).split(",") if c.strip()]
            takes = " or ".join(counts) if counts else "a different number of"
            return f"function `{name}`{where} takes {takes} argument(s), not {m.group(2)}"
        return f"function `{name}` is not supported by the local engine{where}"
    if kind == "let function":
        spot = spot or find(kql, name)
        where = f" ({spot})" if spot else ""
        return (f"`let {name}`{where} defines a function returning a table, which the local engine does not "
                "support: write its body where it is used")
    if kind.startswith("regex"):
        return (f"a regular expression{f' ({spot})' if spot else ''} uses look-around `{name}`, which RE2 "
                "(the regex engine of both Kusto and the local engine) cannot run")
    if re.fullmatch(r"[A-Z]\w*(?:Expression|Operator|Statement)", name or kind):
        # a grammar rule's name: `ExternalDataExpression` is KQL's `externaldata`
        name = re.sub(r"(Expression|Operator|Statement)$", "", name or kind).lower()
    spot = spot or find(kql, name or kind)
    where = f" ({spot})" if spot else ""
    because = re.sub(r"\s*;?\s*near '.*'$", "", _plain(hint or ""), flags=re.S)
    because = f": {because}" if because and "not implemented" not in because else ""
    return f"`{name or kind}`{where} is not supported by the local engine{because}"


# -- the engine's errors ----------------------------------------------------------------------


def kql_type(sql_type: str) -> str:
    """The KQL name of an engine column type (`VARCHAR` -> string)."""
    base = sql_type.strip().upper()
    return _KQL_TYPES.get(base, _KQL_TYPES.get(base.split("(")[0], "dynamic" if base.endswith("[]") else base.lower()))


def _words(kql: str) -> set[str]:
    return {t.text for t in tree.tokens(kql) if t.kind not in ("STRINGLITERAL", "COMMENT")}


def _first_function(kql: str, names: Iterable[str], within: Iterable[str] = ()) -> tuple[str, str] | None:
    """The first call in the query of one of `names` (inside one of the operators `within`, when
    given): (name, `line L, column C`)."""
    wanted = {n.lower() for n in names}
    ops = set(within)
    toks = tree.tokens(kql)
    inside = not ops
    for i, t in enumerate(toks[:-1]):
        if ops and i > 0 and toks[i - 1].text == "|":
            inside = t.text in ops
        named = t.kind not in ("STRINGLITERAL", "COMMENT") and t.text.lower() in wanted
        if inside and named and toks[i + 1].text == "(":
            return t.text, at(kql, t.start)
    return None


def _operators(kql: str, names: Iterable[str]) -> list[str]:
    """`line L, column C` of each of the query's operators spelled as one of `names`."""
    wanted = set(names)
    toks = tree.tokens(kql)
    return [at(kql, toks[i + 1].start) for i, t in enumerate(toks[:-1]) if t.text == "|" and toks[i + 1].text in wanted]


def engine(kql: str, text: str, tables: Iterable[str]) -> str:
    """An engine failure (its message's first line) in KQL's words."""
    head, _, rest = text.partition(": ")
    rest = rest or head
    m = re.search(r"Table with name (\S+?) does not exist", text)
    if m:
        name = m.group(1).strip('"')
        if name in let_names(kql):
            return f"the query's `let {name}` cannot be used as a table here{located(kql, name)}"
        return unknown_table(kql, name, tables)
    m = re.search(r"(?:Scalar|Aggregate|Table) Function with name (\S+?) does not exist", text)
    if m:
        name = m.group(1).strip('"')
        return f"function `{name}` is not supported by the local engine{located(kql, name)}"
    m = re.search(r"Cannot compare values of type (.+?) and type (.+?)(?: -|$)", text)
    if m:
        a, b = kql_type(m.group(1)), kql_type(m.group(2))
        return (f"the query compares a {a} with a {b}, which KQL does not convert implicitly: convert one side "
                f"(todatetime(), tolong(), tostring()...)")
    m = re.search(r"No function matches the given name and argument types '([^'(]+)\((.*?)\)'", text)
    if m:
        name = m.group(1)
        types = ", ".join(kql_type(t) for t in m.group(2).split(", ") if t)
        kql_name = _SQL_SPELLINGS.get(name.lower())
        if kql_name is not None:
            what = f"`{kql_name}`"
        elif name[:1].isalpha() and find(kql, name):
            what = f"function `{name}`{located(kql, name)}"
        elif not name[:1].isalpha() and name in _words(kql):
            what = f"operator `{name}`"
        else:  # a name of the translation's, not of the query's
            what = "a function or operator of the query"
        return f"{what} cannot take values of type ({types}): convert them first (tolong(), tostring()...)"
    if "cannot contain aggregates" in text or "aggregate function calls cannot be nested" in text or \
            ("aggregate function" in text.lower() and "not allowed" in text.lower()):
        call = _first_function(kql, tree.MANY_ROWS, within=("where", "filter", "extend", "project"))
        what = f"`{call[0]}()` ({call[1]})" if call else "an aggregation"
        return f"{what} is used outside `summarize`: aggregations belong in summarize; filter on their result after it"
    if "LIMIT/OFFSET cannot be negative" in text or ("LIMIT" in text and "negative" in text):
        spots = _operators(kql, ("take", "limit", "top", "sample"))
        return f"`take`/`limit`{f' ({spots[0]})' if spots else ''} needs a row count of zero or more"
    m = re.search(r"Could not convert string '(.*?)' to BOOL(?: when casting from source column (\S+))?", text)
    if m:
        spots = _operators(kql, ("where", "filter"))
        what = f"column `{m.group(2)}` holds text" if m.group(2) else f"it got the text '{_shown(m.group(1))}'"
        return (f"`where`{f' ({spots[0]})' if spots else ''} needs a true/false condition, but {what}: compare it "
                "(==, has, contains...) to get one")
    m = re.search(r"Could not convert string '(.*?)' to (\w+)", text) or \
        re.search(r'invalid (timestamp|date|interval)\w* field format: "(.*?)"', text)
    if m:
        value, kind = (m.group(1), kql_type(m.group(2))) if m.re.pattern.startswith("Could") else \
            (m.group(2), {"interval": "timespan"}.get(m.group(1), "datetime"))
        return _conversion(kql, value, kind)
    m = re.search(r'(?:[Cc]olumn|Alias) (?:with name )?"(.+?)"(?= not found| exists| referenced| cannot|$)', text)
    if m:
        name = m.group(1)
        return f"column `{name}`{located(kql, name)} does not exist where the query uses it"
    if "Parser Error" in text or "syntax error" in text:
        return ("the local engine cannot run this query's translation (a limitation of the translator, "
                "not an error in the KQL)")
    m = re.search(r'Could not decode string "(.*?)" as base64', text)
    if m:
        call = _first_function(kql, ("base64_decode_tostring", "base64_decode_toarray", "base64_decodestring"))
        what = f"`{call[0]}` ({call[1]})" if call else "a base64 decoding"
        return (f"{what} got '{_shown(m.group(1)[:60])}', which is not base64: Kusto would give an empty "
                "result, the local engine refuses (a limitation of the translator); check the value first, "
                "e.g. `where Column matches regex \"^[A-Za-z0-9+/]*={0,2}$\"`")
    if "Out of Range" in head or "overflow" in text.lower():
        return f"a number is out of range while the query runs: {_ENGINE_WORDS.sub('engine', rest)}"
    return f"the query cannot run: {_ENGINE_WORDS.sub('engine', rest)}"


def untranslatable(why: str) -> str:
    """The translation of a valid query that the engine cannot take (the translator's limit)."""
    if "depth" in why:
        return ("the query is too large or nested too deeply for the local engine (its translation passes the "
                "engine's expression depth limit): split long lists or conditions")
    return "the local engine cannot run this query's translation (a limitation of the translator, not a KQL error)"


#: Cheap signs, in the query text, of what `refusals` looks for: only a query showing one is
#: parsed or lexed again (a translation's parse costs 0.1-1 s; these cost microseconds).
_CONSTANT_WHERE = re.compile(r"\b(?:where|filter)\s+(?:[\"'0-9.-]|[@hH][\"']|```|~~~)")
_DATETIME = re.compile(r"\bdatetime\s*\(\s*([^)]*)\)")


def refusals(kql: str) -> list[str]:
    """What Kusto refuses before running a query, which the local engine would run anyway:
    a `where` on a constant that is not true/false (`where "text"`, `where 1`), a datetime
    literal that is no date (`datetime(2026-02-30)`)."""
    out = []
    if _CONSTANT_WHERE.search(kql):
        root = tree.parse(kql)
        if root is not None:
            out += where_predicates(kql, root)
    if any(_no_date(m.group(1)) for m in _DATETIME.finditer(kql)):
        out += datetime_literals(kql)
    return out


def _no_date(inner: str) -> bool:
    """Is the inside of `datetime(...)` clearly no date: an impossible ISO day or month, or no
    digit at all (any other spelling is left to the translator, which knows Kusto's formats)?"""
    inner = inner.strip().strip("\"'").strip()
    if not any(c.isdigit() for c in inner):
        return inner.lower() != "null"
    m = re.match(r"(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)", inner)
    if m:
        try:
            date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return True
    return False


def datetime_literals(kql: str) -> list[str]:
    """The query's `datetime(...)` literals that are clearly no date (`_no_date`)."""
    out = []
    for t in tree.tokens(kql):
        if t.kind == "DATETIMELITERAL" and _no_date(t.text[t.text.find("(") + 1:t.text.rfind(")")]):
            out.append(f"`{_shown(t.text[:60])}` ({at(kql, t.start)}) is not a valid date and time "
                       "(e.g. datetime(2026-03-01T10:00:00Z))")
    return out


def _conversion(kql: str, value: str, kind: str) -> str:
    """A text the engine could not turn into a `kind`: a literal of the query compared with a
    column of that type (which KQL refuses), else a value of the data."""
    shown = _shown(value[:60])
    toks = tree.tokens(kql)
    for i, t in enumerate(toks):
        if t.kind == "STRINGLITERAL" and tree._string(t.text) == value and not _bracketed(kql, t):
            before = toks[i - 2].text if i >= 2 and toks[i - 1].text in _COMPARISONS else None
            what = f"`{before}` (a {kind})" if before else f"a {kind}"
            return (f"{what} is compared with the string \"{shown}\" ({at(kql, t.start)}): KQL does not turn a "
                    f"string into a {kind} implicitly; write a {kind} value, or convert one side")
    return (f"the value '{shown}' of the data is not a valid {kind}, and the query uses it as one: KQL does not "
            f"convert a string implicitly; convert it with to{_TO.get(kind, kind)}(), which gives null for it as "
            "Kusto does")


#: Comparison operators after which a literal is compared with the name before them.
_COMPARISONS = frozenset({"==", "!=", "<", ">", "<=", ">=", "<>", "=~", "!~"})
_TO = {"long": "long", "int": "int", "real": "real", "datetime": "datetime", "timespan": "timespan", "bool": "bool"}


def where_predicates(kql: str, root: Any) -> list[str]:
    """`where` conditions that are a constant other than true/false, which Kusto refuses."""
    out = []
    for node in tree.walk(root):
        if tree.node_kind(node) != "WhereOperator":
            continue
        preds = [k for k in tree._children(node) if tree.node_kind(k)]
        if not preds:
            continue
        core = tree._core(preds[-1])
        kind = tree.node_kind(core)
        if kind.endswith("LiteralExpression") and kind not in ("BooleanLiteralExpression", "NullLiteralExpression"):
            start = core.start
            offset = _offset(kql, start.line, start.column)
            value = _shown(str(core.getText())[:40])
            what = "the string" if kind == "StringLiteralExpression" else "the constant"
            out.append(f"`where` needs a true/false condition, but {what} `{value}` ({at(kql, offset)}) is none: "
                       "compare a column with it (e.g. `where Column has \"...\"`)")
    return out


def _offset(kql: str, line: int, column: int) -> int:
    """Offset of an ANTLR position (line from 1, column from 0)."""
    lines = kql.split("\n")
    return sum(len(x) + 1 for x in lines[:line - 1]) + column
