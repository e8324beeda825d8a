"""exhunt.audit.agentlists: agents.config read safely, saved Get-TransportAgent outputs, copies diffed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from audit_layout import FIRST_AGENT_LINE, V15, agents_config, builtin_agent
from exhunt.audit import agentlists
from exhunt.audit.agentlists import AgentList, diff, read_list


def _read(path: Path, role: str = "live", of: str = "agents.config") -> AgentList:
    return read_list(path, AgentList(path.name, "", role, of, "Hub", V15))


def _rows(alist: AgentList) -> list[tuple[Any, ...]]:
    return [(a.name, a.factory, a.assembly_path, a.enabled, a.order, a.service, a.source) for a in alist.agents]


EVIL = {"name": "Mail Archiver", "factory": "Evil.ArchiverFactory", "path": r"C:\Windows\Temp\arch.dll",
        "enabled": False}


def test_agents_config_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "agents.config"
    path.write_text(agents_config([builtin_agent("Transport Rule Agent"), EVIL]), encoding="utf-8-sig")
    alist = _read(path)
    assert alist.problem is None and alist.form == "xml"
    rule = builtin_agent("Transport Rule Agent")
    assert _rows(alist) == [
        ("Transport Rule Agent", rule["factory"], rule["path"], True, 0, "Hub", f"agents.config:{FIRST_AGENT_LINE}"),
        ("Mail Archiver", "Evil.ArchiverFactory", r"C:\Windows\Temp\arch.dll", False, 1, "Hub",
         f"agents.config:{FIRST_AGENT_LINE + 1}")]
    assert alist.agents[0].base_type == "Microsoft.Exchange.Data.Transport.Smtp.SmtpReceiveAgent"


def test_utf16_list_and_odd_enabled_values(tmp_path: Path) -> None:
    path = tmp_path / "agents.config"
    text = ('<?xml version="1.0" encoding="utf-16"?>\r\n<configuration><mexRuntime><agentList>\r\n'
            '<agent name="Ä" classFactory="F" assemblyPath="C:\\a.dll" enabled="TRUE"/>\r\n'
            '<agent name="B" classFactory="F" assemblyPath="C:\\b.dll"/>\r\n'
            '<agent name="C" classFactory="F" assemblyPath="C:\\c.dll" enabled="yes"/>\r\n'
            '</agentList></mexRuntime></configuration>\r\n')
    path.write_bytes(text.encode("utf-16"))
    assert [(a.name, a.enabled, a.source) for a in _read(path).agents] == [
        ("Ä", True, "agents.config:3"), ("B", None, "agents.config:4"), ("C", None, "agents.config:5")]


def test_malformed_xml_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "agents.config"
    path.write_text('<configuration>\n<mexRuntime>\n<agentList>\n<agent name="x" />\n</mexRuntime>\n')
    problem = _read(path).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.message) == (
        "malformed", 5, "not well-formed XML: mismatched tag (line 5, column 2)")


def test_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "agents.config"
    path.write_text("<appSettings><add key='a' value='b'/></appSettings>")
    problem = _read(path).problem
    assert problem is not None and problem.kind == "not-a-list"
    assert problem.message == "the root element is <appSettings>, not <configuration>: not an agent list"


XXE = """<?xml version="1.0"?>
<!DOCTYPE configuration [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<configuration><mexRuntime><agentList>
<agent name="&secret;" classFactory="F" assemblyPath="C:\\a.dll" enabled="true"/>
</agentList></mexRuntime></configuration>
"""

LAUGHS = '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n' + "".join(
    f' <!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">\n' for i in range(1, 10)) + \
    ']>\n<configuration><mexRuntime><agentList><agent name="&lol9;" classFactory="F" assemblyPath="a" ' \
    'enabled="true"/></agentList></mexRuntime></configuration>\n'

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE c [ <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote; ]>
<configuration/>
"""


@pytest.mark.parametrize("text", [XXE, LAUGHS, PARAMETER_ENTITY, '<!DOCTYPE configuration>\n<configuration/>'],
                         ids=["xxe", "billion-laughs", "parameter-entity", "bare-doctype"])
def test_hostile_xml_is_refused_unexpanded(tmp_path: Path, text: str) -> None:
    path = tmp_path / "agents.config"
    path.write_text(text)
    started = time.perf_counter()
    alist = _read(path)
    assert time.perf_counter() - started < 1
    assert alist.agents == []
    assert alist.problem is not None and alist.problem.kind == "hostile"
    assert alist.problem.message.startswith("the list declares a DTD (document type): refused unread")


def test_a_100_mb_list_is_refused_without_being_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agents.config"
    with open(path, "wb") as fh:  # sparse: 100 MB that take no disk
        fh.truncate(100 << 20)
    opened: list[str] = []
    monkeypatch.setattr(agentlists.readbound, "read_bounded", lambda path, limit: opened.append(str(path)))
    started = time.perf_counter()
    alist = _read(path)
    assert time.perf_counter() - started < 0.5
    assert opened == []  # refused from its size alone
    assert alist.problem is not None and alist.problem.kind == "refused"
    assert alist.problem.message == ("104857600 bytes, over the 8388608-byte limit for an agent list: not read "
                                     "(Exchange's own lists are a few kilobytes)")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "agents.config"
    os.mkfifo(path)
    alist = _read(path)
    assert alist.problem is not None and alist.problem.message == "not a regular file: not read"


# A saved `Get-TransportAgent | Format-List` from a remote Exchange Management Shell, redirected
# with `>` by Windows PowerShell (UTF-16 with BOM, CRLF), values wrapped at the console's width.
FORMAT_LIST = """
PSComputerName        : exch01.contoso.local
RunspaceId            : 6b1d4a70-2d3c-4a3e-9a38-51f4f1a0c2de
Enabled               : True
Priority              : 2
TransportAgentFactory : Microsoft.Exchange.Transport.Agent.Malware.MalwareAgentFactory
AssemblyPath          : C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\agents\\Antimalware\\Micr
                        osoft.Exchange.Transport.Agent.Malware.dll
Identity              : Malware Agent
IsValid               : True
ObjectState           : New

PSComputerName        : exch01.contoso.local
RunspaceId            : 6b1d4a70-2d3c-4a3e-9a38-51f4f1a0c2de
Enabled               : True
Priority              : 1
TransportAgentFactory : Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.TransportRuleAgentFactory
AssemblyPath          : C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\agents\\Rule\\Microsoft.E
                        xchange.MessagingPolicies.TransportRuleAgent.dll
Identity              : Transport Rule Agent
IsValid               : True
ObjectState           : New

PSComputerName        : exch01.contoso.local
RunspaceId            : 6b1d4a70-2d3c-4a3e-9a38-51f4f1a0c2de
Enabled               : False
Priority              : 3
TransportAgentFactory : Microsoft.Exchange.Transport.Agent.ConnectionFiltering.ConnectionFilteringAgentFactory
AssemblyPath          : C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\agents\\Hygiene\\Microso
                        ft.Exchange.Transport.Agent.ConnectionFiltering.dll
Identity              : Connection Filtering Agent
IsValid               : True
ObjectState           : New


""".replace("\n", "\r\n")

HYGIENE_LOOKALIKE = V15 + r"\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.ConnectionFiltering.dll"


def test_format_list_output(tmp_path: Path) -> None:
    path = tmp_path / "agents.txt"
    path.write_bytes(FORMAT_LIST.encode("utf-16"))
    alist = read_list(path, AgentList("agents.txt", "", "saved", "", "", ""))
    assert alist.problem is None and alist.form == "format-list"
    assert _rows(alist) == [
        ("Transport Rule Agent", "Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.TransportRuleAgentFactory",
         V15 + r"\TransportRoles\agents\Rule\Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.dll", True, 0,
         "", "agents.txt:13"),
        ("Malware Agent", "Microsoft.Exchange.Transport.Agent.Malware.MalwareAgentFactory",
         V15 + r"\TransportRoles\agents\Antimalware\Microsoft.Exchange.Transport.Agent.Malware.dll", True, 1, "",
         "agents.txt:2"),
        ("Connection Filtering Agent",
         "Microsoft.Exchange.Transport.Agent.ConnectionFiltering.ConnectionFilteringAgentFactory", HYGIENE_LOOKALIKE,
         False, 2, "", "agents.txt:24")]


def test_format_list_table_view_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "agents.txt"
    path.write_text("\nIdentity                                           Enabled         Priority\n"
                    "--------                                           -------         --------\n"
                    "Transport Rule Agent                               True            1\n")
    problem = read_list(path, AgentList("agents.txt", "", "saved", "", "", "")).problem
    assert problem is not None and problem.kind == "not-a-list" and problem.line == 2
    assert "save `Get-TransportAgent | Format-List` or `| ConvertTo-Json` instead" in problem.message


# `Get-TransportAgent | ConvertTo-Json` (Windows PowerShell 5.1 writes four-space indents).
JSON_ROWS = [
    {"Enabled": True, "Priority": 1,
     "TransportAgentFactory": "Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.TransportRuleAgentFactory",
     "AssemblyPath": V15 + r"\TransportRoles\agents\Rule\Microsoft.Exchange.MessagingPolicies.TransportRuleAgent.dll",
     "Identity": "Transport Rule Agent", "IsValid": True, "ObjectState": 0},
    {"Enabled": False, "Priority": 2, "TransportAgentFactory": "Contoso.Mail.Archive.ArchiveRoutingAgentFactory",
     "AssemblyPath": r"D:\Contoso\Archive\Contoso.Mail.Archive.dll",
     "Identity": {"Name": "Contoso Archive", "IsValid": True}, "IsValid": True, "ObjectState": 0},
]


def test_convertto_json_output(tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text(json.dumps(JSON_ROWS, indent=4).replace("\n", "\r\n"), encoding="utf-8-sig")
    alist = read_list(path, AgentList("agents.json", "", "saved", "", "", ""))
    assert alist.problem is None and alist.form == "json"
    assert [(a.name, a.enabled, a.order, a.source) for a in alist.agents] == [
        ("Transport Rule Agent", True, 0, "agents.json:2"), ("Contoso Archive", False, 1, "agents.json:11")]
    assert alist.agents[1].assembly_path == r"D:\Contoso\Archive\Contoso.Mail.Archive.dll"


def test_convertto_json_of_one_agent_is_an_object(tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text(json.dumps(JSON_ROWS[0], indent=4))
    alist = read_list(path, AgentList("agents.json", "", "saved", "", "", ""))
    assert [(a.name, a.source) for a in alist.agents] == [("Transport Rule Agent", "agents.json:1")]


@pytest.mark.parametrize(("text", "message"), [
    ('[{"Identity": "x"', "not valid JSON: "),
    ('[{"Name": "no path or factory"}]', "no objects with Identity and AssemblyPath or TransportAgentFactory"),
    ("[" * 5000, "not valid JSON: "),
])
def test_bad_json(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agents.json"
    path.write_text(text)
    problem = read_list(path, AgentList("agents.json", "", "saved", "", "", "")).problem
    assert problem is not None and problem.message.startswith(message)


def test_diff_against_a_copy(tmp_path: Path) -> None:
    template = tmp_path / "agents.config.template"
    template.write_text(agents_config([builtin_agent("Transport Rule Agent"), builtin_agent("Malware Agent"),
                                       builtin_agent("Journaling Agent")]))
    live = tmp_path / "agents.config"
    repointed = dict(builtin_agent("Malware Agent"), path=r"C:\Windows\Temp\m.dll")
    live.write_text(agents_config([repointed, builtin_agent("Transport Rule Agent", enabled=False), EVIL]))
    got = diff(_read(live), _read(template, "template"))
    assert [(d.kind, d.name, d.changes) for d in got] == [
        ("changed", "Malware Agent", [
            f"assemblyPath '{builtin_agent('Malware Agent')['path']}' -> 'C:\\Windows\\Temp\\m.dll'",
            "position among shared agents 2 -> 1"]),
        ("changed", "Transport Rule Agent", ["enabled true -> false", "position among shared agents 1 -> 2"]),
        ("added", "Mail Archiver", []),
        ("removed", "Journaling Agent", [])]
