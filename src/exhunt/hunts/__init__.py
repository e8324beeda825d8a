"""Named hunting queries: the rule guides' investigation queries as `.kql` files with parameters.

A hunt file is a KQL query after a header of `//` comments::

    // name: agent-config-writes
    // title: one line
    // description: one paragraph
    // rules: slug, slug
    // param Host: string = "" -- what it is; empty: every server
    // param Pid: long -- no default: required

The query reads each parameter as a name nothing in it binds. `bind` puts one `let` per
parameter before the query, its value written as a typed KQL literal
(exhunt.backends.kqltext), so a value never becomes query text: quotes, `;`, `|` and line
breaks stay inside the literal. A string default is a JSON string; other defaults are written
as on the command line (`2h`, `6604`) or `null`. The time range is the command's --from/--to.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from exhunt import timespan
from exhunt.backends import kqltext
from exhunt.errors import RuleError, UsageError

#: Parameter types a hunt may declare (KQL's scalar types that have a literal).
TYPES = ("string", "long", "real", "bool", "datetime", "timespan")
#: Words `exhunt hunt` takes as its subcommands: no hunt may be named so.
RESERVED = frozenset({"list", "show", "run"})

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM = re.compile(r"^param\s+(?P<name>\S+?)\s*:\s*(?P<type>\w+)\s*"
                    r"(?:=\s*(?P<default>.*?))?\s*(?:--\s*(?P<help>.*))?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_FIELDS = ("name", "title", "description", "rules")


@dataclass(frozen=True)
class Param:
    """One parameter: its KQL type, its default (None: required) and what it means."""

    name: str
    type: str
    default: Any
    required: bool
    help: str = ""

    def shown_default(self) -> str:
        """The default as the command line would give it (`""` for an empty string)."""
        if self.required:
            return "(required)"
        if self.default is None:
            return "null"
        if self.type == "string":
            return json.dumps(self.default)
        return str(self.given_form(self.default))

    @staticmethod
    def given_form(value: Any) -> str:
        if isinstance(value, timedelta):
            return timespan.short(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


@dataclass(frozen=True)
class Hunt:
    """A named hunting query: header fields, parameters, and the query text after the header."""

    name: str
    title: str
    description: str
    rules: tuple[str, ...]
    params: tuple[Param, ...]
    query: str
    text: str

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def convert(value: str, kind: str, what: str) -> Any:
    """A parameter's text (as given to --param) as a value of KQL type `kind`; UsageError names `what`."""
    text = value.strip()
    if kind == "string":
        return value
    if kind == "long":
        if not _INTEGER.match(text) or not -(1 << 63) <= int(text) < (1 << 63):
            raise UsageError(f"{what}: {value!r} is not a long (a whole number)")
        return int(text)
    if kind == "real":
        try:
            number = float(text)
        except ValueError:
            raise UsageError(f"{what}: {value!r} is not a real (a number)") from None
        if not math.isfinite(number):
            raise UsageError(f"{what}: {value!r} is not a finite number")
        return number
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise UsageError(f"{what}: {value!r} is not a bool (true or false)")
        return text.lower() == "true"
    if kind == "datetime":
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"{what}: {value!r} is not an ISO-8601 date-time (e.g. 2026-11-21T02:17:09Z)") from None
        return kqltext.naive_utc(moment)
    if kind == "timespan":
        try:
            return timespan.parse(text)
        except ValueError as exc:
            raise UsageError(f"{what}: {exc}") from None
    raise UsageError(f"{what}: no parameter type {kind!r}")


def parse(text: str, origin: str) -> Hunt:
    """A hunt file's text; a RuleError naming `origin` and the line for a bad header."""
    fields: dict[str, str] = {}
    params: list[Param] = []
    lines = text.splitlines()
    body_at = len(lines)
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped.startswith("//"):
            body_at = number - 1
            break
        content = stripped[2:].strip()
        where = f"{origin}:{number}"
        if content.startswith("param ") or content == "param":
            params.append(_param(content, where, {p.name for p in params}))
            continue
        key, sep, value = content.partition(":")
        if not sep or key.strip() not in _FIELDS:
            raise RuleError(f"{where}: a header line is `// {' | '.join(_FIELDS)}: ...` "
                            "or `// param NAME: TYPE [= DEFAULT]`")
        if key.strip() in fields:
            raise RuleError(f"{where}: {key.strip()} given twice")
        fields[key.strip()] = value.strip()
    for key in _FIELDS:
        if not fields.get(key):
            raise RuleError(f"{origin}: the header has no `// {key}:` line")
    name = fields["name"]
    if not _NAME.match(name) or name in RESERVED:
        raise RuleError(f"{origin}: {name!r} cannot name a hunt (lower-case letters, digits and dashes; "
                        f"not {', '.join(sorted(RESERVED))})")
    query = "\n".join(lines[body_at:]).strip()
    if not query:
        raise RuleError(f"{origin}: no query after the header")
    from exhunt.kql import tree

    try:
        free = set(tree.tables(query))
    except Exception as exc:
        raise RuleError(f"{origin}: the query is not valid KQL: {exc}") from None
    for p in params:
        if p.name not in free:
            raise RuleError(f"{origin}: the parameter {p.name} is declared but the query never reads it "
                            "(or binds the name itself)")
    rules = tuple(r.strip() for r in fields["rules"].split(",") if r.strip())
    return Hunt(name, fields["title"], fields["description"], rules, tuple(params), query, text)


