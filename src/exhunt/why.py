"""Why an alert fired: its rule's conditions, evaluated on the rows behind that alert.

`exhunt detect PATHS --explain ID` hunts as usual, finds the alert whose `alert_id` starts with
ID and explains it. The rule's query is rewritten (exhunt.kql.conditions) so that each `where`
of its per-row part keeps every row and says, per node of its and / or / not tree, whether it
held, with the values the atoms read; the rewritten query runs in the same engine with the same
clock and window as the rule's run that raised the alert, and the alert's own rows are picked
out of its result by the alert's values, bound as parameters (never written into a query: they
come from the data). What the rule computes over many rows (a correlation's join and
thresholds) is listed with the alert's own values: it cannot be judged on one row.

(`exhunt rules show` is exhunt.explain, the rule's guide; this module is about one alert.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from exhunt import hunt as hunting
from exhunt import replay
from exhunt.alerts import HEAD, iso, jsonable
from exhunt.backends.base import Window
from exhunt.errors import RuleError, UsageError
from exhunt.kql import conditions
from exhunt.kql.conditions import Condition, Definition, Read, Step
from exhunt.rule import Rule
from exhunt.safetext import shown

#: What `--explain` tells about an alert (JSON-ready).
Explanation = dict[str, Any]
_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


class Matching(Protocol):
    """An engine that can pick rows of a query's result by value (DuckDBBackend)."""

    def tables(self) -> dict[str, list[str]]: ...

    def query_matching(self, kql: str, match: dict[str, Any], now: datetime | None = None,
                       window: Window | None = None, limit: int = 100) -> pa.Table: ...


def find(alerts: Sequence[dict[str, Any]], ref: str, failed: Sequence[str] = ()) -> int:
    """The index of the alert whose id is `ref` or starts with it; UsageError when none or
    several do (`failed`: the rules that failed, named when no alert has the id)."""
    wanted = ref.strip().lower()
    if not wanted:
        raise UsageError("--explain needs an alert id (the alert_id field of --format json, jsonl or csv)")
    hits = [i for i, a in enumerate(alerts) if str(a.get("alert_id", "")).startswith(wanted)]
    exact = [i for i in hits if alerts[i].get("alert_id") == wanted]
    if exact:
        return exact[0]
    if not hits:
        broken = f"; these rules failed: {', '.join(failed)}" if failed else ""
        raise UsageError(f"--explain: no alert has the id {shown(wanted)!r} ({len(alerts)} alert(s) in this run; "
                         f"their ids are the alert_id field of --format json, jsonl or csv{broken})")
    if len(hits) > 1:
        ids = ", ".join(str(alerts[i]["alert_id"]) for i in hits[:5])
        raise UsageError(f"--explain: {shown(wanted)!r} starts {len(hits)} alert ids ({ids}"
                         f"{', ...' if len(hits) > 5 else ''}); give more of the id")
    return hits[0]


def explain_paths(paths: list[Path], rules: list[Rule], options: hunting.HuntOptions, ref: str) -> Explanation:
    """Hunt `paths` with `rules` in embedded DuckDB, then explain the alert `ref` names."""
    # Lines found at load time (not later): the rows the explanation shows name their record.
    backend, _ = hunting.open_local(paths, [r.query for r in rules], options)
    with backend:
        result = hunting.hunt(paths, rules, options, backend=backend)
        i = find(result.alerts, ref, [run.rule.slug for run in result.errors])
        rule = result.rules[i]
        rows = next(run.rows for run in result.runs if run.rule is rule)
        return explain(backend, rule, result.alerts[i], rows, options.now)


# -- the rows and runs behind an alert ---------------------------------------------------------


def _time_of(row: dict[str, Any]) -> datetime | None:
    for key in ("Timestamp", "TimeGenerated"):
        if isinstance(row.get(key), datetime):
            return row[key]
    return next((v for v in row.values() if isinstance(v, datetime)), None)


