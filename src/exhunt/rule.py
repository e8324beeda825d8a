"""Rules as data: one YAML file each, Sentinel analytic-rule fields plus an `exhunt` block.

The Sentinel part exports unchanged; the `exhunt` block holds what Sentinel's
format has no place for (the real severity when it is "critical", confidence,
false positives, data sources, required tables, notes, tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from exhunt import sigmarule, timespan, yamltext
from exhunt.errors import RuleError
from exhunt.kql import tree

SEVERITIES = ("informational", "low", "medium", "high", "critical")
SENTINEL_REQUIRED = (
    "id", "name", "description", "severity", "queryFrequency", "queryPeriod",
    "triggerOperator", "triggerThreshold", "tactics", "relevantTechniques", "query", "version", "kind",
)


def tables_named_in(kql: str, known: Iterable[str]) -> list[str]:
    """The `known` tables the query reads by name (from its parse tree: not a name in a string
    or a comment, nor one a `let` rebinds), in `known`'s order."""
    named = {t.lower() for t in tree.tables(kql)}
    return [t for t in known if t.lower() in named]


def severity_rank(name: str) -> int:
    try:
        return SEVERITIES.index(name.lower())
    except ValueError:
        raise RuleError(f"unknown severity {name!r}; use one of {', '.join(SEVERITIES)}") from None


@dataclass
class Rule:
    """A parsed rule file."""

    path: Path
    doc: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.path.stem

    @property
    def id(self) -> str:
        return str(self.doc.get("id", ""))

    @property
    def name(self) -> str:
        return str(self.doc.get("name", self.slug))

    @property
    def query(self) -> str:
        return str(self.doc.get("query", ""))

    @property
    def severity(self) -> str:
        """Our severity: the `exhunt` block's when set (it may say critical), else Sentinel's."""
        return str(self.meta.get("severity") or self.doc.get("severity", "medium")).lower()

    @property
    def confidence(self) -> str:
        return str(self.meta.get("confidence", "medium")).lower()

    @property
    def tactics(self) -> list[str]:
        return [str(t) for t in self.doc.get("tactics") or []]

    @property
    def techniques(self) -> list[str]:
        return [str(t) for t in self.doc.get("relevantTechniques") or []]

    @property
    def frequency(self) -> timedelta:
        return timespan.parse(str(self.doc.get("queryFrequency", "1h")))

    @property
    def period(self) -> timedelta:
        return timespan.parse(str(self.doc.get("queryPeriod", "1h")))

    @property
    def required_tables(self) -> list[str]:
        return [str(t) for t in self.meta.get("requiredTables") or []]

    @property
    def display_format(self) -> str | None:
        override = self.doc.get("alertDetailsOverride") or {}
        fmt = override.get("alertDescriptionFormat") or override.get("alertDisplayNameFormat")
        return str(fmt) if fmt else None

    @property
    def guide_path(self) -> Path:
        """The rule's guide: beside a user's rule, in the installed package, or in docs/rules/."""
        name = f"{self.slug}.md"
        candidates = [self.path.parent / "guides" / name, Path(str(resources.files("exhunt") / "guides")) / name]
        candidates += [parent / "docs" / "rules" / name for parent in self.path.resolve().parents]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        return candidates[0]

    def matches(self, ref: str) -> bool:
        return ref.lower() in (self.slug.lower(), self.id.lower(), self.name.lower())


def shipped_dir() -> Path:
    return Path(str(resources.files("exhunt") / "rules"))


def load_yaml(path: Path) -> Any:
    """A rule's or its tests' YAML file; unreadable, invalid or alias-bomb YAML is a RuleError
    naming the file, never a traceback."""
    try:
        return yamltext.load(path.read_text(encoding="utf-8"))
    except yamltext.AliasBombError as exc:
        raise RuleError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from None


def load_rule(path: Path, strict: bool = True) -> Rule:
    """A rule file: exhunt's format, or a Sigma rule (by its shape) converted on load. `strict`
    refuses a bad time span or severity at once (validate, which lists every problem of a file,
    loads with strict=False and reports them itself)."""
    doc = load_yaml(path)
    if sigmarule.is_sigma(doc):
        doc = sigmarule.to_exhunt(path, doc, path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "query" not in doc:
        raise RuleError(f"{path}: not a rule (a YAML mapping with a `query` is expected)")
    meta = doc.pop("exhunt", None) or {}
    if not isinstance(meta, dict):
        raise RuleError(f"{path}: the `exhunt` block must be a mapping")
    rule = Rule(path, doc, meta)
    if not strict:
        return rule
    try:
        rule.frequency, rule.period  # noqa: B018 - parse now so a bad span fails at load
        severity_rank(rule.severity)
    except ValueError as exc:
        raise RuleError(f"{path}: {exc}") from None
    return rule


def rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.y*ml") if p.is_file())
    return [path]


def load_each(refs: list[str] | None = None) -> list[Rule | tuple[Path, str]]:
    """As load_rules, but a file or name that fails gives (path, why) in its place instead of
    stopping there, so every rule can be checked and every problem listed."""
    out: list[Rule | tuple[Path, str]] = []
    shipped: list[Rule] | None = None
    for ref in refs or [str(shipped_dir())]:
        path = Path(ref)
        if path.exists():
            for p in rule_files(path):
                try:
                    out.append(load_rule(p, strict=False))
                except RuleError as exc:
                    out.append((p, str(exc).removeprefix(f"{p}: ")))
            continue
        if shipped is None:
            shipped = [r for r in load_each() if isinstance(r, Rule)]
        found = [r for r in shipped if r.matches(ref)]
        out.extend(found or [(path, f"no rule file or shipped rule named {ref!r}")])
    return out


def load_rules(refs: list[str] | None = None) -> list[Rule]:
    """Rules from files/folders, or shipped rules by slug/id/name; all shipped rules by default."""
    if not refs:
        return [load_rule(p) for p in rule_files(shipped_dir())]
    shipped: list[Rule] | None = None
    out: list[Rule] = []
    for ref in refs:
        path = Path(ref)
        if path.exists():
            out.extend(load_rule(p) for p in rule_files(path))
            continue
        if shipped is None:
            shipped = load_rules()
        found = [r for r in shipped if r.matches(ref)]
        if not found:
            names = ", ".join(r.slug for r in shipped)
            raise RuleError(f"no rule file or shipped rule named {ref!r} (shipped: {names})")
        out.extend(found)
    return out
