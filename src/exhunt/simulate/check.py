"""`exhunt simulate --check`: generate scenarios, run the rules on them, compare with their `expect`.

Several scenarios share ONE detect per format (simulate.layout): each runs on its own host at the
same time, and an alert belongs to the scenario whose host its DeviceName names (an alert on no
scenario's host fails). Within a scenario, alerts are tied to steps by time: an alert belongs to the
last step that started at or before its Timestamp (every step starts at its own time, at least
`after` past the one before), compared at the format's resolution (the millisecond; the second for an
export that keeps no finer time). A rule that must alert passes when it alerts on each step named and
on no other; a rule not expected to alert (listed under no_alert, or not listed at all) passes only
when it raises nothing.

Every expectation gets a verdict. One a format cannot judge is "n/a", with the reason: it is meant
for another family of formats (`on`), its rule reads no table the format fills, or none of the steps
it must alert on is of a kind the format holds (the admin audit log holds cmdlets only) or recorded
by the format's collectors (a step's `seen_by`).

Under `expect.tuned` the same alerts go through the scenario's tuning file (tuning.apply, as
`detect --tuning` does): each rule listed there must still alert on exactly its steps, and every
other rule's alerts must all be suppressed. A scenario's `hunts:` are judged on the same loaded
data (simulate.huntcheck).
"""

from __future__ import annotations

import bisect
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exhunt import tuning as tuning_mod
from exhunt.hunt import HuntOptions, hunt, open_local
from exhunt.rule import Rule, load_rules, tables_named_in
from exhunt.schema import tables
from exhunt.simulate.events import DEFAULT_HOST, DEFAULT_START, Simulation, step_times
from exhunt.simulate.formats import Writer, writers
from exhunt.simulate.layout import Layout, lay_out
from exhunt.simulate.scenario import KNOWN_VENDORS, Expectation, Scenario

#: rule slug -> (scenario, step) -> alert count
Found = dict[str, dict[tuple[str, str], int]]


@dataclass
class Verdict:
    ok: bool
    scenario: str
    format: str
    text: str
    #: False: the format cannot judge the expectation (ok is then True; `text` says why).
    applies: bool = True

    @property
    def label(self) -> str:
        return "N/A " if not self.applies else "PASS" if self.ok else "FAIL"


def at_resolution(t: datetime, resolution: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=t.tzinfo)
    return t - (t - epoch) % resolution


def by_step(
    sim: Simulation, alerts: list[tuple[dict[str, Any], Rule]], resolution: timedelta = timedelta(milliseconds=1)
) -> Found:
    """rule slug -> (scenario, step) -> alert count: each alert tied to the step it followed."""
    starts = step_times(sim.events)
    # at the format's resolution: some forms keep no more (Winlogbeat's @timestamp: the millisecond)
    times = [at_resolution(t, resolution) for t, _, _ in starts]
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


def not_applicable(
    exp: Expectation,
    writer: Writer,
    rule: Rule,
    kinds: dict[str, str],
    seen: dict[str, tuple[str, ...] | None] | None = None,
) -> str | None:
    """Why `writer`'s format cannot judge `exp` (None: it can). `kinds`: step id -> step kind;
    `seen`: step id -> the collectors that record it (`seen_by`; None: all)."""
    if exp.must and writer.family not in exp.families:
        return f"meant for {', '.join(exp.families)} formats"
    if writer.tables is not None:
        read = tables_named_in(rule.query, tables()) or rule.required_tables
        if not set(read) & writer.tables:
            return f"the rule reads {', '.join(read)}; this format fills {', '.join(sorted(writer.tables))} only"
    if exp.must and writer.kinds is not None and not any(kinds.get(s) in writer.kinds for s in exp.steps):
        return f"none of its steps is a {' or '.join(sorted(writer.kinds))} step, all this format holds"
    if exp.must and seen is not None:
        unseen = [s for s in exp.steps if seen.get(s) is not None and writer.family not in (seen.get(s) or ())]
        if unseen and len(unseen) == len(exp.steps):
            return f"none of its steps is seen by {writer.family} collectors (seen_by)"
    return None


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
    scenario: Scenario, writer: Writer, fmt: str, sim: Simulation, alerts: list[tuple[dict[str, Any], Rule]],
    known: dict[str, Rule],
) -> list[Verdict]:
    """Verdicts under the scenario's tuning: what must still alert, and every other rule suppressed."""
    outcome = tuning_mod.apply([a for a, _ in alerts], load_tuning(scenario), [r for _, r in alerts])
    kept = by_step(sim, [alerts[i] for i in outcome.kept_index], writer.resolution)
    raw = by_step(sim, alerts, writer.resolution)
    name = KNOWN_VENDORS if scenario.tuning == KNOWN_VENDORS else Path(str(scenario.tuning)).name
    prefix = f"tuned with {name}: "
    verdicts: list[Verdict] = []
    kinds = {s.id: s.kind for s in scenario.steps}
    seen = {s.id: s.seen_by for s in scenario.steps}
    still: set[str] = set()
    for exp in scenario.tuned:
        reason = not_applicable(exp, writer, known[exp.rule], kinds, seen) if exp.rule in known else None
        if reason is not None:
            text = f"{prefix}{exp.rule} alerts on {', '.join(exp.steps)}: n/a ({reason})"
            verdicts.append(Verdict(True, scenario.id, fmt, text, applies=False))
            continue
        still.add(exp.rule)
        verdicts.append(_must(exp, kept, scenario, fmt, prefix))
    for slug in sorted(set(raw) - still):
        left = sorted(st for (_, st), n in kept.get(slug, {}).items() if n)
        gone = sum(raw[slug].values()) - sum(kept.get(slug, {}).values())
        text = f"{prefix}{slug} suppressed ({gone} alert(s))"
        if left:
            text += f"; still alerts on {', '.join(left)}"
        verdicts.append(Verdict(not left, scenario.id, fmt, text))
    return verdicts


