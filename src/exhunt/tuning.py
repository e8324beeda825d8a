"""Suppressions ("tuning"): YAML entries that silence known-good alerts after the rules ran.

A tuning file is a list of entries; each names the rules it applies to (id, file name, rule
name or a glob; "*" for all) and the alert fields that must match, with the `=~` family of
KQL's operators (case-insensitive). Entries are applied here, in Python, to the alert dicts
the rules produced: no value from a tuning file ever becomes query text, so a tuning file
cannot inject KQL or SQL, and a regex is RE2 (linear time, no catastrophic backtracking).

Matching, in one place (the user guide says the same):

* A field's values: a missing key, None, "" and [] are *empty*; a list gives its elements
  (any element may match); other values are compared as text (true/false for booleans).
* `A|B|C` names alternatives: the values of all those that the alert has.
* Every operator but `empty` fails when the values are empty, and so does `not` around it:
  a field an alert lacks never suppresses it. `empty: true` is the one way to ask for that.
* Each operator of a map holds when any value satisfies it; every operator of the map must
  hold; `not: {...}` holds when the values are not empty and none of them satisfies the map.
* `match` is a map (every field must hold) or a list of such maps (any one of them).

`apply` returns which alerts are kept and which are suppressed, by which entry (the first
that matches, in file order and in the order the files were given), the alerts each entry
suppressed, expired entries (reported, never applied) and stale ones (matched nothing).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import yaml

from exhunt import yamltext
from exhunt.errors import UsageError

try:  # RE2: no backtracking, so a pattern cannot hang the run on a crafted value.
    import re2
except ImportError:  # pragma: no cover - the wheel exists for every supported platform
    re2 = None

#: The keys an entry may have (rule, match, reason and owner are required).
ENTRY_KEYS = ("rule", "match", "reason", "owner", "expires", "id", "comment")
REQUIRED = ("rule", "match", "reason", "owner")
#: Operators of a condition map.
OPERATORS = ("equals", "in", "startswith", "endswith", "contains", "has", "regex", "empty", "not")
#: The known-vendors file shipped in the package (`--known-vendors`).
KNOWN_VENDORS = "known-vendors.yaml"
#: How deep `not` maps may nest (not: {not: ...} is legal, a thousand of them is an attack).
MAX_NOT_DEPTH = 8
#: RE2's memory budget for one compiled pattern (its default); larger patterns are refused.
REGEX_MAX_MEM = 8 << 20

Predicate = Callable[[str], bool]


class _RuleLike(Protocol):
    @property
    def slug(self) -> str: ...


# -- matching -----------------------------------------------------------------------------


def fold(text: str) -> str:
    """Text compared case-insensitively (Unicode case folding)."""
    return text.casefold()


def has_term(value: str, needle: str) -> bool:
    """KQL's `has` on folded text: `needle` occurs in `value` as whole terms.

    A term is a maximal run of letters and digits. At each end of the needle that is a letter
    or digit, the value's neighbouring character must not be one (or be the value's edge);
    a needle that starts or ends with a delimiter needs no boundary there, so a needle made
    only of delimiters is a plain substring test (as Kusto measures it).
    """
    lead, trail = needle[:1].isalnum(), needle[-1:].isalnum()
    start = value.find(needle)
    while start >= 0:
        end = start + len(needle)
        if (not lead or start == 0 or not value[start - 1].isalnum()) and \
                (not trail or end == len(value) or not value[end].isalnum()):
            return True
        start = value.find(needle, start + 1)
    return False


def texts(value: Any) -> list[str]:
    """A field value as the texts a condition tests: [] when empty, a list's elements, or one text."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in texts(v)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dict):
        return [json.dumps(value, ensure_ascii=False, default=str)] if value else []
    text = value if isinstance(value, str) else str(value)
    return [text] if text else []


