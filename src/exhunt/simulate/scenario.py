"""Scenario files: one YAML document per story (attack or benign), its steps and what the rules must do.

A scenario is data, so adding one is adding a file (`scenarios/<id>.yaml`, or any path given on the
command line). Every problem in a file is a UsageError naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from exhunt import yamltext
from exhunt.errors import UsageError

#: Step kinds and the keys each takes (required first set, optional second).
STEP_KINDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "process": (
        frozenset({"image", "command_line"}),
        frozenset({"name", "parent", "user", "integrity", "sha1", "original_file_name", "signer", "signed", "pid"}),
    ),
    "file": (
        frozenset({"action", "path"}),
        frozenset({"by", "smb", "sha1", "sha256", "size", "previous", "signer", "signed", "audited"}),
    ),
    "image_load": (frozenset({"path"}), frozenset({"by", "sha1", "size", "signer", "signed"})),
    "service_restart": (frozenset(), frozenset({"service", "name", "was_stopped"})),
    "cmdlet_log": (frozenset({"cmdlet"}), frozenset({"params", "caller", "success", "host_process", "error"})),
    "script_block": (frozenset({"text"}), frozenset({"by", "path", "runs", "level"})),
    "event_log": (frozenset({"channel", "provider", "event_id"}), frozenset({"params", "level", "task", "message"})),
}
#: Keys every step may take besides its kind: its id, its delay or exact time, and who records it.
STEP_KEYS = ("id", "after", "at", "seen_by")
FILE_ACTIONS = ("created", "modified", "renamed", "deleted")
KINDS = ("attack", "benign")
#: Who collects the events: a Defender for Endpoint host, Windows event logs (Sysmon, Security...), or
#: Exchange itself (the admin audit log: cmdlets only).
FAMILIES = ("defender", "windows", "exchange")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
#: `at`: a KQL time span from the run's start, `[d.]hh:mm:ss[.fffffff]` (1.02:04:47.3 = 1 day 2 h 4 min 47.3 s).
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
#: An install root: a local drive and at least one folder (Exchange is never installed on a share).
_ROOT = re.compile(r'^[A-Za-z]:(\\[^\\/:*?"<>|\x00-\x1f]+)+\\?$')
#: `expect.tuned.tuning` naming the tuning file shipped in the package instead of a path.
KNOWN_VENDORS = "known-vendors"


class Node(dict[str, Any]):
    """A mapping that remembers the line it started on (1-based)."""

    line: int = 0
    #: the line each key is written on (set when the mapping is read)
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line a key is written on (the mapping's own line if unknown)."""
        return getattr(self, "key_lines", {}).get(key, self.line)


@dataclass
class Step:
    """One abstract action: its kind, its fields, its id (for expectations) and its delay."""

    kind: str
    fields: dict[str, Any]
    id: str
    after: float
    line: int
    #: Exact offset from the run's start (`at:`), instead of `after` from the step before.
    at: float | None = None
    #: The collectors (FAMILIES) that record this step; None: every one. A gap in telemetry
    #: (Defender missed it, or only Sysmon was there) is a step some collectors do not see.
    seen_by: tuple[str, ...] | None = None


@dataclass
class Expectation:
    """A rule that must alert on these steps (or, with must=False, must not alert at all)."""

    rule: str
    must: bool
    steps: list[str] = field(default_factory=list)
    families: tuple[str, ...] = FAMILIES
    note: str = ""
    line: int = 0


@dataclass
class HuntExpectation:
    """A shipped hunt run on the scenario's host (`hunts:`): the steps its rows come from, exactly,
    and optionally how many rows and values every row has."""

    hunt: str
    #: --param texts as written (${host}, ${pid:STEP}, ${sha1:STEP}... filled at run time);
    #: Host, when the hunt has it and this does not give it, is the scenario's host.
    params: dict[str, str] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    rows: int | None = None
    min_rows: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    families: tuple[str, ...] = FAMILIES
    note: str = ""
    line: int = 0


@dataclass
class Scenario:
    id: str
    title: str
    kind: str
    path: Path
    description: str = ""
    atomic: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    expect: list[Expectation] = field(default_factory=list)
    #: Exchange's install root on this scenario's server ("" = the default, or --exchange-root).
    exchange_root: str = ""
    #: `expect.tuned`: a tuning file (a path, or KNOWN_VENDORS) and the alerts left once it is applied.
    tuning: Path | str | None = None
    tuned: list[Expectation] = field(default_factory=list)
    #: `hunts:` what shipped hunting queries return on this scenario.
    hunts: list[HuntExpectation] = field(default_factory=list)
    #: `vars:` names a step's text uses as ${name}, with their default values (`with_vars` overrides
    #: them: one scenario file, several servers that differ in a drive letter or a folder).
    vars: dict[str, str] = field(default_factory=dict)

    def must(self) -> list[Expectation]:
        return [e for e in self.expect if e.must]

    def must_not(self) -> list[Expectation]:
        return [e for e in self.expect if not e.must]


