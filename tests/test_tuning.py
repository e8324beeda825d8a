"""Tuning files: loading (every problem at its line), the operators, rules, expiry, stale entries
and the shipped known vendors, on alert dicts written here."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exhunt import tuning
from exhunt.errors import UsageError

CMDLET_ID = "8d3b6f14-2a7e-4c59-b0d1-5e9a7c3f2b11"
CMDLET_NAME = "Exchange transport-agent cmdlet (install, enable, set, disable, uninstall)"
FABRIKAM_PATH = (r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\agents\Fabrikam"
                 r"\Fabrikam.Disclaimer.Agent.dll")
TODAY = date(2026, 12, 1)


class Slug:
    """A rule as apply() sees it: its file name."""

    def __init__(self, slug: str) -> None:
        self.slug = slug


def alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"rule_id": CMDLET_ID, "rule_name": CMDLET_NAME, "severity": "high",
                            "techniques": ["T1505.002", "T1059.001"], "Cmdlet": "Install-TransportAgent",
                            "AgentName": "Fabrikam Disclaimer Agent", "AssemblyPath": FABRIKAM_PATH,
                            "TransportAgentFactory": "Fabrikam.Disclaimer.Agent.DisclaimerAgentFactory"}
    base.update(fields)
    return base


def entries(text: str, name: str = "t.yaml") -> tuning.Tuning:
    return tuning.parse(text, name)


def one(match: str, rule: str = "*", extra: str = "") -> tuning.Tuning:
    """One entry with `match:` given as a flow map (or block text)."""
    return entries(f"- rule: '{rule}'\n  match: {match}\n  reason: r\n  owner: o\n  expires: 2027-06-30\n{extra}")


def suppressed(t: tuning.Tuning, *alerts: dict[str, Any], rules: list[Any] | None = None) -> list[int]:
    return [s.index for s in tuning.apply(list(alerts), t, rules, today=TODAY).suppressed]


# -- operators ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cond", "value", "holds"), [
    ("{equals: fabrikam disclaimer AGENT}", "Fabrikam Disclaimer Agent", True),
    ("{equals: Fabrikam}", "Fabrikam Disclaimer Agent", False),
    ("{in: [x, 'FABRIKAM DISCLAIMER AGENT']}", "Fabrikam Disclaimer Agent", True),
    ("{in: [x, Fabrikam]}", "Fabrikam Disclaimer Agent", False),
    ("{startswith: fabrikam d}", "Fabrikam Disclaimer Agent", True),
    ("{startswith: Disclaimer}", "Fabrikam Disclaimer Agent", False),
    ("{endswith: ' AGENT'}", "Fabrikam Disclaimer Agent", True),
    ("{endswith: Fabrikam}", "Fabrikam Disclaimer Agent", False),
    ("{contains: 'm disc'}", "Fabrikam Disclaimer Agent", True),
    ("{contains: 'agentx'}", "Fabrikam Disclaimer Agent", False),
    ("{has: disclaimer}", "Fabrikam Disclaimer Agent", True),
    ("{has: disclaim}", "Fabrikam Disclaimer Agent", False),          # a part of a term is no term
    ("{has: 'Disclaimer Agent'}", "Fabrikam Disclaimer Agent", True),  # several whole terms
    ("{has: 'm Disclaimer'}", "Fabrikam Disclaimer Agent", False),     # starts inside a term
    ("{regex: '^fabrikam\\s+disclaimer'}", "Fabrikam Disclaimer Agent", True),
    ("{regex: 'agent$'}", "Fabrikam Disclaimer Agent x", False),
    ("{not: {equals: other agent}}", "Fabrikam Disclaimer Agent", True),
    ("{not: {has: FABRIKAM}}", "Fabrikam Disclaimer Agent", False),
    ("{not: {not: {has: FABRIKAM}}}", "Fabrikam Disclaimer Agent", True),
    ("{startswith: fab, endswith: agent}", "Fabrikam Disclaimer Agent", True),   # every operator of a map
    ("{startswith: fab, endswith: agents}", "Fabrikam Disclaimer Agent", False),
    ("{contains: fab, not: {contains: evil}}", "Fabrikam Disclaimer Agent", True),
    ("{contains: fab, not: {contains: disc}}", "Fabrikam Disclaimer Agent", False),
    ("{equals: ÉCOLE}", "école", True),                                 # Unicode case folding
    ("{equals: STRASSE}", "straße", True),
])
def test_operators_are_case_insensitive_like_kql(cond: str, value: str, holds: bool) -> None:
    t = one(f"{{AgentName: {cond}}}")
    assert suppressed(t, alert(AgentName=value)) == ([0] if holds else [])


@pytest.mark.parametrize(("value", "needle", "expected"), [
    (r"C:\Program Files\Fabrikam\x.dll", "fabrikam", True),
    (r"C:\Program Files\Fabrikam\x.dll", "fabri", False),
    (r"C:\Program Files\Fabrikam\x.dll", "Program Files", True),
    (r"C:\Program Files\Fabrikam\x.dll", "gram Fi", False),
    (r"C:\Program Files\Fabrikam\x.dll", "\\Fabrikam\\", True),  # edges are delimiters: a substring
    (r"C:\Program Files\Fabrikam\x.dll", "x.dll", True),
    (r"C:\Program Files\Fabrikam\xx.dll", "x.dll", False),
    ("KustoExplorerQueryRun", "Explorer", False),
    ("ad67d136-c1db-4f9f", "c1db", True),
    ("T1505.002", "t1505", True),
    ("T1505.002", "1505", False),          # digits inside the term T1505
    ("a_b", "a", True),                    # underscore separates terms
    ("ab", "AB", True),
    ("xa b", "a ", False),                 # needle starts with a letter: x blocks it
    ("a b", "a ", True),
    ("b .b-", " ", True),                  # only delimiters: plain substring
    ("abc abd", "abd", True),              # a later occurrence counts
])
def test_has_matches_whole_terms(value: str, needle: str, expected: bool) -> None:
    assert tuning.has_term(tuning.fold(value), tuning.fold(needle)) is expected


def test_regex_is_re2_case_insensitive_search_and_never_backtracks() -> None:
    t = one(r"{AssemblyPath: {regex: '(a+)+$'}}")
    hostile = alert(AssemblyPath="a" * 200_000 + "!")
    start = time.perf_counter()
    assert suppressed(t, hostile) == []
    assert time.perf_counter() - start < 2  # a backtracking engine would not finish
    path = one(r"{AssemblyPath: {regex: '\\agents\\fabrikam\\[^\\]+\.dll$'}}")
    assert suppressed(path, alert(), alert(AssemblyPath=r"C:\Windows\Temp\Fabrikam.Disclaimer.Agent.dll")) == [0]


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)", "(?<!x)a", "a{1001}", "[z-a]"])
def test_patterns_re2_refuses_are_load_errors(pattern: str) -> None:
    with pytest.raises(UsageError, match=r"t\.yaml:2: .*not valid RE2"):
        one(f"{{AgentName: {{regex: '{pattern}'}}}}")


def test_a_missing_or_empty_field_never_suppresses_even_under_not() -> None:
    for cond in ("{equals: x}", "{not: {equals: x}}", "{not: {empty: true}}", "{empty: false}",
                 "{not: {regex: '.'}}", "{not: {in: [a]}}"):
        t = one(f"{{AgentName: {{equals: Fabrikam Disclaimer Agent}}, Missing: {cond}}}")
        assert suppressed(t, alert(), alert(Missing=None), alert(Missing=""), alert(Missing=[])) == [], cond


def test_empty_true_is_the_one_way_to_match_a_missing_field() -> None:
    t = one("{Missing: {empty: true}}")
    assert suppressed(t, alert(), alert(Missing=None), alert(Missing=""), alert(Missing=[]), alert(Missing="x"),
                      alert(Missing=0), alert(Missing=False)) == [0, 1, 2, 3]
    present = one("{Missing: {empty: false}}")
    assert suppressed(present, alert(), alert(Missing="x"), alert(Missing=0)) == [1, 2]


def test_lists_match_when_any_element_matches_and_not_when_none_does() -> None:
    assert suppressed(one("{techniques: {equals: t1059.001}}"), alert(), alert(techniques=["T1505.002"])) == [0]
    assert suppressed(one("{techniques: {not: {equals: T1059.001}}}"),
                      alert(), alert(techniques=["T1505.002"])) == [1]


def test_values_that_are_not_text_compare_as_text() -> None:
    assert suppressed(one("{EventID: {equals: 7001}}"), alert(EventID=7001), alert(EventID=1050)) == [0]
    assert suppressed(one("{IsSigned: {equals: 'false'}}"), alert(IsSigned=False), alert(IsSigned=True)) == [0]
    assert suppressed(one("{EventID: {in: [7001, '1050']}}"), alert(EventID=1050), alert(EventID=4)) == [0]


def test_field_alternatives_hold_when_any_named_field_matches() -> None:
    t = one("{TransportAgentFactory|AgentFactory|FactoryType: {equals: F.Factory}}")
    cmdlet = alert(TransportAgentFactory="F.Factory")
    errors = {"rule_id": "e", "rule_name": "errors", "AgentFactory": "f.factory"}
    audit = {"rule_id": "a", "rule_name": "audit", "FactoryType": "F.FACTORY"}
    other = {"rule_id": "a", "rule_name": "audit", "FactoryType": "G.Factory", "Factory": "F.Factory"}
    assert suppressed(t, cmdlet, errors, audit, other) == [0, 1, 2]
    # a field name in another case is found when the exact one is absent
    assert suppressed(one("{agentname: {equals: Fabrikam Disclaimer Agent}}"), alert()) == [0]


def test_match_as_a_list_holds_when_any_of_its_maps_holds() -> None:
    t = entries(Path(__file__).resolve().parents[1].joinpath("docs/examples/tuning-fabrikam.yaml").read_text(),
                "fabrikam.yaml")
    install = alert()
    enable = alert(Cmdlet="Enable-TransportAgent", AssemblyPath="", TransportAgentFactory="")
    foreign = alert(AssemblyPath=r"C:\Windows\Temp\Fabrikam.Disclaimer.Agent.dll")
    factory = alert(TransportAgentFactory="Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory")
    unparsed = alert(AssemblyPath="", TransportAgentFactory="")  # an Install whose path was not parsed
    enable_with_path = alert(Cmdlet="Enable-TransportAgent", AssemblyPath=r"C:\Windows\Temp\x.dll")
    other = alert(AgentName="Security Interop Agent", Cmdlet="Enable-TransportAgent", AssemblyPath="")
    assert suppressed(t, install, enable, foreign, factory, unparsed, enable_with_path, other,
                      rules=[Slug("exchange-transport-agent-cmdlet")] * 7) == [0, 1]


# -- rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "holds"), [
    ("*", True),
    ("exchange-transport-agent-cmdlet", True),       # file name
    ("EXCHANGE-transport-agent-CMDLET", True),
    (CMDLET_ID.upper(), True),                       # id
    (CMDLET_NAME.lower(), True),                     # name
    ("exchange-transport-*", True),                  # glob
    ("*cmdlet", True),
    ("exchange-transport-agent-c?dlet", True),
    ("exchange-agent-*", False),
    ("exchange-transport-agent-cmdlet-x", False),
    ("8d3b6f14", False),
])
def test_rule_by_id_file_name_name_or_glob(rule: str, holds: bool) -> None:
    t = one("{AgentName: {has: fabrikam}}", rule=rule)
    assert suppressed(t, alert(), rules=[Slug("exchange-transport-agent-cmdlet")]) == ([0] if holds else [])


def test_rule_file_name_from_the_alert_when_no_rules_are_given() -> None:
    t = one("{AgentName: {has: fabrikam}}", rule="audit-*")
    assert suppressed(t, alert(rule_slug="audit-agents-config"), alert()) == [0]


# -- counts, expiry, stale ---------------------------------------------------------------------


TWO = """\
- id: first
  rule: "*"
  match: {AgentName: {has: fabrikam}}
  reason: first
  owner: a
  expires: 2027-01-31
