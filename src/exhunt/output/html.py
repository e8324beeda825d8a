"""The HTML report (`detect --html`): one self-contained page to read a hunt's results offline.

Every value in it comes from attacker-controlled data (command lines, file and server names),
so the page is built to stay inert whatever they hold:
- Jinja2 escapes every value (autoescape on, no `|safe` on data); values also pass through
  `safetext.shown`, so control and bidi characters show as escapes, as in a terminal;
- data never lands in an attribute that loads or links anything (anchors are our own indexes);
- a Content-Security-Policy allows only the page's own style and script (by a nonce made per
  page) and `data:` images: an escape missed somewhere still could not run a script or fetch;
- rule guides (Markdown, from rule files anyone can write) are rendered with raw HTML off,
  images off and links only to http(s);
- nothing is fetched: no CDN, font, image or script from the network.

`render` takes alert dicts and the rules that raised them, so any command producing alerts
(`detect`, later `audit`) can write the same report.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup

from exhunt import __version__, timespan
from exhunt.alerts import summary_line
from exhunt.incidents import host_key, severity_rank
from exhunt.rule import SEVERITIES, Rule
from exhunt.safetext import shown
from exhunt.timeline import Timeline, utc_naive

#: The incident window `render` groups alerts with when not given incidents.
INCIDENT_WINDOW = timedelta(hours=1)
#: Servers drawn in the activity plot (the most alerts first); the rest are counted.
PLOT_SERVERS = 24
#: The plot's drawing area, in SVG units.
PLOT_WIDTH, PLOT_ROW, PLOT_LEFT = 1000, 64, 8
#: Where the event bars stand, and the tallest one (alert marks are drawn above them).
PLOT_BASE, BAR_HEIGHT = 60, 36
#: Fields a timeline row is summed up by: what happened, on what, by whom.
_WHAT = ("ActionType", "CmdletName", "Activity", "EventID")
_OBJECT = ("ProcessCommandLine", "CommandLine", "CmdletParameters", "FolderPath", "FileName", "NewProcessName",
           "ObjectName", "RegistryKey", "RemoteUrl", "RemoteIP", "RenderedDescription", "TargetObject",
           "AdditionalFields", "SHA1")
_ACTOR = ("InitiatingProcessFileName", "ParentProcessName", "Caller", "AccountName", "InitiatingProcessAccountName",
          "Account", "Signer", "Source")
#: Longest summary of a timeline row (its full fields are a click away).
SUMMARY_CHARS = 200
#: Alert fields shown in the head of an alert, not again in its field list.
_HEAD = ("alert_id", "rule_id", "rule_name", "severity", "confidence", "tactics", "techniques")


def text(value: Any, multiline: bool = False) -> str:
    """A value as the page shows it: lists joined, objects as JSON, controls escaped (line
    feeds and tabs kept as layout when `multiline`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v, multiline) for v in value)
    if isinstance(value, dict):
        return shown(json.dumps(value, ensure_ascii=False, default=str))
    return shown(value, multiline=multiline)


