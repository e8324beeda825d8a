"""The bundled demo (demo/, what `make run` hunts): the alerts its story should raise, no more, no fewer.

scripts/make_demo.py renders the story in scripts/demo/exch01.yaml with the simulator:
exch01.contoso.local backdoored LightNeuron-style between benign Exchange work (a cumulative update,
a vendor agent installed the supported way, routine Pickup and worker activity). Each expected
alert below is tied to a step of that story.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from conftest import REPO, run_cli
from exhunt.rule import shipped_dir

DEMO = REPO / "demo"

#: The column that tells one alert of a rule from another in the story.
KEY = {
    "exchange-agent-config-tampering": "InitiatingProcessFileName",
    "exchange-agent-dll-placement": "FileName",
    "exchange-pickup-drop-by-transport": "FileName",
    "exchange-transport-agent-chain": "Stages",
    "exchange-transport-agent-cmdlet": "Cmdlet",
    "exchange-transport-agent-errors": "EventID",
    "exchange-transport-agent-seed": "DetectionType",
    "exchange-transport-foreign-module": "FileName",
    "exchange-transport-process-child": "FileName",
    "lightneuron-indicators": "FileName",
}

INTEROP = "Microsoft.Exchange.Security.Interop.dll"
CHAIN = "agent DLL placed, agent cmdlet or config change, foreign DLL loaded by transport, transport service restart"

#: (rule, time to the second, key column) for every alert the demo raises.
EXPECTED = sorted([
    # Fri 14:05 vendor agent via the Exchange Management Shell: the cmdlet rule alerts on every agent
    # install by design (not escalated: Exchange path, factory matches its assembly).
    ("exchange-transport-agent-cmdlet", "2026-11-20 14:05:40", "Install-TransportAgent"),
    ("exchange-transport-agent-cmdlet", "2026-11-20 14:05:58", "Enable-TransportAgent"),
    # Sat 02:04 first try: agent staged in C:\Windows\Temp and installed from there.
    ("lightneuron-indicators", "2026-11-21 02:04:47", INTEROP),
    ("exchange-transport-agent-seed", "2026-11-21 02:05:10", "Exchange_Transport_Agent_Install"),
    ("exchange-transport-agent-cmdlet", "2026-11-21 02:05:10", "Install-TransportAgent"),
    ("exchange-transport-agent-chain", "2026-11-21 02:05:10", CHAIN),
    ("exchange-agent-config-tampering", "2026-11-21 02:05:14", "powershell.exe"),
    ("exchange-transport-foreign-module", "2026-11-21 02:05:39", INTEROP),
    ("lightneuron-indicators", "2026-11-21 02:05:39", INTEROP),
    ("exchange-transport-agent-errors", "2026-11-21 02:05:40", "7001"),
    # Sat 02:16 second try with msinp.ps1: files into the Exchange folders, reinstall, restart.
    ("exchange-transport-agent-seed", "2026-11-21 02:16:40", "Exchange_Transport_DLL_Write"),
    ("exchange-agent-dll-placement", "2026-11-21 02:16:40", "exdbdata.dll"),
    ("lightneuron-indicators", "2026-11-21 02:16:40", "exdbdata.dll"),
    ("lightneuron-indicators", "2026-11-21 02:16:41", "winmail.dat"),
    # the intruder's cmd.exe copying msinp.ps1 in over WMI, its file, and the cmd.exe that launches it
    ("lightneuron-indicators", "2026-11-21 02:16:54", "cmd.exe"),
    ("lightneuron-indicators", "2026-11-21 02:16:55", "msinp.ps1"),
    ("lightneuron-indicators", "2026-11-21 02:16:58", "cmd.exe"),
    ("lightneuron-indicators", "2026-11-21 02:16:58", "powershell.exe"),
    ("exchange-transport-agent-cmdlet", "2026-11-21 02:16:59", "Uninstall-TransportAgent"),
    ("exchange-transport-agent-cmdlet", "2026-11-21 02:16:59", "Install-TransportAgent"),
    ("exchange-transport-agent-cmdlet", "2026-11-21 02:16:59", "Enable-TransportAgent"),
    ("exchange-transport-agent-seed", "2026-11-21 02:17:09", "Exchange_Transport_DLL_Write"),
    ("exchange-agent-dll-placement", "2026-11-21 02:17:09", INTEROP),
    ("lightneuron-indicators", "2026-11-21 02:17:09", INTEROP),
    ("exchange-transport-agent-seed", "2026-11-21 02:17:30", "Exchange_Transport_Agent_Install"),
    ("exchange-transport-agent-cmdlet", "2026-11-21 02:17:30", "Install-TransportAgent"),
    ("exchange-agent-config-tampering", "2026-11-21 02:17:31", "powershell.exe"),
    ("exchange-transport-foreign-module", "2026-11-21 02:17:58", INTEROP),
    ("exchange-transport-foreign-module", "2026-11-21 02:17:58", "exdbdata.dll"),
    ("lightneuron-indicators", "2026-11-21 02:17:58", INTEROP),
    ("lightneuron-indicators", "2026-11-21 02:17:58", "exdbdata.dll"),
    ("lightneuron-indicators", "2026-11-21 02:18:04", "msmdat.xml"),
    # The agent at work: mail out through Pickup, a slow agent, an operator command.
    ("exchange-pickup-drop-by-transport", "2026-11-21 09:12:07", "msg25478016"),
    ("exchange-transport-agent-errors", "2026-11-22 11:40:12", "1050"),
    ("exchange-transport-agent-seed", "2026-11-23 14:05:11", "Exchange_Transport_OS_Command"),
    ("exchange-transport-process-child", "2026-11-23 14:05:11", "cmd.exe"),
    ("lightneuron-indicators", "2026-11-23 14:05:12", "winmail.dat"),
    ("exchange-pickup-drop-by-transport", "2026-11-23 14:06:30", "msg130203359"),
])


def slugs() -> dict[str, str]:
    """Rule name -> file name of every shipped rule."""
    out = {}
    for path in shipped_dir().glob("*.yaml"):
        out[yaml.safe_load(path.read_text(encoding="utf-8"))["name"]] = path.stem
    return out


def key(alert: dict[str, Any], slug: str) -> tuple[str, str, str]:
    when = alert["Timestamp"][:19].replace("T", " ")
    return slug, when, str(alert[KEY[slug]])


def test_demo_alerts_are_the_story() -> None:
    code, out, err = run_cli(["detect", str(DEMO), "-f", "jsonl", "--flat"])
    assert code == 0, err
    names = slugs()
    alerts = [json.loads(line) for line in out.splitlines() if line.strip()]
    got = sorted(key(a, names[a["rule_name"]]) for a in alerts)
    assert got == EXPECTED
    assert {s for s, _, _ in got} == set(KEY) == set(names.values()), "every shipped rule fires on the demo"
    totals = re.search(r"Total: (\d+) records read, (\d+) used, (\d+) skipped\.", err)
    assert totals is not None, err
    assert totals.group(3) == "0"


def test_make_run_command_exits_0() -> None:
    """The recipe of the Makefile's `run` target, with $(BIN) the running venv."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^run:.*\n\t(.+)$", makefile, re.M)
    assert recipe is not None
    command = recipe.group(1).replace("$(BIN)", str(Path(sys.executable).parent))
    done = subprocess.run(shlex.split(command), cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "38 alert(s) from 10 rule(s)." in done.stderr


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_demo", REPO / "scripts" / "make_demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep the tree free of __pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def test_demo_files_are_the_generator_output(tmp_path: Path) -> None:
    """demo/ holds exactly what the generator writes (regenerate with `python scripts/make_demo.py`)."""
    written = _generator().write_all(tmp_path)
    assert [p.name for p in written] == sorted(p.name for p in DEMO.iterdir())
    for path in written:
        assert path.read_bytes() == (DEMO / path.name).read_bytes(), f"{path.name} differs: rerun scripts/make_demo.py"