@dataclass(frozen=True)
class OperatorMap:
    """One operator map: every operator must hold on some value, and no `not` map may."""

    ops: tuple[tuple[str, Predicate], ...] = ()
    nots: tuple[OperatorMap, ...] = ()
    #: `empty: true/false`: the whole test (it stands alone in its map).
    empty: bool | None = None

    def holds(self, values: list[str]) -> bool:
        if self.empty is not None:
            return (not values) == self.empty
        if not values:
            return False
        folded = [fold(v) for v in values]
        for name, pred in self.ops:
            if not any(pred(v if name == "regex" else f) for v, f in zip(values, folded, strict=True)):
                return False
        return not any(inner.holds(values) for inner in self.nots)


@dataclass(frozen=True)
class Condition:
    """`Field|Other: {operator: value, ...}` at a line of a tuning file."""

    fields: tuple[str, ...]
    test: OperatorMap
    line: int

    def values(self, alert: dict[str, Any]) -> list[str]:
        found: list[str] = []
        lowered: dict[str, str] | None = None
        for name in self.fields:
            if name in alert:
                found += texts(alert[name])
                continue
            if lowered is None:  # field names are matched case-insensitively when not exact
                lowered = {}
                for known in alert:
                    lowered.setdefault(known.casefold(), known)
            other = lowered.get(name.casefold())
            if other is not None:
                found += texts(alert[other])
        return found

    def holds(self, alert: dict[str, Any]) -> bool:
        return self.test.holds(self.values(alert))


@dataclass(frozen=True, eq=False)
class Entry:
    """One suppression: which rules, which alerts (`match`), why, whose, until when."""

    file: str
    line: int
    rule: str
    #: Any one of these sets must hold, every condition of it.
    match: tuple[tuple[Condition, ...], ...]
    reason: str
    owner: str
    expires: date | None = None
    id: str | None = None
    comment: str | None = None
    #: From the file shipped with exhunt (--known-vendors): not reported as stale.
    shipped: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def label(self) -> str:
        return f"{self.id} ({self.where})" if self.id else self.where

    def covers(self, rule_names: Iterable[str]) -> bool:
        """Whether the entry's `rule` names one of these (rule id, file name, rule name)."""
        pattern = fold(self.rule)
        return pattern == "*" or any(fnmatch.fnmatchcase(fold(n), pattern) for n in rule_names if n)

    def matches(self, alert: dict[str, Any]) -> bool:
        return any(all(c.holds(alert) for c in conditions) for conditions in self.match)

    def expired(self, today: date) -> bool:
        """An entry applies up to and including its `expires` day."""
        return self.expires is not None and today > self.expires

    def tag(self) -> dict[str, Any]:
        """What an output says about the entry that suppressed an alert (`suppressed_by`)."""
        return {"entry": self.where, "id": self.id, "rule": self.rule, "reason": self.reason, "owner": self.owner,
                "expires": self.expires.isoformat() if self.expires else None}


@dataclass
class Tuning:
    """Entries of every tuning file, in order, and what loading them noticed."""

    entries: list[Entry] = field(default_factory=list)
    #: Warnings that do not stop the run (an entry without `expires`, an empty file).
    notes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __add__(self, other: Tuning) -> Tuning:
        return Tuning(self.entries + other.entries, self.notes + other.notes)


# -- loading --------------------------------------------------------------------------------


