"""`exhunt rules export`: every shipped rule, every target, the query byte for byte as tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from exhunt.export import TARGETS, defender_schedule, defender_warnings, export, exported_query
from exhunt.rule import Rule, load_rule, load_rules, shipped_dir

RULES = load_rules()
SEED = "exchange-transport-agent-seed"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("rule", RULES, ids=[r.slug for r in RULES])
def test_exported_query_is_byte_identical(rule: Rule, target: str) -> None:
    # The tested query is the one the rule file holds (what `rules test` and detect run).
    on_disk = yaml.safe_load(rule.path.read_text(encoding="utf-8"))["query"]
    text = export(rule, target)
    assert exported_query(text, target).encode() == rule.query.encode() == on_disk.encode()


def test_sentinel_yaml_has_only_sentinel_fields_and_mapped_severity() -> None:
    (seed,) = load_rules([SEED])
    doc = yaml.safe_load(export(seed, "sentinel"))
    assert "exhunt" not in doc
    assert doc["severity"] == "High" and seed.severity == "critical"
    assert doc["id"] == seed.id and doc["kind"] == "Scheduled"
    assert doc["queryFrequency"] == "1h" and doc["queryPeriod"] == "24h"


def test_sentinel_export_maps_critical_written_in_the_sentinel_field(tmp_path: Path) -> None:
    doc = yaml.safe_load((shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8"))
    doc["severity"] = "critical"
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert yaml.safe_load(export(load_rule(path), "sentinel"))["severity"] == "High"


def test_arm_template_deploys_a_scheduled_rule_into_the_workspace() -> None:
    (seed,) = load_rules([SEED])
    tpl = json.loads(export(seed, "sentinel-arm"))
    assert "workspace" in tpl["parameters"]
    (res,) = tpl["resources"]
    assert res["type"] == "Microsoft.OperationalInsights/workspaces/providers/alertRules"
    assert res["kind"] == "Scheduled" and seed.id in res["name"] and "parameters('workspace')" in res["name"]
    props = res["properties"]
    assert props["queryFrequency"] == "PT1H" and props["queryPeriod"] == "P1D"
    assert props["severity"] == "High" and props["triggerOperator"] == "GreaterThan"
    assert props["techniques"] == ["T1505"] and props["subTechniques"] == ["T1505.002"]


def test_arm_escapes_a_leading_bracket(tmp_path: Path) -> None:
    doc = yaml.safe_load((shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8"))
    doc["query"] = "[DeviceFileEvents] | take 1\n"  # odd, but ARM would evaluate it as an expression
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    text = export(load_rule(path), "sentinel-arm")
    assert json.loads(text)["resources"][0]["properties"]["query"].startswith("[[")
    assert exported_query(text, "sentinel-arm") == doc["query"]


def test_defender_json_shape_and_frequency() -> None:
    """Graph's current detectionRule: schedule.frequency + lookback (period is gone), tactics with
    their techniques, entity mappings by column (impactedAssets, category, mitreTechniques are gone)."""
    (seed,) = load_rules([SEED])
    body = json.loads(export(seed, "defender"))
    assert body["schedule"] == {"frequency": "PT1H", "lookback": "P1D"}  # 1h runs over its 24h period
    alert = body["detectionAction"]["alertTemplate"]
    assert alert["severity"] == "high"
    assert not {"category", "mitreTechniques", "impactedAssets"} & set(alert)
    assert alert["tactics"] == [{"tactic": "Persistence",
                                 "techniques": [{"technique": "T1505", "subTechniques": ["T1505.002"]}]}]
    assert alert["entityMappings"]["hosts"] == [{"nameColumn": "DeviceName"}]
    assert alert["entityMappings"]["accounts"] == [{"nameColumn": "AccountName"}]


def _probe(tmp_path: Path, **changes: object) -> Rule:
    doc = {**yaml.safe_load((shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8")), **changes}
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_rule(path)


@pytest.mark.parametrize(("freq", "period", "kind", "expected"), [
    ("1h", "1h", "Scheduled", {"frequency": "PT1H", "lookback": "PT1H"}),
    ("2h", "1h", "Scheduled", {"frequency": "PT3H", "lookback": "PT3H"}),  # lookback at least the frequency
    ("4h", "2d", "Scheduled", {"frequency": "PT12H", "lookback": "P2D"}),
    ("1d", "14d", "Scheduled", {"frequency": "P1D", "lookback": "P14D"}),
    ("2d", "2d", "Scheduled", {"frequency": "P1D", "lookback": "P2D"}),
    ("5m", "5m", "NRT", {"frequency": "PT0S"}),
])
def test_defender_schedule(tmp_path: Path, freq: str, period: str, kind: str, expected: dict[str, str]) -> None:
    rule = _probe(tmp_path, queryFrequency=freq, queryPeriod=period, kind=kind)
    assert defender_schedule(rule) == expected


def test_defender_entity_mappings_and_tactics_follow_attack(tmp_path: Path) -> None:
    (dll,) = load_rules(["exchange-agent-dll-placement"])
    alert = json.loads(export(dll, "defender"))["detectionAction"]["alertTemplate"]
    assert alert["entityMappings"] == {
        "hosts": [{"nameColumn": "DeviceName", "deviceIdColumn": "DeviceId"}],
        "accounts": [{"nameColumn": "AccountName", "ntDomainColumn": "AccountDomain"}],
        "files": [{"nameColumn": "FileName", "sha256Column": "SHA256"}],  # the FileHash joins the file
        "ips": [{"addressColumn": "RequestSourceIP"}],
    }
    assert alert["tactics"] == [
        {"tactic": "Persistence", "techniques": [{"technique": "T1505", "subTechniques": ["T1505.002"]}]},
        {"tactic": "LateralMovement", "techniques": [{"technique": "T1570", "subTechniques": []}]},
    ]
    assert "Defender's entity mappings have no place for Process; left out" in defender_warnings(dll)
    mailbox = {"entityType": "Mailbox",
               "fieldMappings": [{"identifier": "MailboxPrimaryAddress", "columnName": "RecipientEmailAddress"}]}
    rule = _probe(tmp_path, entityMappings=[mailbox], queryFrequency="2h", queryPeriod="2h")
    alert = json.loads(export(rule, "defender"))["detectionAction"]["alertTemplate"]
    assert alert["entityMappings"] == {"mailboxes": [{"primaryAddressColumn": "RecipientEmailAddress"}]}
    warnings = " ".join(defender_warnings(rule))
    assert "every PT3H" in warnings and "not every 2h" in warnings


def test_cli_export_to_file_and_bad_target(tmp_path: Path) -> None:
    out = tmp_path / "seed.json"
    code, _, err = run_cli(["rules", "export", SEED, "--to", "defender", "-o", str(out)])
    assert code == 0 and json.loads(out.read_text(encoding="utf-8"))["isEnabled"] is True
    assert "ReportId" in " ".join(err.split())
    code, _, err = run_cli(["rules", "export", SEED, "--to", "splunk"])
    assert code == 2 and "--to must be one of" in err