def _build(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = Node()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                out.key_lines[str(k.value)] = k.start_mark.line + 1
            # keys as written (YAML 1.1 would read `on:` as true)
            out[str(k.value) if isinstance(k, yaml.ScalarNode) else str(k)] = _build(v)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v) for v in node.value]
    assert isinstance(node, yaml.ScalarNode)
    return yamltext.scalar(node)


def duration(text: Any, where: str) -> float:
    """`30s`, `2m`, `1h`, `2d`, `250ms` or a number of seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text >= 0:
        return float(text)
    m = _DURATION.match(str(text).strip())
    if not m:
        raise UsageError(f"{where}: not a duration: {text!r} (write 30s, 2m, 1h or 250ms)")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def timespan(text: Any, where: str) -> float:
    """`at:`'s KQL time span `[d.]hh:mm:ss[.fffffff]`, in seconds (fractions kept to 100 ns)."""
    m = _TIMESPAN.match(str(text).strip())
    if not m or int(m.group(2)) > 23 or int(m.group(3)) > 59 or int(m.group(4)) > 59:
        raise UsageError(f"{where}: at: not a time span from the start: {text!r} (write 1.02:04:47.3 or 08:14:03)")
    days, hours, minutes, seconds, frac = m.groups()
    ticks = int((frac or "").ljust(7, "0"))
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds) + ticks / 1e7


