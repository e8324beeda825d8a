"""Attacker text never reaches a terminal or a spreadsheet as anything but inert text.

File names, values and rule text carry terminal escape sequences (clear screen, cursor
report, window title, OSC 8 hyperlink), C1 controls and bidi overrides: every
human-facing output shows them escaped; JSON keeps them exact. CSV cells that a
spreadsheet would run as a formula are neutralised (OWASP).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

import helpers
from conftest import run_cli
from exhunt.output.serial import write_csv
from exhunt.rule import shipped_dir

SEED = "exchange-transport-agent-seed"
CLEAR, CURSOR_REPORT = "\x1b[2J", "\x1b[6n"
TITLE = "\x1b]0;pwned\x07"
LINK = "\x1b]8;;https:evil.example\x07click\x1b]8;;\x07"  # no "/": it goes into a file name too
#: Characters that must never come out raw: ESC, BEL, a C1 CSI, a right-to-left override.
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def _assert_inert(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"raw {ch!r} in output:\n{text!r}"


def test_shown_escapes_controls_and_bidi_and_keeps_text() -> None:
    from exhunt.safetext import shown

    assert shown("a\x1b[2Jb\x07c") == "a\\x1b[2Jb\\x07c"
    assert shown("x\x9by\x7f\x00") == "x\\x9by\\x7f\\x00"
    assert shown("evil\u202egnp.exe \u2066i\u2069") == "evil\\u202egnp.exe \\u2066i\\u2069"
    assert shown("line1\nline2\tx\r") == "line1\\nline2\\tx\\r"
    assert shown("line1\nline2\tx\r", multiline=True) == "line1\nline2\tx\\r"
    assert shown(r"C:\Program Files\Exchange\évil ünïcode.dll") == r"C:\Program Files\Exchange\évil ünïcode.dll"


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A folder holding one CSV export whose name and values carry escape sequences."""
    folder = tmp_path / "data"
    folder.mkdir()
    row = dict(helpers.FILE_ROWS[0])
    row["FileName"] = f"ev{CLEAR}il{LINK}\u202egnp.dll"
    row["FolderPath"] = helpers.EXCH + r"\TransportRoles\agents" + "\\" + row["FileName"]
    row["DeviceName"] = f"exch01{CURSOR_REPORT}\x9b31m"
    row["InitiatingProcessCommandLine"] = f"powershell {TITLE} [bold]x[/bold]"
    bad_time = dict(helpers.FILE_ROWS[1], Timestamp=f"{CLEAR}not a time")
    helpers.write_csv(folder / f"DeviceFileEvents_{CLEAR}{CURSOR_REPORT}{TITLE}{LINK}[red]x.csv",
                      "DeviceFileEvents", [row, bad_time])
    return folder


def test_detect_table_and_summary_show_escapes(hostile: Path) -> None:
    code, out, err = run_cli(["detect", str(hostile), "--rules", SEED, "--verbose"])
    assert code == 0, err
    _assert_inert(out)
    _assert_inert(err)
    flat = "".join(out.split())
    assert "ev\\x1b[2Jil\\x1b]8;;https:evil.example\\x07click\\x1b]8;;\\x07\\u202egnp.dll" in flat
    assert "exch01\\x1b[6n\\x9b31m"[:15] in flat  # the Device column is 15 wide
    # The file name, in the input table and in the message about its bad row.
    name = ("DeviceFileEvents_\\x1b[2J\\x1b[6n\\x1b]0;pwned\\x07"
            "\\x1b]8;;https:evil.example\\x07click\\x1b]8;;\\x07[red]x.csv")
    assert name in err
    assert f"{name}:line 3: skipped: bad Timestamp" in err
    assert "'\\x1b[2Jnot a time'" in err  # the value it quotes


def test_detect_json_keeps_values_exact(hostile: Path) -> None:
    code, out, err = run_cli(["detect", str(hostile), "--rules", SEED, "-f", "jsonl", "--flat", "-q"])
    assert code == 0, err
    (alert,) = [json.loads(line) for line in out.splitlines()]
    assert alert["FileName"] == f"ev{CLEAR}il{LINK}\u202egnp.dll"
    assert alert["DeviceName"] == f"exch01{CURSOR_REPORT}\x9b31m"
    assert CLEAR in alert["source_file"]
    assert "\x1b" not in out  # JSON writes the escape itself: \u001b
    assert "\\u001b[2J" in out