def _param(content: str, where: str, seen: set[str]) -> Param:
    m = _PARAM.match(content)
    if not m:
        raise RuleError(f"{where}: a parameter is `// param NAME: TYPE [= DEFAULT] [-- help]`")
    name, kind, default, help_text = m.group("name"), m.group("type").lower(), m.group("default"), m.group("help")
    if not _PARAM_NAME.match(name) or name.lower() in kqltext._KEYWORDS:
        raise RuleError(f"{where}: {name!r} cannot name a parameter (a plain KQL name)")
    if name in seen:
        raise RuleError(f"{where}: the parameter {name} is declared twice")
    if kind not in TYPES:
        raise RuleError(f"{where}: {kind!r} is no parameter type ({', '.join(TYPES)})")
    if default is None:
        return Param(name, kind, None, True, help_text or "")
    if default == "null":
        value: Any = None
    elif kind == "string":
        try:
            value = json.loads(default)
        except ValueError:
            value = None
        if not isinstance(value, str):
            raise RuleError(f"{where}: a string parameter's default is a JSON string (\"\" for empty)")
    else:
        try:
            value = convert(default, kind, f"{where}: the default of {name}")
        except UsageError as exc:
            raise RuleError(str(exc)) from None
    return Param(name, kind, value, False, help_text or "")


def shipped() -> dict[str, Hunt]:
    """The hunts shipped with exhunt, by name (files in this package)."""
    found: dict[str, Hunt] = {}
    folder = resources.files(__name__)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".kql"):
            continue
        hunt = parse(entry.read_text(encoding="utf-8"), f"hunts/{entry.name}")
        if entry.name != f"{hunt.name}.kql":
            raise RuleError(f"hunts/{entry.name}: named {hunt.name!r}; the file must be {hunt.name}.kql")
        found[hunt.name] = hunt
    return found


def get(name: str) -> Hunt:
    """The shipped hunt called `name`, or a UsageError listing the names there are."""
    hunts = shipped()
    if name not in hunts:
        raise UsageError(f"no hunt named {name!r}; `exhunt hunt list` shows them ({', '.join(hunts)})")
    return hunts[name]


def parse_given(pairs: list[str]) -> dict[str, str]:
    """`--param K=V` texts as a dict (the value may hold `=`); UsageError for a bad pair."""
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r}: give NAME=VALUE")
        if key.strip() in given:
            raise UsageError(f"--param {key.strip()} given twice")
        given[key.strip()] = value
    return given


def values(hunt: Hunt, given: dict[str, str]) -> dict[str, Any]:
    """Each parameter's value: given (converted to its type) or its default. UsageError for a
    name the hunt does not declare, a bad value, or a missing required parameter."""
    for key in given:
        if hunt.param(key) is None:
            declared = ", ".join(p.name for p in hunt.params) or "none"
            raise UsageError(f"hunt {hunt.name} has no parameter {key!r} (its parameters: {declared})")
    out: dict[str, Any] = {}
    for p in hunt.params:
        if p.name in given:
            out[p.name] = convert(given[p.name], p.type, f"--param {p.name} ({p.type})")
        elif p.required:
            raise UsageError(f"hunt {hunt.name} needs --param {p.name}=... ({p.type}: {p.help or 'required'})")
        else:
            out[p.name] = p.default
    return out


def bind(hunt: Hunt, given: dict[str, str], separators: bool = False) -> str:
    """The query to run: a `let NAME = literal;` line per parameter, then the hunt's query.

    Values are KQL literals of the parameter's type (kqltext.value_literal), never pasted text.
    `separators`: strings may hold U+2028/U+2029 (duckdb-kql's lexer keeps them inside a
    literal; Kusto's does not, so there such a value is refused).
    """
    lets = []
    for name, value in values(hunt, given).items():
        kind = hunt.param(name).type  # type: ignore[union-attr]
        try:
            literal = kqltext.value_literal(value, kind, separators)  # None: a typed null
        except kqltext.Unquotable:
            raise UsageError(f"--param {name}: the value holds a Unicode line or paragraph separator, "
                             "which this engine cannot take inside a string") from None
        lets.append(f"let {name} = {literal};")
    return "\n".join([*lets, hunt.query])
