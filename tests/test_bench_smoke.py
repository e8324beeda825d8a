"""Keep bench/bench_detect.py from rotting: generate a tiny set and check detect finds exactly the planted alerts.

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


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_detect", REPO / "bench" / "bench_detect.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_detect"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tiny_bench_set_gives_exactly_the_planted_alerts(bench: ModuleType, tmp_path: Path, fmt: str) -> None:
    counts = bench.generate(tmp_path, 3000)
    assert sum(counts.values()) == 3000
    first = (tmp_path / "csv" / "DeviceFileEvents.csv").read_bytes().split(b"\r\n")[1]
    assert first.split(b",")[0].endswith(b"0Z") and len(first.split(b",")[0]) == 28  # 7 fractional digits
    code, out, _ = run_cli(["detect", str(tmp_path / fmt), "--rules", bench.RULE, "-f", "jsonl", "--flat", "-q"])
    assert code == 0
    got = {(a["DetectionType"], a["DeviceName"], a["Timestamp"]) for a in map(json.loads, out.splitlines())}
    assert got == bench.expected()
    assert bench.scan(fmt, tmp_path / fmt) == len(bench.PLANTED)


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
