"""`exhunt rules export`: every shipped rule, every target, the query byte for byte as tested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from exhunt.export import TARGETS, defender_period, export, exported_query
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
    (seed,) = load_rules([SEED])
    body = json.loads(export(seed, "defender"))
    assert body["schedule"] == {"period": "1H"}  # judged row by row: every row seen once at 1H/4h
    alert = body["detectionAction"]["alertTemplate"]
    assert alert["severity"] == "high" and alert["category"] == "Persistence"
    assert alert["mitreTechniques"] == ["T1505.002"]
    assert {"@odata.type": "#microsoft.graph.security.impactedDeviceAsset", "identifier": "deviceName"} \
        in alert["impactedAssets"]
    # An aggregating rule needs a lookback covering its 24h period: 12H (48h lookback).
    assert defender_period(seed, rowwise=False) == "12H"


def test_cli_export_to_file_and_bad_target(tmp_path: Path) -> None:
    out = tmp_path / "seed.json"
    code, _, err = run_cli(["rules", "export", SEED, "--to", "defender", "-o", str(out)])
    assert code == 0 and json.loads(out.read_text(encoding="utf-8"))["isEnabled"] is True
    assert "ReportId" in " ".join(err.split())
    code, _, err = run_cli(["rules", "export", SEED, "--to", "splunk"])
    assert code == 2 and "--to must be one of" in err