class _Problems:
    """Every problem of one file, each at its line; raised together at the end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.found: list[str] = []

    def add(self, node: yaml.Node, message: str) -> None:
        self.found.append(f"{self.name}:{node.start_mark.line + 1}: {message}")

    def raise_any(self) -> None:
        if len(self.found) == 1:
            raise UsageError(f"tuning file {self.found[0]}")
        if self.found:
            raise UsageError(f"tuning file {self.name}: {len(self.found)} problems: " + "; ".join(self.found))


def _mapping(node: yaml.Node, problems: _Problems, what: str) -> list[tuple[str, yaml.Node, yaml.Node]] | None:
    """A mapping's (key, key node, value node) in order; duplicate, merge and non-text keys are problems."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, f"{what} must be a mapping (key: value), not {_kind(node)}")
        return None
    seen: set[str] = set()
    pairs: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:null":
            problems.add(key_node, f"a key of {what} must be text, not {_kind(key_node)}")
            continue
        key = str(key_node.value)  # a number or a date used as a key: taken as written
        if key_node.tag == "tag:yaml.org,2002:merge":
            problems.add(key_node, "merge keys (<<) are not allowed in a tuning file; write each entry out")
        elif key in seen:
            problems.add(key_node, f"{key!r} appears twice in {what}")
        else:
            seen.add(key)
            pairs.append((key, key_node, value_node))
    return pairs


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "empty"
    return f"the value {node.value!r}"


def _text(node: yaml.Node, problems: _Problems, what: str) -> str | None:
    """A scalar's text as written (a number or date taken as text); empty or non-scalar is a problem."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        problems.add(node, f"{what} must be text, not {_kind(node)}")
        return None
    text = str(node.value)
    if not text.strip():
        problems.add(node, f"{what} is empty")
        return None
    return text


def _regex(pattern: str) -> Predicate | str:
    """A case-insensitive RE2 search, or why the pattern is refused."""
    if re2 is None:
        return "regex needs the google-re2 package (RE2: no catastrophic backtracking): pip install google-re2"
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = REGEX_MAX_MEM
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        return f"regex {pattern!r} is not valid RE2: {text}"
    return lambda value: compiled.search(value) is not None


def _one_of(choices: frozenset[str]) -> Predicate:
    return lambda value: value in choices


_STRING_OPS: dict[str, Callable[[str], Predicate]] = {
    "equals": lambda n: lambda v: v == n,
    "startswith": lambda n: lambda v: v.startswith(n),
    "endswith": lambda n: lambda v: v.endswith(n),
    "contains": lambda n: lambda v: n in v,
    "has": lambda n: lambda v: has_term(v, n),
}


def _operator_map(node: yaml.Node, problems: _Problems, where: str, depth: int = 0) -> OperatorMap | None:
    """An operator map (`{equals: x, not: {...}}`) checked whole: every problem is reported."""
    if depth > MAX_NOT_DEPTH:
        problems.add(node, f"not on {where} is nested more than {MAX_NOT_DEPTH} deep")
        return None
    pairs = _mapping(node, problems, f"the condition on {where}")
    if pairs is None:
        return None
    if not pairs:
        problems.add(node, f"the condition on {where} has no operator (use one of {', '.join(OPERATORS)})")
        return None
    ops: list[tuple[str, Predicate]] = []
    nots: list[OperatorMap] = []
    empty: bool | None = None
    ok = True
    for op, key_node, value in pairs:
        if op not in OPERATORS:
            problems.add(key_node, f"unknown operator {op!r} on {where} (use one of {', '.join(OPERATORS)})")
            ok = False
        elif op == "not":
            inner = _operator_map(value, problems, where, depth + 1)
            ok = ok and inner is not None
            if inner is not None:
                nots.append(inner)
        elif op == "empty":
            flag = yamltext.scalar(value) if isinstance(value, yaml.ScalarNode) else None
            if not isinstance(flag, bool):
                problems.add(value, f"empty on {where} takes true or false, not {_kind(value)}")
                ok = False
            elif len(pairs) > 1:
                problems.add(key_node, f"empty on {where} stands alone in its map (wrap others in another entry)")
                ok = False
            else:
                empty = flag
        elif op == "in":
            if not isinstance(value, yaml.SequenceNode) or not value.value:
                problems.add(value, f"in on {where} takes a non-empty list of texts, not {_kind(value)}")
                ok = False
                continue
            items = [_operand(item, problems, f"an item of in on {where}") for item in value.value]
            if any(i is None for i in items):
                ok = False
                continue
            ops.append((op, _one_of(frozenset(fold(str(i)) for i in items))))
        else:
            text = _operand(value, problems, f"{op} on {where}")
            if text is None:
                ok = False
            elif op == "regex":
                pred = _regex(text)
                if isinstance(pred, str):
                    problems.add(value, pred)
                    ok = False
                else:
                    ops.append((op, pred))
            else:
                ops.append((op, _STRING_OPS[op](fold(text))))
    return OperatorMap(tuple(ops), tuple(nots), empty) if ok else None


def _operand(node: yaml.Node, problems: _Problems, what: str) -> str | None:
    """An operator's value: text (numbers and dates as written). An empty text would match
    everything (contains) or nothing; `empty: true` says what is meant."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        problems.add(node, f"{what} takes text, not {_kind(node)}")
        return None
    if node.value == "":
        problems.add(node, f"{what} is an empty text; to match a missing or empty field write `empty: true`")
        return None
    return str(node.value)