def _row_of(alert: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The rule's result row the alert was built from (its values as the engine gave them)."""
    for row in rows:
        when = _time_of(row)
        if (iso(when) if when else None) != alert.get("Timestamp"):
            continue
        if all(alert.get(k) == jsonable(v) for k, v in row.items()
               if not k.startswith("_") and k not in HEAD and k != "TimeGenerated"):
            return row
    return None


def runs_of(rule: Rule, when: datetime | None, now: datetime | None) -> list[tuple[datetime | None, Window | None]]:
    """(now(), window) of the rule's runs that can have raised an alert on a row at `when`, in
    run order: the pinned run (--now), the slice's run of a rule judged row by row, else every
    scheduled window holding `when` (see exhunt.replay)."""
    if now is not None:
        return [(now, (now - rule.period, now))]
    if when is None:
        return [(None, None)]
    size = rule.frequency // _US
    end = _EPOCH + -(-((when - _EPOCH) // _US) // size) * size * _US
    if replay.rowwise(rule):
        return [(end, (end - rule.frequency, end))]
    steps = max(1, -(-rule.period // rule.frequency))
    return [(e, (e - rule.period, e)) for e in (end + i * rule.frequency for i in range(steps))]


def _matchable(value: Any) -> bool:
    return value is not None and not isinstance(value, (list, dict, tuple))


# -- evaluation ----------------------------------------------------------------------------------


def explain(backend: Matching, rule: Rule, alert: dict[str, Any], rows: list[dict[str, Any]],
            now: datetime | None = None) -> Explanation:
    """The explanation of `alert` (raised by `rule`; `rows` are the rule's result rows)."""
    doc: Explanation = {k: alert.get(k) for k in ("alert_id", "rule_id", "rule_name", "severity", "Timestamp",
                                                  "DeviceName")}
    doc.update({"evaluated": None, "rows": [], "over_many_rows": [], "notes": []})
    row = _row_of(alert, rows)
    columns = [k for k in (row or alert) if not k.startswith("_")]
    plan = conditions.plan(rule.query, set(backend.tables()), columns)
    if plan is None:
        doc["notes"].append("the rule's query could not be followed operator by operator, so its conditions "
                            "were not evaluated")
        return doc
    seen: set[int] = set()
    for output in plan.outputs:
        for step in output.post:
            if id(step.node) not in seen and step.operator not in _PLAIN:
                seen.add(id(step.node))
                doc["over_many_rows"].append(_many(step, alert))
    failure = None
    if row is not None:
        found, failure = _behind(backend, rule, plan, row, now)
        if found is not None:
            doc["evaluated"], doc["rows"] = found
    if not doc["rows"]:
        why = (f"the query evaluating them failed: {failure}" if failure else
               "the alert's result row was not found again" if row is None else
               "no row behind the alert was found again")
        doc["notes"].append(f"its conditions were not evaluated ({why}); they are listed under conditions")
        doc["conditions"] = [_many(step, alert, None) for step in plan.steps if step.condition]
    elif not any(r["held"] for r in doc["rows"]):
        doc["notes"].append("no row passed every condition when evaluated again with the run's now() and "
                            "window: the rows closest to the alert are shown")
    if doc["over_many_rows"]:
        doc["notes"].append("the steps over many rows (a join, an aggregation) are not judged on one row: "
                            "they are shown with the alert's own values")
    return doc


#: Operators after the per-row part that select nothing (not listed among the many-row steps).
_PLAIN = frozenset({"project", "project-away", "project-keep", "project-rename", "project-reorder", "extend",
                    "sort", "as", "serialize", "render"})


def _behind(backend: Matching, rule: Rule, plan: conditions.Plan, row: dict[str, Any], now: datetime | None,
            ) -> tuple[tuple[dict[str, Any], list[dict[str, Any]]] | None, str | None]:
    """The rows behind the alert's result `row` (see _evaluate), from the first of the plan's
    outputs that finds any; else None, with the engine's error if a query failed."""
    failure = None
    for output in plan.outputs:
        names = {k: k for k in row if not k.startswith("_")} if output.whole else output.trace
        match = {src: row[col] for col, src in names.items() if _matchable(row.get(col))}
        if not match:
            continue
        try:
            found = _evaluate(backend, rule, plan, output, match, _time_of(row), now)
        except RuleError as exc:  # the rewritten query is KQL the engine cannot run
            failure = str(exc)
            continue
        if found is not None:
            return found, None
    return None, failure


def _evaluate(backend: Matching, rule: Rule, plan: conditions.Plan, output: conditions.Output,
              match: dict[str, Any], when: datetime | None, pinned: datetime | None,
              ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The rows behind the alert, from the first of the rule's runs where one passed every
    condition (else the first run that found any), with that run's now() and window."""
    first: tuple[dict[str, Any], list[dict[str, Any]]] | None = None
    for now, window in runs_of(rule, when, pinned):
        found = backend.query_matching(output.query, match, now, window).to_pylist()
        rows = _unique([_row(plan, r) for r in found])
        if not rows:
            continue
        evaluated = {"now": iso(now) if now else None,
                     "window": [iso(window[0]), iso(window[1])] if window else None}
        if any(r["held"] for r in rows):
            return evaluated, sorted(rows, key=lambda r: not r["held"])
        first = first or (evaluated, rows)
    return first


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out, seen = [], set()
    for r in rows:
        key = repr(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _row(plan: conditions.Plan, result: dict[str, Any]) -> dict[str, Any]:
    """One row behind the alert: where it was read and every step it went through."""
    steps: list[dict[str, Any]] = []
    for step in plan.steps:
        if result.get(step.marker) is not True:
            continue
        if step.condition is None:
            steps.append({"operator": step.operator, "part": step.part or None, "text": step.text})
            continue
        node = _node(step.condition, result)
        steps.append({"operator": step.operator, "part": step.part or None, "text": step.text,
                      "held": node["held"] is True, "condition": node})
    return {"table": result.get(conditions.TABLE_COLUMN), "source_file": result.get(conditions.PROVENANCE[0]),
            "source_record": result.get(conditions.PROVENANCE[1]),
            "held": all(s.get("held", True) for s in steps), "steps": steps}


def _held(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _node(cond: Condition, result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": cond.text, "held": _held(result.get(cond.column))}
    if cond.logic:
        out["logic"] = cond.logic
        out["children"] = [_node(c, result) for c in cond.children]
    else:
        out["reads"] = [_read(r, result) for r in cond.reads]
    return out


def _read(read: Read, result: dict[str, Any]) -> dict[str, Any]:
    if read.constant is not None:
        return {"name": read.name, "constant": read.constant}
    out: dict[str, Any] = {"name": read.name}
    if read.column:
        out["value"] = jsonable(result.get(read.column))
    used = next((d for d in read.definitions if d.expanded and result.get(d.marker) is True), None)
    if used is not None:
        out["computed"] = _definition(used, result)
    return out


def _definition(d: Definition, result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": d.text}
    if d.tree is not None:
        out["condition"] = _node(d.tree, result)
    if d.branches:
        chosen = False
        cases = []
        for when, then in d.branches:
            node = _node(when, result)
            pick = not chosen and node["held"] is True
            chosen = chosen or pick
            cases.append({"when": node, "then": then, "chosen": pick})
        out["cases"] = cases
        if d.otherwise is not None:
            out["otherwise"] = {"then": d.otherwise, "chosen": not chosen}
    return out


def _many(step: Step, alert: dict[str, Any], held: bool | None = True) -> dict[str, Any]:
    """A step not evaluated on a row, with the alert's values for what its conditions read
    (where the alert has an unchanged copy of the column). `held`: after the per-row part a
    `where` held for the rows behind the alert, since the alert exists."""
    out: dict[str, Any] = {"operator": step.operator, "part": step.part or None, "text": step.text}
    if step.condition is not None:
        out["held"] = held
        out["condition"] = _static(step.condition, alert, step.carried)
        out["condition"]["held"] = held
    return out


def _static(cond: Condition, alert: dict[str, Any], carried: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"text": cond.text, "held": None}
    if cond.logic:
        out["logic"] = cond.logic
        out["children"] = [_static(c, alert, carried) for c in cond.children]
        return out
    reads = []
    for r in cond.reads:
        column = carried.get(r.name)
        if r.constant is not None:
            reads.append({"name": r.name, "constant": r.constant})
        elif column is not None and column in alert:
            reads.append({"name": r.name, "alert_value": alert[column], "alert_column": column})
        else:
            reads.append({"name": r.name})
    out["reads"] = reads
    return out