def short(value: str, limit: int = SUMMARY_CHARS) -> str:
    """One line of at most `limit` characters."""
    line = " ".join(value.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def when(iso: str | None) -> str:
    """An alert's ISO time as the page shows it: `2026-11-20 14:05:40.671 UTC`."""
    if not iso:
        return "no time"
    day, _, clock = iso.rstrip("Z").partition("T")
    return f"{shown(day)} {shown(clock[:12])}" if clock else shown(iso)


# -- rule guides ----------------------------------------------------------------------------

class _GuideMarkdown(MarkdownIt):
    """CommonMark (and tables) with raw HTML off (shown as text), no images, links to http(s)
    only, each with rel=noopener: a guide comes from a rule file, which anyone can write."""

    def __init__(self) -> None:
        super().__init__("commonmark", {"html": False, "linkify": False, "typographer": False})
        self.enable(["table", "strikethrough"])
        self.disable("image")
        self.add_render_rule("link_open", _link_open)

    def validateLink(self, url: str) -> bool:
        return url.strip().lower().startswith(("http://", "https://"))


def _link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
    return str(renderer.renderToken(tokens, idx, options, env))


@cache
def _markdown() -> _GuideMarkdown:
    return _GuideMarkdown()


def _render_markdown(source: str, shift: int) -> Markup:
    """Markdown -> HTML, headings `shift` levels down (at most h6). Markup: raw HTML in the
    source is escaped by markdown-it itself (html off), so the result holds only its tags."""
    md = _markdown()
    tokens = md.parse(source)
    for tok in tokens:
        if tok.type in ("heading_open", "heading_close"):
            tok.tag = f"h{min(int(tok.tag[1]) + shift, 6)}"
    return Markup(md.renderer.render(tokens, md.options, {}))  # markdown-it escaped every text


@dataclass
class Guide:
    """A rule's guide: the whole of it, and its investigation and response sections."""

    full: Markup | None
    steps: list[tuple[str, Markup]] = field(default_factory=list)


def _sections(source: str) -> list[tuple[str, str]]:
    """(title, Markdown) of each level-2 section, found by markdown-it (a `##` in code is not one)."""
    md = _markdown()
    lines = source.splitlines(keepends=True)
    tokens = md.parse(source)
    heads = [(i, t) for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2" and t.map]
    out = []
    for n, (i, tok) in enumerate(heads):
        start = tok.map[1] if tok.map else 0
        following = heads[n + 1][1].map if n + 1 < len(heads) else None
        end = following[0] if following else len(lines)
        out.append((tokens[i + 1].content, "".join(lines[start:end])))
    return out


def guide(rule: Rule) -> Guide:
    path = rule.guide_path
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Guide(None)
    body = source
    if body.lstrip().startswith("# "):  # the title is the rule's name, shown already
        body = body.lstrip().split("\n", 1)[1] if "\n" in body.lstrip() else ""
    steps = [(shown(title), _render_markdown(md, 3)) for title, md in _sections(source)
             if title.lower().startswith(("investigat", "respon", "contain"))]
    return Guide(_render_markdown(body, 2), steps)


# -- the page's model -----------------------------------------------------------------------

@dataclass
class AlertView:
    anchor: str
    rule: RuleView
    severity: str
    time: str
    device: str
    why: str
    alert_id: str
    fields: list[tuple[str, str]]
    empty: list[str]
    #: Anchor of the alert's event in the timeline ("" when not shown there).
    event: str = ""


@dataclass
class RuleView:
    anchor: str
    rule: Rule
    name: str
    slug: str
    id: str
    severity: str
    confidence: str
    tactics: str
    techniques: str
    #: The rule's description, one paragraph each.
    description: list[str]
    guide: Guide
    alerts: int = 0


def _rule_view(i: int, rule: Rule) -> RuleView:
    return RuleView(f"r{i}", rule, shown(rule.name), shown(rule.slug), shown(rule.id), rule.severity,
                    shown(rule.confidence), text(rule.tactics), text(rule.techniques),
                    paragraphs(str(rule.doc.get("description") or "")), guide(rule))


def paragraphs(source: str) -> list[str]:
    """Text whose lines were wrapped by hand (a YAML block) as paragraphs of one line each."""
    return [" ".join(shown(p, multiline=True).split()) for p in re.split(r"\n\s*\n", source) if p.strip()]


def _alert_view(i: int, alert: dict[str, Any], rule: RuleView) -> AlertView:
    fields = [(shown(k), text(v, True)) for k, v in alert.items() if k not in _HEAD and v not in (None, "", [], {})]
    empty = [shown(k) for k, v in alert.items() if k not in _HEAD and v in (None, "", [], {})]
    return AlertView(f"a{i}", rule, str(alert.get("severity") or rule.severity), when(alert.get("Timestamp")),
                     text(alert.get("DeviceName")), shown(summary_line(rule.rule, alert)), text(alert.get("alert_id")),
                     fields, empty)


def _pick(fields: dict[str, Any], names: Sequence[str]) -> str:
    for name in names:
        if fields.get(name) not in (None, ""):
            value = short(text(fields[name]))
            return f"Event {value}" if name == "EventID" else value
    return ""


def _plot(servers: list[dict[str, Any]], timeline: Timeline | None, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars (events per bucket) and marks (alerts per bucket) per server, on one time axis."""
    step = timeline.activity.step if timeline is not None and timeline.activity is not None else None
    times = [t for a in alerts if (t := utc_naive(a.get("Timestamp")))]
    events: dict[str, dict[datetime, int]] = defaultdict(dict)
    if timeline is not None and timeline.activity is not None:
        for host, buckets in timeline.activity.events.items():
            for start, n in buckets.items():
                t = utc_naive(start)
                if t is not None:
                    events[host][t] = n
    every = times + [t for b in events.values() for t in b]
    if not every:
        return {"rows": [], "ticks": [], "step": "", "more": 0, "events": False}
    lo, hi = min(every), max(every)
    if step is None:
        from exhunt.timeline import PLOT_BUCKETS, STEPS

        step = next((s for s in STEPS if (hi - lo) / s <= PLOT_BUCKETS), STEPS[-1])
    epoch = datetime(1970, 1, 1)
    first = epoch + ((lo - epoch) // step) * step
    count = max(int((hi - first) // step) + 1, 1)
    width = (PLOT_WIDTH - PLOT_LEFT) / count
    # servers with alerts first (as the summary), then the others, busiest first
    quiet = sorted((h for h in events if h not in {s["host"] for s in servers}), key=lambda h: -sum(events[h].values()))
    names = timeline.activity.names if timeline is not None and timeline.activity is not None else {}
    plotted = servers + [{"host": h, "name": text(names.get(h, h)), "anchor": ""} for h in quiet]
    rows = []
    for server in plotted[:PLOT_SERVERS]:
        host = server["host"]
        bucket_events: Counter[int] = Counter()
        for t, n in events.get(host, {}).items():
            bucket_events[int((t - first) // step)] += n
        bucket_alerts: dict[int, list[str]] = defaultdict(list)
        for a in alerts:
            t = utc_naive(a.get("Timestamp"))
            if t is not None and host_key(a.get("DeviceName")) == host:
                bucket_alerts[int((t - first) // step)].append(str(a.get("severity") or "medium"))
        top = max(bucket_events.values(), default=0)
        bars, marks = [], []
        for k, n in sorted(bucket_events.items()):
            h = max(2.0, BAR_HEIGHT * n / top) if top else 0
            bars.append({"x": round(PLOT_LEFT + k * width, 2), "y": round(PLOT_BASE - h, 2),
                         "w": round(max(width - 1, 1), 2), "h": round(h, 2),
                         "title": f"{_bucket(first + k * step)}: {n} event(s)"})
        for k, sevs in sorted(bucket_alerts.items()):
            sev = _highest(sevs)
            marks.append({"x": round(PLOT_LEFT + (k + 0.5) * width, 2), "r": min(3 + len(sevs), 9), "severity": sev,
                          "title": f"{_bucket(first + k * step)}: {len(sevs)} alert(s), highest {sev}"})
        rows.append({"name": server["name"], "anchor": server["anchor"], "bars": bars, "marks": marks,
                     "events": sum(bucket_events.values()), "alerts": sum(len(s) for s in bucket_alerts.values())})
    ticks = []
    marks_at = sorted({round(j * (count - 1) / 5) for j in range(6)})
    for k in marks_at:
        anchor = "start" if k == 0 and count > 1 else "end" if k == count - 1 and count > 1 else "middle"
        ticks.append({"x": round(PLOT_LEFT + (k + 0.5) * width, 2), "label": _bucket(first + k * step),
                      "anchor": anchor})
    return {"rows": rows, "ticks": ticks, "step": timespan.short(step), "more": max(len(plotted) - PLOT_SERVERS, 0),
            "events": bool(events), "width": PLOT_WIDTH, "height": PLOT_ROW, "base": PLOT_BASE}


def _highest(severities: list[str]) -> str:
    """The highest of these severities ("" for none)."""
    return max(severities, key=severity_rank) if severities else ""


def _first(by_alert: dict[str, list[AlertView]], alert: dict[str, Any]) -> AlertView | None:
    found = by_alert.get(str(alert.get("alert_id")))
    return found[0] if found else None


def _bucket(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M")


def model(alerts: list[dict[str, Any]], rules: Sequence[Rule], timeline: Timeline | None = None,
          incidents: list[Any] | None = None, title: str = "exhunt report",
          notes: Sequence[str] = ()) -> dict[str, Any]:
    """What the template shows: every text already made inert (`shown`), escaped again by Jinja2."""
    if incidents is None:
        from exhunt.incidents import group

        incidents = group(alerts, INCIDENT_WINDOW)
    owners = list(rules)
    views: dict[str, RuleView] = {}
    #: Views by alert id (a list: two alerts may share one) and by the alert dict itself.
    by_alert: dict[str, list[AlertView]] = defaultdict(list)
    by_object: dict[int, AlertView] = {}
    alert_views: list[AlertView] = []
    for i, alert in enumerate(alerts):
        rule = owners[i]
        key = rule.id or rule.slug
        if key not in views:
            views[key] = _rule_view(len(views), rule)
        view = _alert_view(i, alert, views[key])
        views[key].alerts += 1
        alert_views.append(view)
        by_alert[str(alert.get("alert_id"))].append(view)
        by_object[id(alert)] = view
    rule_list = sorted(views.values(), key=lambda r: (-severity_rank(r.severity), -r.alerts, r.name))

    # servers
    names: dict[str, str] = {}
    for alert in alerts:
        host = host_key(alert.get("DeviceName"))
        name = text(alert.get("DeviceName")) or "(no server)"
        if len(name) > len(names.get(host, "")):
            names[host] = name
    per_server: dict[str, list[AlertView]] = defaultdict(list)
    for alert, view in zip(alerts, alert_views, strict=True):
        per_server[host_key(alert.get("DeviceName"))].append(view)
    incidents_per: Counter[str] = Counter(host_key(inc.device) for inc in incidents)
    servers: list[dict[str, Any]] = []
    for n, host in enumerate(sorted(per_server, key=lambda h: (-max(severity_rank(v.severity) for v in per_server[h]),
                                                                 -len(per_server[h]), h))):
        views_here = per_server[host]
        servers.append({"host": host, "name": names.get(host, host), "anchor": f"s{n}", "alerts": len(views_here),
                        "incidents": incidents_per.get(host, 0),
                        "severity": _highest([v.severity for v in views_here])})

    # timeline
    timelines = []
    if timeline is not None:
        serial = 0
        for server in servers:
            segments = []
            for seg in timeline.segments.get(server["host"], []):
                shown_here = [i for i in seg.alert_ids if i in by_alert]
                if not shown_here:  # the context of alerts left out of the report (--min-severity...)
                    continue
                rows = []
                for row in seg.rows:
                    serial += 1
                    anchor = f"e{serial}"
                    marked = [view for i in dict.fromkeys(row.alert_ids) for view in by_alert.get(i, [])]
                    for view in marked:
                        view.event = view.event or anchor
                    rows.append({"anchor": anchor, "time": when(row.time), "table": shown(row.table),
                                 "what": _pick(row.fields, _WHAT), "object": _pick(row.fields, _OBJECT),
                                 "actor": _pick(row.fields, _ACTOR),
                                 "fields": [(shown(k), text(v, True)) for k, v in row.fields.items()],
                                 "source": shown(f"{row.source_file} {row.source_record}".strip()),
                                 "alerts": marked,
                                 "severity": _highest([v.severity for v in marked])})
                segments.append({"start": when(seg.start), "end": when(seg.end), "rows": rows, "hidden": seg.hidden,
                                 "alerts": len(shown_here), "total": seg.total})
            timelines.append({**server, "segments": segments})
    # incidents
    incident_views = []
    for n, inc in enumerate(incidents):
        inc_rules: list[RuleView] = []
        evidence = []
        for ev in inc.evidence:
            ev_alerts = [v for a in ev.alerts if (v := by_object.get(id(a)) or _first(by_alert, a)) is not None]
            for view in ev_alerts:
                if view.rule not in inc_rules:
                    inc_rules.append(view.rule)
            evidence.append({"time": when(ev.timestamp), "severity": ev.severity, "alerts": ev_alerts,
                             "rules": [shown(r) for r in ev.rule_names],
                             "why": ev_alerts[0].why if ev_alerts else "",
                             "event": next((v.event for v in ev_alerts if v.event), "")})
        inc_rules.sort(key=lambda r: -severity_rank(r.severity))
        incident_views.append({
            "anchor": f"i{n}", "number": n + 1, "id": shown(inc.incident_id), "device": text(inc.device),
            "server": next((s["anchor"] for s in servers if s["host"] == host_key(inc.device)), ""),
            "start": when(inc.start), "end": when(inc.end), "severity": inc.severity,
            "entities": [(kind, [text(v) for v in values]) for kind, values in inc.entities.items() if values],
            "chain": [text(step) for step in inc.chain], "evidence": evidence, "rules": inc_rules,
            "alerts": len(inc.alerts)})

    severities = Counter(v.severity for v in alert_views)
    return {
        "title": shown(title), "version": __version__, "nonce": secrets.token_urlsafe(18),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "notes": [shown(n) for n in notes],
        "severities": [(s, severities.get(s, 0)) for s in reversed(SEVERITIES)],
        "total": len(alerts), "rules": rule_list, "servers": servers, "incidents": incident_views,
        "incident_severities": Counter(i["severity"] for i in incident_views),
        "timelines": timelines, "timeline": timeline,
        "context": timespan.short(timeline.context) if timeline is not None else "",
        "unavailable": shown(timeline.unavailable) if timeline is not None else "",
        "plot": _plot(servers, timeline, alerts),
    }


@cache
def _environment() -> Environment:
    # autoescape=True for every template: each value is HTML-escaped unless marked Markup,
    # which only markdown-it's output of a rule guide is (see _render_markdown).
    env = Environment(loader=PackageLoader("exhunt", "output/templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def render(alerts: list[dict[str, Any]], rules: Sequence[Rule], timeline: Timeline | None = None,
           incidents: list[Any] | None = None, title: str = "exhunt report", notes: Sequence[str] = ()) -> str:
    """The report page for `alerts` (`rules[i]` raised `alerts[i]`), with `timeline` when read
    (hunt.HuntOptions.context) and `incidents` (exhunt.incidents.group of the alerts if None)."""
    return _environment().get_template("report.html.j2").render(
        model(alerts, rules, timeline, incidents, title, notes))


def write(path: Path, alerts: list[dict[str, Any]], rules: Sequence[Rule], timeline: Timeline | None = None,
          incidents: list[Any] | None = None, title: str = "exhunt report", notes: Sequence[str] = ()) -> None:
    """The report written to `path`; a write error is one UsageError naming it (--html)."""
    from exhunt.output.target import opened

    page = render(alerts, rules, timeline, incidents, title, notes)
    with opened(path, "--html") as out:
        out.write(page)
