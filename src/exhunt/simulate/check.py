"""`exhunt simulate --check`: generate a scenario, run the rules on it, compare with its `expect`.

Alerts are tied to steps by time: an alert belongs to the last step that started at or before its
Timestamp (every step starts at its own time, at least `after` past the one before), compared to
the millisecond, as some forms keep no finer time. A rule that must alert passes when it alerts on
each step named and on no other; a rule not expected to alert (listed under no_alert, or not listed
at all) passes only when it raises nothing.
"""

from __future__ import annotations

import bisect
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from exhunt.hunt import HuntOptions, hunt
from exhunt.rule import Rule, load_rules
from exhunt.simulate.events import DEFAULT_HOST, DEFAULT_START, Simulation, generate, step_times
from exhunt.simulate.formats import writers
from exhunt.simulate.scenario import Scenario


@dataclass
class Verdict:
    ok: bool
    scenario: str
    format: str
    text: str


def alerts_by_step(sim: Simulation, out: Path, rules: list[Rule]) -> dict[str, dict[tuple[str, str], int]]:
    """rule slug -> (scenario, step) -> alert count, from a hunt over the written files in `out`."""
    result = hunt(sorted(p for p in out.iterdir() if p.is_file()), rules, HuntOptions(jobs=1))
    starts = step_times(sim.events)
    # to the millisecond: some forms keep no more (Winlogbeat's and Logstash's @timestamp)
    times = [t.replace(microsecond=t.microsecond - t.microsecond % 1000) for t, _, _ in starts]
    found: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for alert, rule in zip(result.alerts, result.rules, strict=True):
        ts = alert.get("Timestamp")
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if isinstance(ts, datetime) and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        i = bisect.bisect_right(times, ts) - 1 if isinstance(ts, datetime) else -1
        key = (starts[i][1], starts[i][2]) if i >= 0 else ("", "(before the scenario)")
        found[rule.slug][key] += 1
    return found


def check(
    scenario: Scenario,
    fmt: str,
    *,
    host: str = DEFAULT_HOST,
    start: datetime = DEFAULT_START,
    seed: int = 1,
    rules: list[Rule] | None = None,
) -> list[Verdict]:
    """One verdict per expectation, then one per unexpected alert (rule and step)."""
    writer = writers()[fmt]
    rules = rules if rules is not None else load_rules(None)
    sim = generate([scenario], host, start, seed)
    with tempfile.TemporaryDirectory(prefix="exhunt-simulate-") as tmp:
        writer.write(sim, Path(tmp))
        found = alerts_by_step(sim, Path(tmp), rules)
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
            missed = [s for s in exp.steps if s not in got]
            extra = sorted(got - set(exp.steps))
            ok = not missed and not extra
            text = f"{exp.rule} alerts on {', '.join(exp.steps)}"
            if missed:
                text += f"; missed {', '.join(missed)}"
            if extra:
                text += f"; also alerted on {', '.join(extra)}"
            verdicts.append(Verdict(ok, scenario.id, fmt, text))
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
    return verdicts
