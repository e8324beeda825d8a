"""The user guide's simulate -> detect walk-through of the LightNeuron chain is what the commands
print: the summary line and the chain's steps are checked against a real run."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_cli

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "user-guide.md"


def _example() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    start = text.index("$ exhunt simulate lightneuron-emulation --format mde-csv --out ln-sim")
    return text[start:text.index("```", start)]


def test_the_guide_shows_what_simulate_then_detect_prints(tmp_path: Path) -> None:
    out = tmp_path / "ln-sim"
    code, printed, err = run_cli(["simulate", "lightneuron-emulation", "--format", "mde-csv", "--out", str(out)])
    assert code == 0, err
    example = _example()
    for name in re.findall(r"^ln-sim/(\S+)$", example, re.M):
        assert (out / name).is_file(), name
    code, printed, err = run_cli(["detect", str(out)])
    shown = printed + err
    assert code in (0, 1), shown
    for line in ("Total: 25 records read, 25 used, 0 skipped.", "22 alert(s) from 10 rule(s).",
                 "1 incident(s), 15 evidence, 22 alert(s)"):
        assert line in example and line in shown, line
    steps = [s.strip() for s in re.findall(r"^    (\d\d:\d\d:\d\d .*)$", example, re.M)]
    assert len(steps) == 8
    for step in steps:
        assert step.rstrip("…") in shown, step