def _conditions(node: yaml.Node, problems: _Problems) -> tuple[Condition, ...] | None:
    pairs = _mapping(node, problems, "match")
    if pairs is None:
        return None
    if not pairs:
        problems.add(node, "match is empty: an entry must name at least one field (an empty match would "
                           "suppress every alert of its rules)")
        return None
    found: list[Condition] = []
    ok = True
    for key, key_node, value in pairs:
        names = tuple(part.strip() for part in key.split("|"))
        if not all(names):
            problems.add(key_node, f"field {key!r} has an empty name between its '|'")
            ok = False
            continue
        test = _operator_map(value, problems, key)
        if test is None:
            ok = False
            continue
        found.append(Condition(names, test, key_node.start_mark.line + 1))
    return tuple(found) if ok else None


def _match(node: yaml.Node, problems: _Problems) -> tuple[tuple[Condition, ...], ...] | None:
    if isinstance(node, yaml.SequenceNode):
        if not node.value:
            problems.add(node, "match is an empty list: give a map of conditions, or a list of such maps")
            return None
        sets = [_conditions(item, problems) for item in node.value]
        return None if any(s is None for s in sets) else tuple(s for s in sets if s is not None)
    one = _conditions(node, problems)
    return None if one is None else (one,)


def _expires(node: yaml.Node, problems: _Problems) -> date | None:
    value: Any = None
    if isinstance(node, yaml.ScalarNode):
        try:
            value = yamltext.scalar(node)
        except ValueError as exc:  # 2027-13-45: YAML's date pattern, an impossible date
            problems.add(node, f"expires {node.value!r} is not a date: {exc}")
            return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.add(node, f"expires must be a date (YYYY-MM-DD), not {_kind(node)}")
    return None


def _entry(node: yaml.Node, name: str, problems: _Problems, shipped: bool, notes: list[str]) -> Entry | None:
    pairs = _mapping(node, problems, "an entry")
    if pairs is None:
        return None
    given = {key: (key_node, value) for key, key_node, value in pairs}
    before = len(problems.found)
    for key, key_node, _ in pairs:
        if key not in ENTRY_KEYS:
            problems.add(key_node, f"unknown key {key!r} (an entry has {', '.join(ENTRY_KEYS)})")
    missing = [k for k in REQUIRED if k not in given]
    if missing:
        problems.add(node, f"the entry lacks {', '.join(missing)} (every entry says which rule, what it matches, "
                           "why, and who owns it)")
    texts_of = {k: _text(given[k][1], problems, k) for k in ("rule", "reason", "owner", "id", "comment") if k in given}
    match = _match(given["match"][1], problems) if "match" in given else None
    expires = _expires(given["expires"][1], problems) if "expires" in given else None
    if len(problems.found) > before or match is None:
        return None
    line = node.start_mark.line + 1
    if "expires" not in given and not shipped:
        notes.append(f"{name}:{line}: the entry has no expires date; it suppresses until someone removes it")
    return Entry(file=name, line=line, rule=str(texts_of["rule"]), match=match, reason=str(texts_of["reason"]),
                 owner=str(texts_of["owner"]), expires=expires, id=texts_of.get("id"),
                 comment=texts_of.get("comment"), shipped=shipped)