def _strs(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise UsageError(f"{where}: expected a text or a list of texts")


def root_option(text: str, where: str = "--exchange-root") -> str:
    """An Exchange install root as given (a local folder), without its trailing backslash."""
    if not _ROOT.match(text):
        raise UsageError(f"{where} {text!r}: a local folder such as E:\\Exchange\\V15")
    return text.rstrip("\\")


def _step(raw: Any, index: int, where: str) -> Step:
    if not isinstance(raw, Node):
        raise UsageError(f"{where}: step {index + 1} is not a mapping")
    at = f"{where.rsplit(':', 1)[0]}:{raw.line}"
    kinds = [k for k in raw if k in STEP_KINDS]
    unknown = [k for k in raw if k not in STEP_KINDS and k not in STEP_KEYS]
    if unknown or len(kinds) != 1:
        raise UsageError(
            f"{at}: a step holds exactly one of {', '.join(STEP_KINDS)} (plus {', '.join(STEP_KEYS)});"
            f" found {', '.join(map(str, raw)) or 'nothing'}"
        )
    kind = kinds[0]
    body = raw[kind] or Node()
    if not isinstance(body, dict):
        raise UsageError(f"{at}: {kind}: expected a mapping of fields")
    required, optional = STEP_KINDS[kind]
    missing = sorted(required - set(body))
    extra = sorted(set(body) - required - optional)
    if missing:
        raise UsageError(f"{at}: {kind} needs {', '.join(missing)}")
    if extra:
        raise UsageError(
            f"{at}: {kind} does not take {', '.join(extra)} (it takes {', '.join(sorted(required | optional))})"
        )
    if kind == "file" and body["action"] not in FILE_ACTIONS:
        raise UsageError(f"{at}: file action must be one of {', '.join(FILE_ACTIONS)}")
    step_id = str(raw.get("id", f"step{index + 1}"))
    if not _ID.match(step_id):
        raise UsageError(f"{at}: step id {step_id!r}: use lower-case letters, digits, '.', '_' or '-'")
    if "at" in raw and "after" in raw:
        raise UsageError(f"{at}: give a step `after` (a delay) or `at` (a time from the start), not both")
    seen_by = None
    if "seen_by" in raw:
        seen_by = tuple(_strs(raw["seen_by"], at))
        if not seen_by or set(seen_by) - set(FAMILIES):
            raise UsageError(f"{at}: seen_by: one or more of {', '.join(FAMILIES)}")
    when = timespan(raw["at"], at) if "at" in raw else None
    return Step(kind, dict(body), step_id, duration(raw.get("after", 2), at), raw.line, when, seen_by)


def _alerts(items: Any, where: str, steps: set[str]) -> list[Expectation]:
    """An `alert` list: rule, the steps it alerts on, the families (`on`) and a note."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise UsageError(f"{where}: alert: a list of {{rule, steps}} entries")
    out: list[Expectation] = []
    file, line = where.rsplit(":", 1)
    for item in items:
        at = f"{file}:{getattr(item, 'line', line)}"
        if not isinstance(item, Node) or "rule" not in item:
            raise UsageError(f"{at}: each `alert` entry needs a rule (and the steps it alerts on)")
        extra = set(item) - {"rule", "steps", "on", "note"}
        if extra:
            raise UsageError(f"{at}: an `alert` entry takes rule, steps, on, note; not {', '.join(sorted(extra))}")
        step_ids = _strs(item.get("steps"), at)
        if not step_ids:
            raise UsageError(f"{at}: alert {item['rule']}: name the steps it must alert on")
        unknown = [s for s in step_ids if s not in steps]
        if unknown:
            raise UsageError(f"{at}: alert {item['rule']}: no step with id {', '.join(unknown)}")
        fams = tuple(_strs(item.get("on"), at)) or FAMILIES
        if set(fams) - set(FAMILIES):
            raise UsageError(f"{at}: `on` takes {', '.join(FAMILIES)}")
        out.append(Expectation(str(item["rule"]), True, step_ids, fams, str(item.get("note", "")), item.line))
    return out


def _tuned(raw: Any, where: str, steps: set[str], path: Path) -> tuple[Path | str, list[Expectation]]:
    """`expect.tuned`: the tuning file (relative to the scenario, or known-vendors) and what still alerts."""
    at = f"{path}:{raw.line}" if isinstance(raw, Node) else where
    if not isinstance(raw, Node) or "tuning" not in raw or set(raw) - {"tuning", "alert"}:
        raise UsageError(f"{at}: expect.tuned takes tuning (a tuning file) and alert (what still alerts under it)")
    ref = raw["tuning"]
    if not isinstance(ref, str) or not ref.strip():
        raise UsageError(
            f"{at}: expect.tuned.tuning: a tuning file's path (relative to the scenario) or {KNOWN_VENDORS}"
        )
    tuning: Path | str = ref
    if ref != KNOWN_VENDORS:
        tuning = Path(ref) if Path(ref).is_absolute() else path.parent / ref
        if not tuning.is_file():
            raise UsageError(f"{at}: expect.tuned.tuning: no such file {tuning}")
    return tuning, _alerts(raw.get("alert"), at, steps)


#: `${pid:STEP}` / `${sha1:STEP}` in a hunt's parameters: a value of the events of one step.
STEP_REF = re.compile(r"\$\{(pid|sha1):([^}]*)\}")
_HUNT_KEYS = ("hunt", "params", "steps", "rows", "min_rows", "columns", "on", "note")


def _count(value: Any, at: str, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{at}: {key}: a whole number of rows (0 or more), not {value!r}")
    return value


def _scalars(value: Any, at: str, key: str) -> dict[str, str]:
    """A mapping of names to texts or numbers (YAML 1.1's yes/no come as written)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or any(isinstance(v, dict | list) or v is None for v in value.values()):
        raise UsageError(f"{at}: {key}: a mapping of names to values")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _hunts(raw: Any, path: Path, line: int, steps: set[str]) -> list[HuntExpectation]:
    """`hunts:` entries, checked against the shipped hunts (name, parameters) and the steps."""
    from exhunt import hunts as shipped_hunts
    from exhunt.errors import RuleError

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UsageError(f"{path}:{line}: hunts: a list of {{hunt, params, steps}} entries")
    try:
        known = shipped_hunts.shipped()
    except RuleError as exc:
        raise UsageError(str(exc)) from None
    out: list[HuntExpectation] = []
    for item in raw:
        at = f"{path}:{getattr(item, 'line', line)}"
        if not isinstance(item, Node) or "hunt" not in item:
            raise UsageError(f"{at}: each `hunts` entry needs hunt (a shipped hunt's name) and the steps it returns")
        extra = sorted(set(item) - set(_HUNT_KEYS))
        if extra:
            raise UsageError(f"{at}: a `hunts` entry takes {', '.join(_HUNT_KEYS)}; not {', '.join(extra)}")
        name = str(item["hunt"])
        h = known.get(name)
        if h is None:
            raise UsageError(f"{at}: no hunt named {name!r} (exhunt hunt list shows them)")
        params = _scalars(item.get("params"), at, "params")
        for key, value in params.items():
            if h.param(key) is None:
                declared = ", ".join(p.name for p in h.params) or "none"
                raise UsageError(f"{at}: hunt {name} has no parameter {key!r} (its parameters: {declared})")
            for m in STEP_REF.finditer(value):
                if m.group(2) not in steps:
                    raise UsageError(f"{at}: params {key}: ${{{m.group(1)}:{m.group(2)}}}: no step with that id")
        missing = [p.name for p in h.params if p.required and p.name not in params]
        if missing:
            raise UsageError(f"{at}: hunt {name} needs params {', '.join(missing)}")
        step_ids = _strs(item.get("steps"), at)
        unknown = [s for s in step_ids if s not in steps]
        if unknown:
            raise UsageError(f"{at}: hunt {name}: no step with id {', '.join(unknown)}")
        rows, min_rows = _count(item.get("rows"), at, "rows"), _count(item.get("min_rows"), at, "min_rows")
        if rows is not None and min_rows is not None:
            raise UsageError(f"{at}: hunt {name}: give rows (exactly) or min_rows (at least), not both")
        if not step_ids and rows != 0:
            raise UsageError(f"{at}: hunt {name}: name the steps its rows come from (or rows: 0 for none)")
        if step_ids and rows == 0:
            raise UsageError(f"{at}: hunt {name}: rows: 0 with steps to return")
        fams = tuple(_strs(item.get("on"), at)) or FAMILIES
        if set(fams) - set(FAMILIES):
            raise UsageError(f"{at}: `on` takes {', '.join(FAMILIES)}")
        out.append(HuntExpectation(name, params, step_ids, rows, min_rows, _scalars(item.get("columns"), at, "columns"),
                                   fams, str(item.get("note", "")), item.line))
    return out


def _expectations(raw: Any, where: str, steps: set[str]) -> list[Expectation]:
    if raw is None:
        return []
    if not isinstance(raw, Node):
        raise UsageError(f"{where}: expect: a mapping with `alert` and `no_alert`")
    bad = set(raw) - {"alert", "no_alert", "tuned"}
    if bad:
        raise UsageError(
            f"{where.rsplit(':', 1)[0]}:{raw.line}: expect takes alert, no_alert and tuned,"
            f" not {', '.join(sorted(bad))}"
        )
    out = _alerts(raw.get("alert"), f"{where.rsplit(':', 1)[0]}:{raw.line}", steps)
    for item in raw.get("no_alert") or []:
        line = getattr(raw.get("no_alert"), "line", raw.line)
        if isinstance(item, Node):
            at = f"{where.rsplit(':', 1)[0]}:{item.line}"
            if "rule" not in item or set(item) - {"rule", "note"}:
                raise UsageError(f"{at}: a `no_alert` entry is a rule name (or rule and note)")
            out.append(Expectation(str(item["rule"]), False, note=str(item.get("note", "")), line=item.line))
        elif isinstance(item, str):
            out.append(Expectation(item, False, line=line))
        else:
            raise UsageError(f"{where}: no_alert: expected rule names")
    return out


def parse(text: str, path: Path) -> Scenario:
    """A scenario from its YAML text (`path` names it in errors)."""
    where = f"{path}:1"
    try:
        node = yamltext.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise UsageError(f"{path}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    if node is None:
        raise UsageError(f"{where}: empty scenario file")
    doc = _build(node)
    if not isinstance(doc, Node):
        raise UsageError(f"{where}: a scenario is a mapping (id, title, kind, steps, expect)")
    where = f"{path}:{doc.line}"
    known = {"id", "title", "kind", "atomic", "techniques", "description", "exchange_root", "steps", "expect", "hunts",
             "vars"}
    extra = sorted(set(doc) - known)
    if extra:
        raise UsageError(f"{where}: unknown key(s) {', '.join(extra)} (a scenario takes {', '.join(sorted(known))})")
    for key in ("id", "title", "kind", "steps"):
        if key not in doc:
            raise UsageError(f"{where}: missing `{key}`")
    if not _ID.match(str(doc["id"])):
        raise UsageError(f"{where}: id {doc['id']!r}: use lower-case letters, digits, '.', '_' or '-'")
    if doc["kind"] not in KINDS:
        raise UsageError(f"{where}: kind must be attack or benign, not {doc['kind']!r}")
    raw_steps = doc["steps"]
    if not isinstance(raw_steps, list) or not raw_steps:
        raise UsageError(f"{where}: steps: a non-empty list")
    steps = [_step(s, i, where) for i, s in enumerate(raw_steps)]
    seen: set[str] = set()
    for s in steps:
        if s.id in seen:
            raise UsageError(f"{path}:{s.line}: step id {s.id!r} used twice")
        seen.add(s.id)
    root = doc.get("exchange_root")
    if root is not None:
        root = root_option(str(root), f"{where}: exchange_root")
    expect = doc.get("expect")
    tuning, tuned = (
        _tuned(expect["tuned"], where, seen, path) if isinstance(expect, Node) and "tuned" in expect else (None, [])
    )
    return Scenario(
        id=str(doc["id"]),
        title=str(doc["title"]),
        kind=str(doc["kind"]),
        path=path,
        description=str(doc.get("description") or "").strip(),
        atomic=_strs(doc.get("atomic"), where),
        techniques=_strs(doc.get("techniques"), where),
        steps=steps,
        expect=_expectations(expect, where, seen),
        exchange_root=root or "",
        tuning=tuning,
        tuned=tuned,
        hunts=_hunts(doc.get("hunts"), path, doc.line, seen),
        vars=_vars(doc.get("vars"), f"{path}:{doc.line_of('vars')}"),
    )


#: Names `vars:` may not take: the simulator's own (${bin}, ${host}...) and the step references.
RESERVED_VARS = frozenset(
    {"exchange", "bin", "agents", "shared", "pickup", "ns_temp", "ns_roaming", "system32", "ps", "host", "domain",
     "dns_domain", "pid", "sha1"}
)
_VAR = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def _vars(raw: Any, at: str) -> dict[str, str]:
    """`vars:` a mapping of lower-case names to texts (empty allowed: "nothing known")."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError(f"{at}: vars: a mapping of names to texts")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if not _VAR.match(str(key)) or key in RESERVED_VARS:
            raise UsageError(
                f"{at}: vars: {key!r}: a lower-case name (letters, digits, _) that is not one of the"
                f" simulator's own ({', '.join(sorted(RESERVED_VARS))})"
            )
        if isinstance(value, dict | list | bool):
            raise UsageError(f"{at}: vars: {key}: a text or a number, not {value!r}")
        out[str(key)] = "" if value is None else str(value)
    return out


def with_vars(sc: Scenario, values: dict[str, str], scenario_id: str | None = None) -> Scenario:
    """The scenario with some of its `vars` set otherwise (and, given, another id): one file, many
    servers. A name the scenario does not declare is an error (a typo would silently change nothing)."""
    unknown = sorted(set(values) - set(sc.vars))
    if unknown:
        declared = ", ".join(sorted(sc.vars)) or "none"
        raise UsageError(f"{sc.path}: scenario {sc.id} has no var {', '.join(unknown)} (its vars: {declared})")
    new_id = scenario_id or sc.id
    if not _ID.match(new_id):
        raise UsageError(f"{sc.path}: scenario id {new_id!r}: use lower-case letters, digits, '.', '_' or '-'")
    return replace(sc, id=new_id, vars={**sc.vars, **{k: str(v) for k, v in values.items()}})


def load_file(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the scenario: {exc}") from None
    return parse(text, path)


def shipped() -> list[Scenario]:
    """The scenarios shipped in the package, by id."""
    folder = resources.files("exhunt.simulate") / "scenarios"
    out = [load_file(Path(str(p))) for p in folder.iterdir() if p.name.endswith(".yaml")]
    return sorted(out, key=lambda s: s.id)


def resolve(ref: str) -> list[Scenario]:
    """A scenario by id, a scenario file path, or every scenario of an Atomic test (technique or GUID)."""
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise UsageError(f"{ref}: no such scenario file")
        return [load_file(path)]
    known = shipped()
    hit = [s for s in known if s.id == ref]
    if hit:
        return hit
    raise UsageError(f"no scenario named {ref!r} (exhunt simulate --list shows them; a file path also works)")


def by_atomic(ref: str) -> list[Scenario]:
    """Scenarios replaying an Atomic Red Team test, given its GUID or its technique id."""
    low = ref.lower()
    hit = [
        s
        for s in shipped()
        if low in (a.lower() for a in s.atomic) or (s.atomic and low in (t.lower() for t in s.techniques))
    ]
    if not hit:
        raise UsageError(f"no scenario replays the Atomic test {ref!r} (exhunt simulate --list shows the GUIDs)")
    return hit
