"""Keep the benches from rotting: generate tiny sets and check detect finds exactly the alerts they expect.

Speed targets live in the benchmark itself, never in tests.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from conftest import REPO, run_cli


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tiny_bench_set_gives_exactly_the_scenarios_alerts(bench: ModuleType, tmp_path: Path, fmt: str) -> None:
    """Noise from the shared model plus every shipped scenario: detect (every rule) meets each
    scenario's expectations exactly, raises nothing on the noise hosts, and each alert's provenance
    names a file of its own scenario."""
    counts = bench.generate(tmp_path, 3000)
    assert sum(counts.values()) == 3000
    first = (tmp_path / "csv" / "DeviceFileEvents.csv").read_bytes().split(b"\r\n")[1]
    assert first.split(b",")[0].endswith(b"0Z") and len(first.split(b",")[0]) == 28  # 7 fractional digits
    placed = bench.scenarios().placed
    assert len(list((tmp_path / fmt / "scenarios").iterdir())) == len(placed) >= 18
    code, out, _ = run_cli(["detect", str(tmp_path / fmt), "-f", "jsonl", "--flat", "-q"])
    assert code == 0
    (tmp_path / "alerts.jsonl").write_text(out)
    res = bench.judge_alerts(tmp_path / "alerts.jsonl", fmt, tmp_path, [])
    assert [v.text for v in res.failed] == [] and res.wrong == [] and res.on_noise == 0
    assert res.alerts > 20 and sum(v.applies for v in res.verdicts) > 50
    hosts = {json.loads(line)["DeviceName"] for line in out.splitlines()}
    assert hosts <= {p.host for p in placed}
    # the yardstick scan finds the seed rule's rows in the scenarios and none in the noise
    assert bench.scan(fmt, tmp_path / fmt / "scenarios") > 0
    (tmp_path / fmt / "scenarios").rename(tmp_path / "aside")
    assert bench.scan(fmt, tmp_path / fmt) == 0


def test_one_rule_bench_judges_only_that_rule(bench: ModuleType, tmp_path: Path) -> None:
    """`--rules R`: detect runs R alone, and only R's expectations are judged (the seed rule's here)."""
    bench.generate(tmp_path, 1000)
    code, out, _ = run_cli(["detect", str(tmp_path / "parquet"), "--rules", bench.RULE, "-f", "jsonl", "--flat",
                            "-q"])
    assert code == 0
    (tmp_path / "alerts.jsonl").write_text(out)
    res = bench.judge_alerts(tmp_path / "alerts.jsonl", "parquet", tmp_path, [bench.RULE])
    assert [v.text for v in res.failed] == [] and res.on_noise == 0
    judged = [v.text for v in res.verdicts if v.applies]
    assert judged and all(t.startswith(bench.RULE) for t in judged)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_tiny_alerts_bench_set_gives_every_alert_with_its_record(tmp_path: Path, fmt: str) -> None:
    """bench/bench_alerts.py: every generated alert is found, each naming its own row."""
    spec = importlib.util.spec_from_file_location("bench_alerts", REPO / "bench" / "bench_alerts.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "bench"))
    folder = module.generate(tmp_path, 300, fmt)
    code, out, err = run_cli(["detect", str(folder), "--rules", module.RULE, "-f", "jsonl", "--flat", "-q"])
    assert code == 0, err
    (tmp_path / "alerts.jsonl").write_text(out)
    assert module.check(tmp_path / "alerts.jsonl", fmt) == (300, 300, [])

def test_winjson_bench_forms_give_the_same_alerts(tmp_path: Path) -> None:
    """bench/bench_winjson.py writes the same events as Winlogbeat ECS and as OTRF lines: each is
    read whole, as its own format, and both raise the same alerts (the planted event's)."""
    spec = importlib.util.spec_from_file_location("bench_winjson", REPO / "bench" / "bench_winjson.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alerts = {}
    for form, fmt in (("ecs", "winlogbeat-ecs"), ("otrf", "otrf-json")):
        path = tmp_path / f"{form}.json"
        module.write(path, form, 1200)
        code, out, err = run_cli(["detect", str(path), "-f", "jsonl", "--flat"])
        assert code == 0
        assert fmt in err and "Total: 1200 records read" in err and ", 0 skipped." in err, err
        alerts[form] = sorted((a["rule_name"], a["DeviceName"], a["Timestamp"])
                              for a in map(json.loads, out.splitlines()))
    assert alerts["ecs"] == alerts["otrf"] and alerts["ecs"]
