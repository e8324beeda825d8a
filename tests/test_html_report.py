"""The HTML report (`detect --html`): what it shows of demo/, and that hostile data stays text.

The browser tests open the page in a real headless Chromium (`--dump-dom` gives the DOM after
the page's script ran) and skip with the reason where no `chromium` is installed (`.ci/run`
installs Debian's). The rest read the file itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from exhunt import hunt as hunting
from exhunt import timeline as timelines
from exhunt.incidents import group
from exhunt.output import html as report
from exhunt.rule import load_rule, load_rules
from helpers import write_jsonl

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (apt-get install chromium; .ci/run installs it where it can)")

#: What demo/ raises, per rule (tests/test_demo.py pins the same 38 alerts).
DEMO_RULES = {
    "LightNeuron (Turla) transport-agent indicators": ("critical", 13),
    "Exchange transport agent persistence (seed rule)": ("critical", 5),
    "Exchange transport-agent persistence chain on one server": ("critical", 1),
    "Unexpected child of an Exchange transport process": ("critical", 1),
    "Exchange transport-agent cmdlet (install, enable, set, disable, uninstall)": ("high", 7),
    "Foreign module loaded by the Exchange transport process": ("high", 3),
    "Exchange transport agent configuration file tampering": ("high", 2),
    "Exchange transport process writing into the Pickup folder": ("high", 2),
    "Executable written into an Exchange agent folder": ("high", 2),
    "Exchange transport reports an unknown or out-of-place agent": ("medium", 2),
}

IMG = '<img src=x onerror="document.documentElement.dataset.pwned=1">'
SCRIPT = "<script>document.documentElement.dataset.pwned=2</script>"
SVG = '<svg onload="document.documentElement.dataset.pwned=3">'
HOSTILE_HOST = "exch66" + SVG
#: A command line holding every attack: markup, a script, the end of a textarea, a javascript:
#: URL and a template expression (a template engine that evaluated data would print 49).
HOSTILE_COMMAND = (f"powershell.exe -c \"Install-TransportAgent -Name '{IMG}' -TransportAgentFactory Evil.Factory "
                   f"-AssemblyPath 'C:\\Users\\Public\\</textarea>{SCRIPT}.dll'\" javascript:alert(1) {{{{7*7}}}}")
#: An event near the alert that no rule alerts on: the timeline shows it.
NEARBY_COMMAND = f"notepad.exe </textarea>{SCRIPT} javascript:void(0) {{{{7*7}}}}"


# -- a DOM read back ----------------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Dom(HTMLParser):
    """Elements (tag, attributes) and text chunks, each with its ancestors' (tag, id, class)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.chunks: list[tuple[str, tuple[tuple[str, str, str, int], ...]]] = []
        self._stack: list[tuple[str, str, str, int]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag not in VOID:
            self._stack.append((tag, values.get("id", ""), values.get("class", ""), len(self.elements)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data: str) -> None:
        self.chunks.append((data, tuple(self._stack)))

    def text(self, within: str | None = None) -> str:
        """The text of the page, or of the elements whose id is `within` or whose class has it."""
        def inside(stack: tuple[tuple[str, str, str, int], ...]) -> bool:
            return within is None or any(i == within or within in c.split() for _, i, c, _ in stack)
        return " ".join(data for data, stack in self.chunks if inside(stack))

    def texts(self, cls: str) -> list[str]:
        """The text of each element of class `cls`, whitespace collapsed, in page order."""
        out: dict[int, list[str]] = {}
        for data, stack in self.chunks:
            owner = next((n for _, _, c, n in stack if cls in c.split()), None)
            if owner is not None:
                out.setdefault(owner, []).append(data)
        return [" ".join(" ".join(parts).split()) for _, parts in sorted(out.items())]

    def count(self, tag: str, cls: str | None = None) -> int:
        return sum(1 for t, a in self.elements if t == tag and (cls is None or cls in a.get("class", "").split()))

    def html_element(self) -> dict[str, str]:
        return next(a for t, a in self.elements if t == "html")


def browse(page: Path, tmp: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran, from headless Chromium (and a screenshot)."""
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}"]
    url = page.resolve().as_uri()
    done = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1280,2000", url],
                              capture_output=True, text=True, timeout=180, check=False)
        assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-2000:]
    return done.stdout


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """`exhunt detect demo/ --html`: the page and the alerts (jsonl) of the same run."""
    folder = tmp_path_factory.mktemp("demo-report")
    page, alerts = folder / "report.html", folder / "alerts.jsonl"
    code, _, err = run_cli(["detect", str(DEMO), "-q", "-f", "jsonl", "--flat", "-o", str(alerts), "--html", str(page)])
    assert code == 0, err
    return page, [json.loads(line) for line in alerts.read_text(encoding="utf-8").splitlines()]


def _hostile_rows() -> list[dict[str, Any]]:
    common = {"DeviceName": HOSTILE_HOST, "ActionType": "ProcessCreated", "InitiatingProcessFileName": "explorer.exe",
              "InitiatingProcessId": 9}
    return [
        {**common, "Timestamp": "2026-05-04T10:00:00.0000000Z", "FileName": "powershell.exe",
         "FolderPath": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
         "ProcessCommandLine": HOSTILE_COMMAND, "ProcessId": 700, "AccountName": IMG, "ReportId": 1},
        {**common, "Timestamp": "2026-05-04T10:02:00.0000000Z", "FileName": "notepad.exe",
         "FolderPath": r"C:\Windows\notepad.exe", "ProcessCommandLine": NEARBY_COMMAND, "ProcessId": 701,
         "AccountName": "exadmin", "ReportId": 2},
    ]


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile-report")
    data = folder / "in"
    data.mkdir()
    write_jsonl(data / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", _hostile_rows())
    page = folder / "report.html"
    code, out, err = run_cli(["detect", str(data), "-q", "-f", "jsonl", "--flat", "--html", str(page)])
    assert code == 0, err
    found = [json.loads(line) for line in out.splitlines()]
    # the payload reached the alerts unchanged: the report is what must keep it inert
    assert {a["rule_name"] for a in found} == {
        "Exchange transport agent persistence (seed rule)",
        "Exchange transport-agent cmdlet (install, enable, set, disable, uninstall)"}
    assert all(a["ProcessCommandLine"] == HOSTILE_COMMAND and a["DeviceName"] == HOSTILE_HOST for a in found)
    return page


# -- the demo in a browser ----------------------------------------------------------------------

@needs_chromium
def test_the_demo_report_renders_with_every_rule_incident_and_alert(
        demo_report: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    page, alerts = demo_report
    dom = Dom(browse(page, tmp_path, tmp_path / "demo.png"))
    assert dom.html_element().get("data-ready") == "1"  # the page's own script ran
    # the summary: one row per rule with its severity and count, severities totalled
    assert Counter(a["rule_name"] for a in alerts) == {name: n for name, (_, n) in DEMO_RULES.items()}
    summary = dom.text("summary")
    for name, (severity, n) in DEMO_RULES.items():
        assert re.search(re.escape(name) + r"\s+" + severity + r"\s+" + str(n) + r"\b", summary), name
    assert re.search(r"20\s+critical", summary) and re.search(r"16\s+high", summary)
    assert re.search(r"2\s+medium", summary) and re.search(r"0\s+low", summary)
    assert "exch01.contoso.local" in summary
    # every incident of the run, every alert once in its evidence, every rule's guide
    incidents = group(alerts)
    assert dom.count("article", "incident") == len(incidents) == 5
    assert dom.count("details", "alert") == 38
    assert [dom.text(f"i{n}").count("Why it fired") for n in range(len(incidents))] == \
        [len(inc.alerts) for inc in incidents]
    assert dom.count("article", "rule") == len(DEMO_RULES)
    rules = dom.text("rules")
    assert rules.count("Investigate") >= len(DEMO_RULES) and rules.count("Respond") >= len(DEMO_RULES)
    # the chain rule's steps inside the incident holding it
    chained = next(n for n, inc in enumerate(incidents) if inc.chain)
    assert "transport service restart" in dom.text(f"i{chained}")
    # the timeline marks the event of every alert, each linking to its alert
    links = {a["href"] for t, a in dom.elements if t == "a" and "tag" in a.get("class", "").split()}
    assert links == {f"#a{i}" for i in range(38)}
    hits = [n for n, (t, a) in enumerate(dom.elements) if t == "tr" and "hit" in a.get("class", "").split()]
    assert len(hits) >= len({(a["source_file"], a["source_record"]) for a in alerts if a["source_record"]})
    # the plot: one row for the server, a bar per busy hour and a dot per hour with alerts
    assert dom.count("div", "plot-row") == 2  # the server and the time axis
    hours = {a["Timestamp"][:13] for a in alerts}
    assert dom.count("circle") == len(hours)


# -- hostile data -------------------------------------------------------------------------------

@needs_chromium
def test_hostile_command_lines_and_names_show_as_text_and_run_nothing(hostile_report: Path, tmp_path: Path) -> None:
    dom = Dom(browse(hostile_report, tmp_path))
    root = dom.html_element()
    assert root.get("data-ready") == "1"
    assert "data-pwned" not in root  # no handler and no script of the data ran
    # nothing the data holds became an element or an attribute
    assert dom.count("img") == 0 and dom.count("textarea") == 0
    assert dom.count("script") == 1
    assert not [k for _, a in dom.elements for k in a if k.startswith("on")]
    assert not [v for _, a in dom.elements for k, v in a.items() if "javascript:" in v.lower()]
    assert all("onload" not in a for t, a in dom.elements if t == "svg")
    # ... and is there as text: the alert, the entities, the timeline (also the event no rule
    # alerted on), the server's name (also in the plot's SVG)
    page = dom.text()
    for payload in (HOSTILE_COMMAND, IMG, SCRIPT, "</textarea>", "javascript:alert(1)", "{{7*7}}", HOSTILE_HOST):
        assert payload in page, payload
    entities = dom.text("entities")
    assert IMG in entities and HOSTILE_HOST in entities
    timeline = dom.text("timelines")
    assert "{{7*7}}" in timeline and "notepad.exe </textarea>" + SCRIPT in timeline and IMG in timeline
    assert HOSTILE_HOST in dom.text("activity")


def test_hostile_values_are_escaped_in_the_file(hostile_report: Path) -> None:
    raw = hostile_report.read_text(encoding="utf-8")
    for markup in ("<img", "<script>document", "</textarea>", "<svg onload", 'onerror="'):
        assert markup not in raw, markup
    assert "&lt;img src=x onerror=&#34;document.documentElement.dataset.pwned=1&#34;&gt;" in raw
    assert "&lt;/textarea&gt;&lt;script&gt;document.documentElement.dataset.pwned=2&lt;/script&gt;" in raw
    assert "{{7*7}}" in raw and "javascript:alert(1)" in raw  # inert text, never an href


# -- nothing from the network -------------------------------------------------------------------

#: Attributes that make a browser load something.
LOADING = ("src", "srcset", "poster", "data", "action", "formaction", "background", "manifest", "xlink:href")


def test_the_report_loads_nothing_and_allows_only_its_own_script_and_style(
        demo_report: tuple[Path, list[dict[str, Any]]]) -> None:
    raw = demo_report[0].read_text(encoding="utf-8")
    dom = Dom(raw)
    # no attribute names a place on the network (data from the files holds URLs: as text only)
    assert not [v for _, a in dom.elements for v in a.values() if re.search(r"(?i)(?:https?|ftp|wss?):|^\s*//", v)]
    assert not [(t, k) for t, a in dom.elements for k in a if k in LOADING]
    assert dom.count("link") == 0 and dom.count("iframe") == 0 and dom.count("object") == 0
    style = raw[raw.index("<style"):raw.index("</style>")]
    script = raw[raw.index("<script"):raw.index("</script>")]
    assert not re.search(r"(?i)url\(|@import|@font-face", style)
    assert not re.search(r"(?i)fetch|XMLHttpRequest|import\(|WebSocket|\.src\b|innerHTML|http", script)
    hrefs = [a["href"] for t, a in dom.elements if "href" in a]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    # the policy: nothing but the page's own (nonce'd) style and script, images only inline
    policy = next(a["content"] for t, a in dom.elements
                  if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{20,})'", policy)
    assert nonce and policy.startswith("default-src 'none';") and "img-src data:" in policy
    assert "unsafe" not in policy
    tags = [(t, a.get("nonce")) for t, a in dom.elements if t in ("script", "style")]
    assert tags == [("style", nonce.group(1)), ("script", nonce.group(1))]
    # no inline handler or style attribute (the policy would block them; none is needed)
    assert not [k for _, a in dom.elements for k in a if k.startswith("on") or k == "style"]


def test_each_page_has_its_own_nonce() -> None:
    rules = load_rules(["exchange-transport-agent-seed"])
    nonces = {re.search(r"nonce-([^']+)'", report.render([], rules)).group(1) for _ in range(3)}  # type: ignore[union-attr]
    assert len(nonces) == 3


# -- rule guides --------------------------------------------------------------------------------

def test_a_guide_cannot_inject_markup_scripts_images_or_links_other_than_http(tmp_path: Path) -> None:
    rule_file = tmp_path / "my-rule.yaml"
    rule_file.write_text((REPO / "src/exhunt/rules/exchange-transport-agent-seed.yaml").read_text(encoding="utf-8"),
                         encoding="utf-8")
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "my-rule.md").write_text(
        "# My rule\n\n<script>document.documentElement.dataset.pwned=5</script>\n\n"
        "## Investigate\n\n1. <img src=x onerror=alert(1)> look at [it](javascript:alert(1)) and "
        "[that](//evil.example/x), [this](data:text/html,hi), ![pixel](https://evil.example/p.png)\n"
        "2. read [the docs](https://learn.microsoft.com/exchange)\n\n"
        "| a | b |\n|---|---|\n| <b>x</b> | y |\n\n## Respond\n\nDisable the agent.\n\n## Tuning\n\nNone.\n",
        encoding="utf-8")
    guide = report.guide(load_rule(rule_file))
    assert guide.full is not None
    full = str(guide.full)
    assert "<script" not in full and "<img" not in full and "<b>" not in full
    assert "&lt;script&gt;document.documentElement.dataset.pwned=5&lt;/script&gt;" in full
    assert re.findall(r'<a [^>]*href="([^"]*)"', full) == ["https://evil.example/p.png",
                                                          "https://learn.microsoft.com/exchange"]
    assert full.count('rel="noopener noreferrer nofollow"') == 2
    assert "[it](javascript:alert(1))" in full and "<table>" in full
    assert "<h1>" not in full and "<h4>Investigate</h4>" in full  # the title is the rule's, headings go down
    assert [title for title, _ in guide.steps] == ["Investigate", "Respond"]
    assert "Disable the agent." in str(guide.steps[1][1]) and "None." not in str(guide.steps[1][1])


# -- the timeline's data ------------------------------------------------------------------------

def _process(when: str, host: str, command: str, report_id: int) -> dict[str, Any]:
    image = command.split()[0]
    return {"Timestamp": when, "DeviceName": host, "ActionType": "ProcessCreated", "FileName": image,
            "FolderPath": "C:\\Windows\\System32\\" + image, "ProcessCommandLine": command, "ProcessId": report_id,
            "AccountName": "exadmin", "InitiatingProcessFileName": "explorer.exe", "ReportId": report_id}


INSTALL = "pwsh.exe -c \"Install-TransportAgent -Name 'X' -AssemblyPath C:\\x.dll\""
#: A server name that would end a quoted SQL string (and its short name, host_key).
QUOTED_HOST = "exch02' OR '1'='1.contoso.local"
QUOTED_KEY = "exch02' or '1'='1"


@pytest.fixture
def timeline_data(tmp_path: Path) -> Path:
    """One alert on a server whose name would break a quoted SQL string, with events around it
    (and beyond the context window, and on other servers at the same times)."""
    rows = [_process("2026-06-01T12:00:00.0000000Z", QUOTED_HOST, INSTALL.replace("pwsh", "powershell"), 1)]
    rows += [_process(f"2026-06-01T11:{50 + i}:00.0000000Z", QUOTED_HOST, f"cmd.exe /c before {i}", 10 + i)
             for i in range(5)]  # 11:50 .. 11:54: 6 to 10 minutes before
    rows += [_process("2026-06-01T12:03:00.0000000Z", "EXCH02' or '1'='1", "cmd.exe /c after, same server", 20)]
    rows += [_process("2026-06-01T12:30:00.0000000Z", QUOTED_HOST, "cmd.exe /c outside the window", 30)]
    rows += [_process("2026-06-01T12:01:00.0000000Z", "exch03", "cmd.exe /c other server", 40),
             _process("2026-06-01T12:01:00.0000000Z", "exch02", "cmd.exe /c another exch02 spelling", 41)]
    write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", rows)
    return tmp_path


def test_the_timeline_reads_one_server_within_the_window_nearest_first(timeline_data: Path) -> None:
    rules = load_rules(["exchange-transport-agent-seed"])
    result = hunting.hunt([timeline_data], rules, hunting.HuntOptions(jobs=1, context=timedelta(minutes=8),
                                                                      context_rows=4))
    assert [a["DeviceName"] for a in result.alerts] == [QUOTED_HOST]
    tl = result.timeline
    assert tl is not None and not tl.unavailable
    (segment,) = tl.segments[QUOTED_KEY]
    # 11:52..12:08 holds the alert's event, 11:52-11:54 before it and 12:03 after it: 5 events,
    # 4 shown (the nearest); the name with quotes matched itself only (a bound parameter)
    assert (segment.start, segment.end, segment.total, segment.hidden) == \
        ("2026-06-01T11:52:00.000000Z", "2026-06-01T12:08:00.000000Z", 5, 1)
    shown = [(r.time[11:19], r.fields["ProcessCommandLine"]) for r in segment.rows]
    assert shown == [("11:53:00", "cmd.exe /c before 3"), ("11:54:00", "cmd.exe /c before 4"),
                     ("12:00:00", INSTALL.replace("pwsh", "powershell")), ("12:03:00", "cmd.exe /c after, same server")]
    assert [r.alert_ids for r in segment.rows] == [[], [], [result.alerts[0]["alert_id"]], []]
    # activity: one bucket size for every server, the three spellings of hosts kept apart
    assert tl.activity is not None and tl.activity.step == timedelta(minutes=1)
    assert {h: sum(b.values()) for h, b in tl.activity.events.items()} == {QUOTED_KEY: 8, "exch02": 1, "exch03": 1}


def test_exch02_and_its_fqdn_are_one_server(tmp_path: Path) -> None:
    rows = [_process("2026-06-01T12:00:00.0000000Z", "EXCH02", INSTALL, 1),
            _process("2026-06-01T12:01:00.0000000Z", "exch02.contoso.local", "cmd.exe /c same server", 2),
            _process("2026-06-01T12:01:00.0000000Z", "exch020", "cmd.exe /c another server", 3)]
    write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", rows)
    result = hunting.hunt([tmp_path], load_rules(["exchange-transport-agent-seed"]),
                          hunting.HuntOptions(jobs=1, context=timedelta(minutes=5)))
    assert result.timeline is not None
    (segment,) = result.timeline.segments["exch02"]
    assert [r.fields["DeviceName"] for r in segment.rows] == ["EXCH02", "exch02.contoso.local"]


def test_alerting_rows_of_a_csv_hunted_in_place_are_marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large CSV is hunted where it is: its rows have no line until an alert asks for one, so
    its alerting rows are known by their file and time."""
    from exhunt.sources import mde_csv
    from helpers import write_csv

    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)
    rows = [_process("2026-06-01T12:00:00.0000000Z", "exch02", "cmd.exe /c before", 1),
            _process("2026-06-01T12:01:00.0000000Z", "exch02", INSTALL, 2),
            _process("2026-06-01T12:02:00.0000000Z", "exch02", "cmd.exe /c after", 3)]
    write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", rows)
    result = hunting.hunt([tmp_path], load_rules(["exchange-transport-agent-seed"]),
                          hunting.HuntOptions(jobs=1, context=timedelta(minutes=5)))
    (alert,) = result.alerts
    assert alert["source_record"] == "line 3"  # found for the alert, after the rules ran
    assert result.timeline is not None
    (segment,) = result.timeline.segments["exch02"]
    assert [(r.fields["ProcessCommandLine"], r.source_record, r.alert_ids) for r in segment.rows] == [
        ("cmd.exe /c before", "", []), (INSTALL, "", [alert["alert_id"]]), ("cmd.exe /c after", "", [])]


def test_the_report_shows_the_timeline_of_its_own_alerts_only(tmp_path: Path) -> None:
    rows = [_process("2026-06-01T12:00:00.0000000Z", "exch02", INSTALL, 1),
            _process("2026-06-01T12:01:00.0000000Z", "exch02", "cmd.exe /c near the first", 2),
            _process("2026-06-01T15:00:00.0000000Z", "exch02", INSTALL.replace("'X'", "'Y'"), 3),
            _process("2026-06-01T15:01:00.0000000Z", "exch02", "cmd.exe /c near the second", 4)]
    write_jsonl(tmp_path / "DeviceProcessEvents.jsonl", "DeviceProcessEvents", rows)
    result = hunting.hunt([tmp_path], load_rules(["exchange-transport-agent-seed"]),
                          hunting.HuntOptions(jobs=1, context=timedelta(minutes=5)))
    assert result.timeline is not None and len(result.timeline.segments["exch02"]) == 2
    both = Dom(report.render(result.alerts, result.rules, result.timeline))
    assert both.count("table", "tl") == 2
    second = Dom(report.render(result.alerts[1:], result.rules[1:], result.timeline))
    assert second.count("table", "tl") == 1
    timeline = second.text("timelines")
    assert "near the second" in timeline and "near the first" not in timeline


class _NoEvents:
    """A backend that cannot read rows around a time (as the remote ones)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.name = "kusto https://example.kusto.windows.net/db"

    def events(self, *args: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_an_engine_without_events_gives_a_report_that_says_so(timeline_data: Path, tmp_path: Path) -> None:
    rules = load_rules(["exchange-transport-agent-seed"])
    backend, _ = hunting.open_local([timeline_data], [r.query for r in rules], hunting.HuntOptions(jobs=1))
    with backend:
        result = hunting.hunt([], rules, hunting.HuntOptions(jobs=1, context=timedelta(minutes=15)),
                              backend=_NoEvents(backend))  # type: ignore[arg-type]
    tl = result.timeline
    assert tl is not None and tl.segments == {}
    assert tl.unavailable.startswith("kusto https://example.kusto.windows.net/db gives no timeline")
    assert tl.activity is not None and sum(sum(b.values()) for b in tl.activity.events.values()) == 10
    page = Dom(report.render(result.alerts, result.rules, tl))
    assert "gives no timeline" in page.text("timelines") and page.count("table", "tl") == 0
    # the plot still has the events per minute: 8 busy minutes on the alert's server, then the
    # servers without alerts (the busiest first)
    assert page.count("rect", "bar") == 8 + 1 + 1 and page.count("circle", "mark") == 1
    assert page.texts("plot-label") == [f"{QUOTED_HOST} 8 event(s) · 1 alert(s)", "exch02 1 event(s) · 0 alert(s)",
                                        "exch03 1 event(s) · 0 alert(s)"]


def test_remote_backends_answer_no_timeline() -> None:
    from exhunt.backends.remote import RemoteBackend

    assert RemoteBackend.events(object(), ["DeviceProcessEvents"], "exch01",  # type: ignore[arg-type]
                                (datetime(2026, 1, 1), datetime(2026, 1, 2)), [], 10) is None


def test_without_html_no_timeline_is_read(timeline_data: Path) -> None:
    result = hunting.hunt([timeline_data], load_rules(["exchange-transport-agent-seed"]), hunting.HuntOptions(jobs=1))
    assert result.timeline is None


def test_the_timeline_columns_are_loaded_though_no_rule_reads_them() -> None:
    queries = timelines.column_queries(["DeviceProcessEvents | where FileName == 'x'"],
                                       {"DeviceProcessEvents": ["Timestamp", "FileName", "ActionType", "SHA256"],
                                        "Event": ["TimeGenerated", "EventID"]})
    assert queries == ["DeviceProcessEvents | project ActionType, FileName, SHA256"]


# -- the command line ---------------------------------------------------------------------------

def test_an_unwritable_html_path_fails_before_reading(tmp_path: Path) -> None:
    code, out, err = run_cli(["detect", str(tmp_path / "no-such-input"), "--html", str(tmp_path / "nope" / "r.html")])
    assert code == 2 and out == ""
    assert "--html: cannot write" in err and "folder" in err and "no-such-input" not in err
    code, _, err = run_cli(["detect", str(DEMO), "--html", str(tmp_path)])
    assert code == 2 and "is a folder" in err


def test_a_bad_context_is_refused(tmp_path: Path) -> None:
    code, _, err = run_cli(["detect", str(DEMO), "--html", str(tmp_path / "r.html"), "--context", "soon"])
    assert code == 2 and "--context" in err and "soon" in err
    assert not (tmp_path / "r.html").exists()


def test_min_severity_filters_the_report_too(timeline_data: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    code, out, _ = run_cli(["detect", str(timeline_data), "-q", "-f", "jsonl", "--flat", "--min-severity", "critical",
                            "--html", str(page)])
    kept = [json.loads(line)["rule_name"] for line in out.splitlines()]
    assert code == 0 and kept == ["Exchange transport agent persistence (seed rule)"]
    dom = Dom(page.read_text(encoding="utf-8"))
    assert dom.count("details", "alert") == 1 and dom.count("article", "rule") == 1


def test_the_report_groups_incidents_with_the_incident_window(
        demo_report: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    code, _, err = run_cli(["detect", str(DEMO), "-q", "-o", str(tmp_path / "out.txt"), "--incident-window", "1d",
                            "--html", str(page)])
    assert code == 0, err
    expected = group(demo_report[1], timedelta(days=1))
    assert len(expected) < len(group(demo_report[1]))
    dom = Dom(page.read_text(encoding="utf-8"))
    assert dom.count("article", "incident") == len(expected)
    assert [t.split(" · ")[0] for t in dom.texts("incident")] == \
        [f"{inc.severity} Incident {n + 1}" for n, inc in enumerate(expected)]