def judge(
    scenario: Scenario, writer: Writer, sim: Simulation, alerts: list[tuple[dict[str, Any], Rule]], rules: list[Rule]
) -> list[Verdict]:
    """One verdict per expectation, then one per unexpected alert (rule and step), then (with
    `expect.tuned`) one per rule under the scenario's tuning. `alerts`: those of the scenario's host."""
    fmt = writer.name
    found = by_step(sim, alerts, writer.resolution)
    verdicts: list[Verdict] = []
    judged: set[str] = set()
    known = {r.slug: r for r in rules}
    kinds = {s.id: s.kind for s in scenario.steps}
    seen = {s.id: s.seen_by for s in scenario.steps}
    for exp in scenario.expect:
        if exp.rule not in known:
            verdicts.append(Verdict(False, scenario.id, fmt, f"{exp.rule}: no such rule"))
            continue
        got = {st for (sc, st), n in found.get(exp.rule, {}).items() if n}
        what = f"{exp.rule} alerts on {', '.join(exp.steps)}" if exp.must else f"{exp.rule} does not alert"
        reason = not_applicable(exp, writer, known[exp.rule], kinds, seen)
        if reason is not None:
            verdicts.append(Verdict(True, scenario.id, fmt, f"{what}: n/a ({reason})", applies=False))
            continue
        if exp.must:
            judged.add(exp.rule)
            verdicts.append(_must(exp, found, scenario, fmt))
        else:
            judged.add(exp.rule)
            ok = not got
            verdicts.append(
                Verdict(ok, scenario.id, fmt, what + ("" if ok else f"; alerted on {', '.join(sorted(got))}"))
            )
    for slug in sorted(found):
        if slug in judged:
            continue
        steps = sorted(st for (_, st), n in found[slug].items() if n)
        if steps:
            verdicts.append(Verdict(False, scenario.id, fmt, f"{slug}: unexpected alert on {', '.join(steps)}"))
    if scenario.tuning is not None:
        verdicts += _tuned(scenario, writer, fmt, sim, alerts, known)
    return verdicts


def by_host(
    layout: Layout, alerts: list[tuple[dict[str, Any], Rule]], fmt: str
) -> tuple[dict[str, list[tuple[dict[str, Any], Rule]]], list[Verdict]]:
    """Each host's alerts, and a failing verdict for each alert on a host no scenario ran on
    (or on none: a rule that drops DeviceName cannot be attributed, so it cannot pass)."""
    mine: dict[str, list[tuple[dict[str, Any], Rule]]] = defaultdict(list)
    stray: list[Verdict] = []
    for alert, rule in alerts:
        owner = layout.owner(alert.get("DeviceName"))
        if owner is None:
            stray.append(Verdict(False, "(no scenario)", fmt,
                                 f"{rule.slug}: alert on {alert.get('DeviceName')!r}, a host no scenario ran on"))
        else:
            mine[owner.host].append((alert, rule))
    return mine, stray


def check_all(
    scenarios: list[Scenario],
    fmt: str,
    *,
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    rules: list[Rule] | None = None,
    exchange_root: str | None = None,
    hunts: bool = True,
) -> list[Verdict]:
    """Every scenario's verdicts from ONE detect over all of them (layout: each on its own host, at
    the same time), scenario by scenario in the order given; then (`hunts`) the verdicts of each
    scenario's `hunts:` block, run on the same loaded data. An alert on no scenario's host fails."""
    from exhunt.simulate import huntcheck

    writer = writers()[fmt]
    rules = rules if rules is not None else load_rules(None)
    placed = lay_out(scenarios, host, start, seed, exchange_root)
    queries = huntcheck.queries(scenarios) if hunts else []
    with tempfile.TemporaryDirectory(prefix="exhunt-simulate-") as tmp:
        paths = placed.write(writer, Path(tmp))
        pairs: list[tuple[dict[str, Any], Rule]] = []
        ran: dict[str, list[Verdict]] = {}
        if paths:  # a format whose collectors saw none of the steps (seen_by) writes nothing: no alerts
            local, _ = open_local(paths, [r.query for r in rules] + queries, HuntOptions(jobs=1), lines_later=True)
            with local:
                result = hunt(paths, rules, HuntOptions(jobs=1), backend=local)
                ran = huntcheck.run(placed, writer, local) if hunts else {}
            pairs = list(zip(result.alerts, result.rules, strict=True))
    mine, stray = by_host(placed, pairs, fmt)
    verdicts: list[Verdict] = []
    for p in placed.placed:
        verdicts += judge(p.scenario, writer, p.sim, mine[p.host], rules)
        verdicts += ran.get(p.host, [])
    return verdicts + stray


def check(
    scenario: Scenario,
    fmt: str,
    *,
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    rules: list[Rule] | None = None,
    exchange_root: str | None = None,
    hunts: bool = True,
) -> list[Verdict]:
    """`check_all` of one scenario, on `host` itself."""
    return check_all([scenario], fmt, host=host, start=start, seed=seed, rules=rules,
                     exchange_root=exchange_root, hunts=hunts)