def parse(text: str, name: str, shipped: bool = False) -> Tuning:
    """The entries of one tuning file's text; UsageError naming every problem with its line."""
    problems = _Problems(name)
    try:
        root = yamltext.compose(text)
    except yamltext.AliasBombError as exc:
        raise UsageError(f"tuning file {name}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise UsageError(f"tuning file {where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"tuning file {name}: not valid YAML: {exc}") from None
    notes: list[str] = []
    if root is None or (isinstance(root, yaml.SequenceNode) and not root.value):
        return Tuning([], [f"{name}: holds no entries"])
    if not isinstance(root, yaml.SequenceNode):
        problems.add(root, f"a tuning file is a list of entries (each starting '- rule:'), not {_kind(root)}")
        problems.raise_any()
    assert isinstance(root, yaml.SequenceNode)
    entries = [_entry(item, name, problems, shipped, notes) for item in root.value]
    problems.raise_any()
    return Tuning([e for e in entries if e is not None], notes)


def load_file(path: Path | str) -> Tuning:
    """One tuning file from disk (`--tuning`)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"--tuning: {name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except OSError as exc:
        raise UsageError(f"--tuning: cannot read {name}: {exc.strerror or exc}") from None
    return parse(text, name)


def known_vendors() -> Tuning:
    """The shipped known-vendors file (`--known-vendors`), from the installed package."""
    source = resources.files("exhunt") / "tuning_files" / KNOWN_VENDORS
    return parse(source.read_text(encoding="utf-8"), f"exhunt:{KNOWN_VENDORS}", shipped=True)


def load(paths: Sequence[Path | str] = (), vendors: bool = False) -> Tuning:
    """Every `--tuning` file in order (then the known vendors when asked). Ids must be unique."""
    tuning = Tuning()
    for path in paths:
        tuning = tuning + load_file(path)
    if vendors:
        tuning = tuning + known_vendors()
    seen: dict[str, Entry] = {}
    clashes = []
    for entry in tuning.entries:
        if entry.id is None:
            continue
        key = fold(entry.id)
        if key in seen:
            clashes.append(f"id {entry.id!r} of {entry.where} is already used by {seen[key].where}")
        seen.setdefault(key, entry)
    if clashes:
        raise UsageError("tuning: " + "; ".join(clashes))
    return tuning


# -- applying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suppressed:
    """An alert (its index among the alerts given) and the entry that suppressed it."""

    index: int
    alert: dict[str, Any]
    entry: Entry


@dataclass
class Outcome:
    """What the tuning did to one run's alerts."""

    #: The alerts no entry suppressed, in their order, and their indexes among the alerts given.
    kept: list[dict[str, Any]] = field(default_factory=list)
    kept_index: list[int] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    #: Every entry in effect (not expired), in order, with the alerts it suppressed.
    counts: dict[Entry, int] = field(default_factory=dict)
    #: Entries past their `expires` day, with the shown alerts they would have suppressed.
    expired: list[tuple[Entry, int]] = field(default_factory=list)
    #: Entries in effect that matched no alert (not counting the shipped known vendors).
    stale: list[Entry] = field(default_factory=list)
    #: Warnings from loading (entries without expires...).
    notes: list[str] = field(default_factory=list)


def today_utc() -> date:
    return datetime.now(UTC).date()


def _names(alert: dict[str, Any], rule: _RuleLike | None) -> list[str]:
    names = [str(alert.get(k) or "") for k in ("rule_id", "rule_name", "rule_slug")]
    if rule is not None:
        names.append(rule.slug)
    return names


def apply(alerts: Sequence[dict[str, Any]], tuning: Tuning, rules: Sequence[_RuleLike | None] | None = None,
          today: date | None = None) -> Outcome:
    """Split alerts into kept and suppressed. `rules[i]` (optional) is the rule of alert i, so an
    entry may name it by file name; the alert's `rule_id` and `rule_name` are always tried."""
    today = today or today_utc()
    active = [e for e in tuning.entries if not e.expired(today)]
    expired = [e for e in tuning.entries if e.expired(today)]
    outcome = Outcome(counts={e: 0 for e in active}, notes=list(tuning.notes))
    matched: set[int] = set()
    would: dict[int, int] = {id(e): 0 for e in expired}
    for i, alert in enumerate(alerts):
        names = _names(alert, rules[i] if rules is not None and i < len(rules) else None)
        first: Entry | None = None
        for entry in active:
            if entry.covers(names) and entry.matches(alert):
                matched.add(id(entry))
                if first is None:
                    first = entry
        if first is not None:
            outcome.counts[first] += 1
            outcome.suppressed.append(Suppressed(i, alert, first))
            continue
        outcome.kept.append(alert)
        outcome.kept_index.append(i)
        for entry in expired:
            if entry.covers(names) and entry.matches(alert):
                would[id(entry)] += 1
    outcome.expired = [(e, would[id(e)]) for e in expired]
    outcome.stale = [e for e in active if id(e) not in matched and not e.shipped]
    return outcome


@dataclass(frozen=True)
class Shown:
    """A suppressed alert as --show-suppressed lists it: the alert (as output), its entry, a description."""

    alert: dict[str, Any]
    entry: Entry
    detail: str


def shown(outcome: Outcome, alerts: Sequence[dict[str, Any]], rules: Sequence[Any]) -> list[Shown]:
    """The suppressed alerts taken from `alerts` (the run's alerts as they are output, e.g. with
    times in the chosen zone; alerts[i] came from rules[i]), described as the table shows them."""
    from exhunt.alerts import summary_line

    return [Shown(alerts[s.index], s.entry,
                  f"[suppressed by {s.entry.id or s.entry.where}] {summary_line(rules[s.index], alerts[s.index])}")
            for s in outcome.suppressed]


def tagged(alert: dict[str, Any], entry: Entry | None) -> dict[str, Any]:
    """The alert as --show-suppressed writes it: `suppressed_by` the entry (None when kept)."""
    return {**alert, "suppressed_by": entry.tag() if entry is not None else None}


def report(outcome: Outcome) -> list[tuple[str, str]]:
    """The run summary's lines about tuning, as (level, text): level is "info" or "warning".
    The texts hold values from tuning files: the caller shows them inert (safetext)."""
    lines: list[tuple[str, str]] = [("warning", note) for note in outcome.notes]
    for entry, n in outcome.counts.items():
        if n:
            until = f", until {entry.expires.isoformat()}" if entry.expires else ""
            lines.append(("info", f"tuning: {n} alert(s) suppressed by {entry.label}: {entry.reason} "
                                   f"(owner {entry.owner}{until})"))
    for entry, n in outcome.expired:
        assert entry.expires is not None
        shown = f"; {n} alert(s) it matches are shown" if n else ""
        lines.append(("warning", f"tuning entry {entry.label} expired on {entry.expires.isoformat()} and is not "
                                 f"applied{shown}: {entry.reason} (owner {entry.owner})"))
    for entry in outcome.stale:
        lines.append(("info", f"tuning entry {entry.label} matched no alert (stale?): {entry.reason} "
                              f"(owner {entry.owner})"))
    if outcome.counts or outcome.expired:
        used = sum(1 for n in outcome.counts.values() if n)
        total = len(outcome.counts) + len(outcome.expired)
        expired = f" ({len(outcome.expired)} expired)" if outcome.expired else ""
        lines.append(("info", f"tuning: {len(outcome.suppressed)} alert(s) suppressed by {used} of {total} "
                              f"entr{'y' if total == 1 else 'ies'}{expired}."))
    return lines