- rule: "*"
  match: {AgentName: {has: disclaimer}}
  reason: overlaps the first
  owner: b
  expires: 2027-01-31
- rule: "*"
  match: {AgentName: {equals: Contoso Agent}}
  reason: contoso
  owner: c
  expires: 2026-11-30
- rule: "*"
  match: {AgentName: {equals: Nothing Like It}}
  reason: never seen
  owner: d
"""


def test_counts_per_entry_expiry_and_stale_entries() -> None:
    t = entries(TWO, "two.yaml")
    alerts = [alert(), alert(AgentName="Other Disclaimer"), alert(AgentName="Contoso Agent"), alert(AgentName="X")]
    out = tuning.apply(alerts, t, today=TODAY)
    first, second, contoso, never = t.entries
    # the first entry to match claims an alert; the second still counts as used (not stale)
    assert [(s.index, s.entry) for s in out.suppressed] == [(0, first), (1, second)]
    assert out.counts == {first: 1, second: 1, never: 0}
    assert out.kept_index == [2, 3] and out.kept == [alerts[2], alerts[3]]
    assert out.expired == [(contoso, 1)]  # expired: reported with what it would hide, not applied
    assert out.stale == [never]
    assert tuning.report(out) == [
        ("warning", "two.yaml:17: the entry has no expires date; it suppresses until someone removes it"),
        ("info", "tuning: 1 alert(s) suppressed by first (two.yaml:1): first (owner a, until 2027-01-31)"),
        ("info", "tuning: 1 alert(s) suppressed by two.yaml:7: overlaps the first (owner b, until 2027-01-31)"),
        ("warning", "tuning entry two.yaml:12 expired on 2026-11-30 and is not applied; 1 alert(s) it matches "
                    "are shown: contoso (owner c)"),
        ("info", "tuning entry two.yaml:17 matched no alert (stale?): never seen (owner d)"),
        ("info", "tuning: 2 alert(s) suppressed by 2 of 4 entries (1 expired)."),
    ]


def test_an_entry_whose_alerts_an_earlier_one_claimed_is_not_stale() -> None:
    t = entries(TWO, "two.yaml")
    out = tuning.apply([alert()], t, today=TODAY)
    assert out.counts[t.entries[1]] == 0 and t.entries[1] not in out.stale


def test_an_entry_applies_through_its_expiry_day() -> None:
    t = one("{AgentName: {has: fabrikam}}")
    assert [s.index for s in tuning.apply([alert()], t, today=date(2027, 6, 30)).suppressed] == [0]
    later = tuning.apply([alert()], t, today=date(2027, 7, 1))
    assert later.suppressed == [] and later.kept_index == [0] and later.expired == [(t.entries[0], 1)]
    assert later.stale == []  # expired is said once, not as stale too


def test_today_defaults_to_the_utc_date(monkeypatch: pytest.MonkeyPatch) -> None:
    t = one("{AgentName: {has: fabrikam}}")
    monkeypatch.setattr(tuning, "today_utc", lambda: date(2028, 1, 1))
    assert tuning.apply([alert()], t).expired == [(t.entries[0], 1)]
    monkeypatch.setattr(tuning, "today_utc", lambda: date(2027, 1, 1))
    assert tuning.apply([alert()], t).expired == []


# -- malformed files -------------------------------------------------------------------------


#: Nine lines of nested aliases: 10^9 nodes.
BOMB = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
ENTRY = "- rule: '*'\n  match: {AgentName: {equals: x}}\n  reason: r\n  owner: o\n"


@pytest.mark.parametrize(("text", "message"), [
    ("rule: x\n", r"t\.yaml:1: a tuning file is a list of entries"),
    ("- just text\n", r"t\.yaml:1: an entry must be a mapping"),
    (ENTRY + "  mach: {}\n", r"t\.yaml:5: unknown key 'mach'"),
    (ENTRY.replace("equals", "equal"), r"t\.yaml:2: unknown operator 'equal' on AgentName"),
    (ENTRY.replace("{equals: x}", "{in: x}"), r"t\.yaml:2: in on AgentName takes a non-empty list"),
    (ENTRY.replace("{equals: x}", "{in: []}"), r"t\.yaml:2: in on AgentName takes a non-empty list"),
    (ENTRY.replace("{equals: x}", "{equals: [x]}"), r"t\.yaml:2: equals on AgentName takes text, not a list"),
    (ENTRY.replace("{equals: x}", "{equals: ''}"), r"t\.yaml:2: equals on AgentName is an empty text.*empty: true"),
    (ENTRY.replace("{equals: x}", "{equals: }"), r"t\.yaml:2: equals on AgentName takes text, not empty"),
    (ENTRY.replace("{equals: x}", "{}"), r"t\.yaml:2: the condition on AgentName has no operator"),
    (ENTRY.replace("{equals: x}", "x"), r"t\.yaml:2: the condition on AgentName must be a mapping"),
    (ENTRY.replace("{equals: x}", "{empty: yes please}"), r"t\.yaml:2: empty on AgentName takes true or false"),
    (ENTRY.replace("{equals: x}", "{empty: true, equals: x}"), r"t\.yaml:2: empty on AgentName stands alone"),
    (ENTRY.replace("{equals: x}", "{not: x}"), r"t\.yaml:2: the condition on AgentName must be a mapping"),
    (ENTRY.replace("{AgentName: {equals: x}}", "{}"), r"t\.yaml:2: match is empty"),
    (ENTRY.replace("{AgentName: {equals: x}}", "[]"), r"t\.yaml:2: match is an empty list"),
    (ENTRY.replace("{AgentName: {equals: x}}", "AgentName"), r"t\.yaml:2: match must be a mapping"),
    (ENTRY.replace("AgentName:", "'A||B':"), r"t\.yaml:2: field 'A\|\|B' has an empty name"),
    (ENTRY.replace("reason: r", "reason: [r]"), r"t\.yaml:3: reason must be text, not a list"),
    (ENTRY.replace("reason: r", "reason: ''"), r"t\.yaml:3: reason is empty"),
    (ENTRY.replace("  owner: o\n", ""), r"t\.yaml:1: the entry lacks owner"),
    (ENTRY.replace("  reason: r\n  owner: o\n", ""), r"t\.yaml:1: the entry lacks reason, owner"),
    (ENTRY + "  expires: 2027-13-45\n", r"t\.yaml:5: expires '2027-13-45' is not a date"),
    (ENTRY + "  expires: next year\n", r"t\.yaml:5: expires must be a date \(YYYY-MM-DD\)"),
    (ENTRY + "  expires: [2027-01-01]\n", r"t\.yaml:5: expires must be a date"),
    (ENTRY + "  owner: p\n", r"t\.yaml:5: 'owner' appears twice in an entry"),
    ("- &e\n  rule: x\n- <<: *e\n  match: {}\n", r"t\.yaml:3: merge keys \(<<\) are not allowed"),
    (ENTRY + "- rule: [\n", r"t\.yaml:\d+: not valid YAML"),
    (BOMB, r"t\.yaml: its aliases expand to more than"),
    (ENTRY.replace("{equals: x}", "{not: " * 9 + "{equals: x}" + "}" * 9), r"t\.yaml:2: not on AgentName is nested "
                                                                             r"more than 8 deep"),
    (ENTRY.replace("{equals: x}", "{not: " * 5000 + "{equals: x}" + "}" * 5000), r"t\.yaml:2: not valid YAML"),
])
def test_a_malformed_file_names_its_line_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        entries(text)


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = ("- rule: '*'\n  match: {AgentName: {equal: x}}\n  reason: r\n  owner: o\n"
            "- rule: '*'\n  match: {Path: {regex: '(?=x)'}}\n  reason: r\n  owner: o\n  expires: someday\n"
            "- rule: '*'\n  match: {}\n  reason: r\n  owner: o\n  colour: red\n")
    with pytest.raises(UsageError) as caught:
        entries(text, "bad.yaml")
    message = str(caught.value)
    assert message.startswith("tuning file bad.yaml: 5 problems: bad.yaml:2: unknown operator 'equal'")
    for part in ("bad.yaml:6: regex '(?=x)' is not valid RE2", "bad.yaml:9: expires must be a date",
                 "bad.yaml:11: match is empty", "bad.yaml:14: unknown key 'colour'"):
        assert part in message
    assert "\n" not in message  # one line, as every error the command line prints


def test_an_empty_file_loads_with_a_note() -> None:
    assert entries("", "e.yaml").notes == ["e.yaml: holds no entries"]
    assert entries("[]\n", "e.yaml").entries == []


def test_files_load_in_order_and_ids_must_be_unique(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("- id: Same\n" + ENTRY.replace("- rule", "  rule"))
    b.write_text(ENTRY + "- id: same\n" + ENTRY.replace("- rule", "  rule"))
    with pytest.raises(UsageError, match=rf"id 'same' of {b}:5 is already used by {a}:1"):
        tuning.load([a, b])
    b.write_text(ENTRY)
    assert [e.where for e in tuning.load([b, a]).entries] == [f"{b}:1", f"{a}:1"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read"),
    (b"\xff\xfe- rule: x\n", "is not UTF-8 text"),
])
def test_an_unreadable_file_is_a_usage_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "t.yaml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        tuning.load([path])


# -- properties --------------------------------------------------------------------------------


TEXT = st.text(alphabet=st.sampled_from("aAbBzZ19 ._-\\:éÉßΣσς"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT.filter(lambda s: s != ""))
def test_equals_and_friends_agree_with_python_casefold(value: str, needle: str) -> None:
    v, n = value.casefold(), needle.casefold()
    quoted = needle.replace("'", "''")
    for op, expected in (("equals", v == n), ("startswith", v.startswith(n)), ("endswith", v.endswith(n)),
                         ("contains", n in v)):
        t = one(f"{{F: {{{op}: '{quoted}'}}}}")
        assert bool(suppressed(t, alert(F=value))) is (expected and value != ""), op


@settings(max_examples=300, deadline=None)
@given(TEXT, st.text(alphabet=st.sampled_from("aAbB19é"), min_size=1, max_size=4))
def test_has_on_a_single_term_is_membership_in_the_value_terms(value: str, needle: str) -> None:
    import re

    terms = {t.casefold() for t in re.findall(r"[^\W_]+", value)}
    assert tuning.has_term(value.casefold(), needle.casefold()) is (needle.casefold() in terms)


# -- the shipped known vendors ---------------------------------------------------------------------


#: Each shipped entry's facts (content.md §6): agent name, factory, install paths seen or documented.
VENDORS = {
    "symantec-smsmse-routing-agent": (
        "SMSMSERoutingAgent", "Symantec.MailSecurity.Server.TransportAgent.SMSMSERoutingAgentFactory",
        [r"C:\Program Files (x86)\Symantec\SMSMSE\7.5\Server\Symantec.MailSecurity.Server.TransportAgent.dll",
         r"E:\Program Files (x86)\Symantec\SMSMSE\8.0.1\Server\Symantec.MailSecurity.Server.TransportAgent.dll",
         r"D:\Program Files\Symantec\SMSMSE\7.9\Server\Symantec.MailSecurity.Server.TransportAgent.dll"]),
    "exchange-dkimsigner": (
        "Exchange DkimSigner", "Exchange.DkimSigner.DkimSigningRoutingAgentFactory",
        [r"C:\Program Files\Exchange DkimSigner\ExchangeDkimSigner.dll",
         r"d:\program files (x86)\exchange dkimsigner\exchangedkimsigner.dll"]),
}


def vendor_alert(name: str, factory: str, path: str, factory_field: str = "TransportAgentFactory") -> dict[str, Any]:
    found = alert(AgentName=name, AssemblyPath=path, TransportAgentFactory="")
    found[factory_field] = factory
    return found


def test_known_vendors_ship_name_factory_and_path_for_each_entry() -> None:
    shipped = tuning.known_vendors()
    assert shipped.notes == []
    assert sorted(e.id or "" for e in shipped.entries) == sorted(VENDORS)
    for entry in shipped.entries:
        assert entry.owner == "exhunt known vendors" and entry.expires is None and entry.reason and entry.shipped
        assert entry.rule == "*" and len(entry.match) == 1
        fields = {c.fields for c in entry.match[0]}
        assert fields == {("AgentName", "Name"), ("TransportAgentFactory", "AgentFactory", "FactoryType"),
                          ("AssemblyPath",)}, entry.id


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_each_known_vendor_suppresses_its_own_facts_only(vendor: str) -> None:
    shipped = tuning.load([], vendors=True)
    name, factory, paths = VENDORS[vendor]
    real = [vendor_alert(name, factory, p, f) for p in paths
            for f in ("TransportAgentFactory", "AgentFactory", "FactoryType")]
    dll = paths[0].rsplit("\\", 1)[1]
    fakes = [
        vendor_alert(name, factory, "C:\\Windows\\Temp\\" + dll),                      # foreign path
        vendor_alert(name, factory, paths[0] + ".bak"),
        vendor_alert(name, factory, "\\\\fs\\share\\" + paths[0][3:]),                 # UNC
        vendor_alert(name, factory, "C:\\Users\\x\\AppData\\" + paths[0][3:]),         # nested under another folder
        vendor_alert(name, "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory", paths[0]),  # factory
        vendor_alert(name, factory + "X", paths[0]),
        vendor_alert("Security Interop Agent", factory, paths[0]),                      # name
        vendor_alert(name, "", ""),                                                     # the name only
        alert(Cmdlet="Enable-TransportAgent", AgentName=name, AssemblyPath="", TransportAgentFactory=""),
    ]
    out = tuning.apply(real + fakes, shipped, today=TODAY)
    assert [s.index for s in out.suppressed] == list(range(len(real)))
    assert {s.entry.id for s in out.suppressed} == {vendor}
    assert out.stale == []  # shipped entries are a catalogue: never reported stale


ASCII = st.text(alphabet=st.sampled_from("aAbBzZ19 ._-\\:éÉ"), max_size=10)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(ASCII, ASCII.filter(lambda s: s != "")), min_size=1, max_size=40))
def test_operators_agree_with_the_kql_engine_the_rules_run_on(pairs: list[tuple[str, str]]) -> None:
    """The same operators in duckdb-kql (what the shipped rules are run by) give the same verdicts."""
    import duckdb_kql

    con = duckdb_kql.connect()
    try:
        con.execute("CREATE TABLE T (i BIGINT, h VARCHAR, n VARCHAR)")
        con.executemany("INSERT INTO T VALUES (?, ?, ?)", [(i, h, n) for i, (h, n) in enumerate(pairs)])
        rows = duckdb_kql.kql(con, "T | order by i asc | project h =~ n, h startswith n, h endswith n, "
                                   "h contains n, h has n").fetchall()
    finally:
        con.close()
    for (value, needle), engine in zip(pairs, rows, strict=True):
        ours = []
        for op in ("equals", "startswith", "endswith", "contains", "has"):
            t = one(f"{{F: {{{op}: '{needle}'}}}}")
            ours.append(bool(suppressed(t, alert(F=value))))
        # an empty value never suppresses (a missing field), whatever the engine says of ""
        assert tuple(ours) == (tuple(engine) if value else (False,) * 5), (value, needle)