def test_query_table_shows_column_names_and_values_escaped(hostile: Path) -> None:
    kql = f'DeviceFileEvents | where FileName endswith ".dll" | project Timestamp, ["{CLEAR}col"] = DeviceName'
    code, out, err = run_cli(["query", kql, str(hostile)])
    assert code == 0, err
    _assert_inert(out)
    _assert_inert(err)
    header, row = out.splitlines()[:2]
    assert header.split() == ["Timestamp", "\\x1b[2Jcol"]  # the query's own columns, escaped
    assert row.split()[1] == "exch01\\x1b[6n\\x9b31m"


def test_error_naming_a_file_is_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"gone{CLEAR}{TITLE}"
    code, _, err = run_cli(["detect", str(missing)])
    assert code == 2
    _assert_inert(err)
    assert "gone\\x1b[2J\\x1b]0;pwned\\x07: no such file or folder" in err


def _hostile_rule(tmp_path: Path) -> Path:
    doc = yaml.safe_load((shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8"))
    doc["name"] = f"Seed {TITLE}[blink]x[/blink]"
    doc["description"] = f"Look {CLEAR} here: [a link](https://evil.example/{CURSOR_REPORT}) \u202eabc"
    doc["relevantTechniques"] = [f"T1505{CURSOR_REPORT}"]
    doc["exhunt"]["notes"] = f"note {LINK}"
    doc["query"] = doc["query"] + f"\n// {CLEAR} comment"
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / f"seed{CLEAR}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_rules_list_show_and_validate_escape_rule_text(tmp_path: Path) -> None:
    path = _hostile_rule(tmp_path)
    code, out, _ = run_cli(["rules", "list", str(path.parent)])
    assert code == 0
    _assert_inert(out)
    assert out.splitlines()[1].startswith("seed\\x1b[2J  ")
    assert "T1505\\x1b[6n" in out

    code, out, _ = run_cli(["rules", "show", str(path)])
    assert code == 0
    _assert_inert(out)
    assert "Seed \\x1b]0;pwned\\x07[blink]x[/blink]  (seed\\x1b[2J)" in out
    assert "Look \\x1b[2J here" in out and "\\u202eabc" in out
    assert "// \\x1b[2J comment" in out
    assert "note \\x1b]8;;https:evil.example\\x07click" in out

    code, _, err = run_cli(["rules", "validate", str(path)])
    _assert_inert(err)
    assert "seed\\x1b[2J" in err


def test_rules_show_in_a_terminal_makes_no_hyperlink(tmp_path: Path) -> None:
    """Rendered for a terminal (colours on), the rule's own text still brings no escape of
    its own, and a Markdown link in it does not become an OSC 8 hyperlink."""
    from exhunt.explain import show
    from exhunt.rule import load_rule
    from exhunt.safetext import console

    buf = io.StringIO()
    show(load_rule(_hostile_rule(tmp_path)), console(file=buf, force_terminal=True, width=100))
    text = buf.getvalue()
    assert "\x1b]8;" not in text and "\x07" not in text and "\u202e" not in text
    assert "\x1b[2J" not in text and "\x1b[6n" not in text
    assert "\\x1b[2J" in text


def test_csv_output_neutralises_formula_cells() -> None:
    rows = [{"=cmd": "=1+1", "plus": "+1", "minus": "-2+3", "at": "@SUM(A1)", "tab": "\tx", "cr": "\ry",
             "safe": "cmd.exe", "n": -5, "f": 1.5, "none": None, "b": True, "list": ["=x"], "quote": 'a"b'}]
    buf = io.StringIO()
    write_csv(rows, buf)
    lines = buf.getvalue().split("\n")
    assert lines[0] == '"\'=cmd","plus","minus","at","tab","cr","safe","n","f","none","b","list","quote"'
    assert lines[1] == ('"\'=1+1","\'+1","\'-2+3","\'@SUM(A1)","\'\tx","\'\ry","cmd.exe",-5,1.5,"","true",'
                        '"[""=x""]","a""b"')
    parsed = list(csv.reader(io.StringIO(buf.getvalue())))
    assert parsed[1][:6] == ["'=1+1", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\ry"]


def test_detect_csv_neutralises_attacker_cells(tmp_path: Path) -> None:
    row = dict(helpers.FILE_ROWS[0], InitiatingProcessCommandLine='=HYPERLINK("https://evil.example","x")',
               InitiatingProcessAccountName="@admin")
    helpers.write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", [row])
    code, out, err = run_cli(["detect", str(tmp_path), "--rules", SEED, "-f", "csv", "--flat"])
    assert code == 0, err
    (alert,) = list(csv.DictReader(io.StringIO(out)))
    assert alert["InitiatingProcessCommandLine"] == '\'=HYPERLINK("https://evil.example","x")'
    assert alert["AccountName"] == "'@admin"
    assert alert["FileName"] == "evil.dll"
