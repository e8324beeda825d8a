"""`exhunt simulate --check`: generate a scenario, run the rules on it, compare with its `expect`.

Alerts are tied to steps by time: an alert belongs to the last step that started at or before its
Timestamp (every step starts at its own time, at least `after` past the one before), compared to
the millisecond, as some forms keep no finer time. A rule that must alert passes when it alerts on
each step named and on no other; a rule not expected to alert (listed under no_alert, or not listed
at all) passes only when it raises nothing.

Under `expect.tuned` the same alerts go through the scenario's tuning file (tuning.apply, as
`detect --tuning` does): each rule listed there must still alert on exactly its steps, and every
other rule's alerts must all be suppressed.
"""

from __future__ import annotations

import bisect
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exhunt import tuning as tuning_mod
from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import Rule, load_rules
from exhunt.simulate.events import DEFAULT_HOST, DEFAULT_START, Simulation, generate, step_times
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import KNOWN_VENDORS, Expectation, Scenario

#: rule slug -> (scenario, step) -> alert count
Found = dict[str, dict[tuple[str, str], int]]


@dataclass
class Verdict:
    ok: bool
    scenario: str
    format: str
    text: str


def run_rules(out: Path, rules: list[Rule]) -> list[tuple[dict[str, Any], Rule]]:
    """Every alert of a hunt over the written files in `out`, with its rule."""
    result = hunt(sorted(p for p in out.iterdir() if p.is_file()), rules, HuntOptions(jobs=1))
    return list(zip(result.alerts, result.rules, strict=True))


def by_step(sim: Simulation, alerts: list[tuple[dict[str, Any], Rule]]) -> Found:
    """rule slug -> (scenario, step) -> alert count: each alert tied to the step it followed."""
    starts = step_times(sim.events)
    # to the millisecond: some forms keep no more (Winlogbeat's and Logstash's @timestamp)
    times = [t.replace(microsecond=t.microsecond - t.microsecond % 1000) for t, _, _ in starts]
    found: Found = defaultdict(lambda: defaultdict(int))
    for alert, rule in alerts:
        ts = alert.get("Timestamp")
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if isinstance(ts, datetime) and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        i = bisect.bisect_right(times, ts) - 1 if isinstance(ts, datetime) else -1
        key = (starts[i][1], starts[i][2]) if i >= 0 else ("", "(before the scenario)")
        found[rule.slug][key] += 1
    return found


def load_tuning(scenario: Scenario) -> tuning_mod.Tuning:
    """The scenario's `expect.tuned` tuning file (the shipped known vendors by name)."""
    if scenario.tuning == KNOWN_VENDORS:
        return tuning_mod.load(vendors=True)
    assert scenario.tuning is not None
    return tuning_mod.load([scenario.tuning])


def _must(exp: Expectation, found: Found, scenario: Scenario, fmt: str, prefix: str = "") -> Verdict:
    got = {st for (sc, st), n in found.get(exp.rule, {}).items() if n}
    missed = [s for s in exp.steps if s not in got]
    extra = sorted(got - set(exp.steps))
    text = f"{prefix}{exp.rule} alerts on {', '.join(exp.steps)}"
    if missed:
        text += f"; missed {', '.join(missed)}"
    if extra:
        text += f"; also alerted on {', '.join(extra)}"
    return Verdict(not missed and not extra, scenario.id, fmt, text)


def _tuned(
    scenario: Scenario, fmt: str, family: str, sim: Simulation, alerts: list[tuple[dict[str, Any], Rule]]
) -> list[Verdict]:
    """Verdicts under the scenario's tuning: what must still alert, and every other rule suppressed."""
    outcome = tuning_mod.apply([a for a, _ in alerts], load_tuning(scenario), [r for _, r in alerts])
    kept = by_step(sim, [alerts[i] for i in outcome.kept_index])
    raw = by_step(sim, alerts)
    name = KNOWN_VENDORS if scenario.tuning == KNOWN_VENDORS else Path(str(scenario.tuning)).name
    prefix = f"tuned with {name}: "
    verdicts: list[Verdict] = []
    still = {e.rule for e in scenario.tuned if family in e.families}
    for exp in scenario.tuned:
        if family in exp.families:
            verdicts.append(_must(exp, kept, scenario, fmt, prefix))
    for slug in sorted(set(raw) - still):
        left = sorted(st for (_, st), n in kept.get(slug, {}).items() if n)
        gone = sum(raw[slug].values()) - sum(kept.get(slug, {}).values())
        text = f"{prefix}{slug} suppressed ({gone} alert(s))"
        if left:
            text += f"; still alerts on {', '.join(left)}"
        verdicts.append(Verdict(not left, scenario.id, fmt, text))
    return verdicts


def check(
    scenario: Scenario,
    fmt: str,
    *,
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    rules: list[Rule] | None = None,
    exchange_root: str | None = None,
) -> list[Verdict]:
    """One verdict per expectation, then one per unexpected alert (rule and step), then (with
    `expect.tuned`) one per rule under the scenario's tuning."""
    writer = writers()[fmt]
    rules = rules if rules is not None else load_rules(None)
    sim = generate([scenario], host, start, seed, exchange_root=exchange_root)
    with tempfile.TemporaryDirectory(prefix="exhunt-simulate-") as tmp:
        writer.write(sim, Path(tmp))
        alerts = run_rules(Path(tmp), rules)
    found = by_step(sim, alerts)
    verdicts: list[Verdict] = []
    judged: set[str] = set()
    known = {r.slug for r in rules}
    for exp in scenario.expect:
        if exp.rule not in known:
            verdicts.append(Verdict(False, scenario.id, fmt, f"{exp.rule}: no such rule"))
            continue
        got = {st for (sc, st), n in found.get(exp.rule, {}).items() if n}
        if exp.must and writer.family in exp.families:
            judged.add(exp.rule)
            verdicts.append(_must(exp, found, scenario, fmt))
        elif not exp.must:
            judged.add(exp.rule)
            ok = not got
            verdicts.append(
                Verdict(
                    ok,
                    scenario.id,
                    fmt,
                    f"{exp.rule} does not alert" + ("" if ok else f"; alerted on {', '.join(sorted(got))}"),
                )
            )
    for slug in sorted(found):
        if slug in judged:
            continue
        steps = sorted(st for (_, st), n in found[slug].items() if n)
        if steps:
            verdicts.append(Verdict(False, scenario.id, fmt, f"{slug}: unexpected alert on {', '.join(steps)}"))
    if scenario.tuning is not None:
        verdicts += _tuned(scenario, fmt, writer.family, sim, alerts)
    return verdicts
