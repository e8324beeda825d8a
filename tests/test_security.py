"""Hostile rules, cache entries and rule files: no query reads or writes a file, a YAML alias
bomb fails fast, and a rule that fails at run time costs only its own alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

import helpers
from conftest import run_cli
from exhunt import kqlcache, sources, sqlguard, yamltext
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.rule import load_rules, shipped_dir
from exhunt.ruletest import run_tests

SEED = "exchange-transport-agent-seed"
EVIL_KQL = "DeviceProcessEvents | project Timestamp, DeviceName, EvilMarker = FileName"
BACKREF_KQL = 'DeviceProcessEvents | where FileName matches regex @"(e)\\1" | project Timestamp, DeviceName'
#: The seed rule's alerts on helpers' rows: (Timestamp, DetectionType, FileName).
SEED_ALERTS = sorted(helpers.EXPECTED_DETECTIONS)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The helpers' rows as Parquet files, which DuckDB reads in place while rules run."""
    folder = tmp_path / "data"
    helpers.FORMATS["parquet"][1](folder)
    return folder


def _rules(tmp_path: Path, slug: str, query: str) -> Path:
    """A folder with the seed rule and one other rule running `query`."""
    folder = tmp_path / "rules"
    helpers.seed_rule(folder, "a-seed")
    helpers.seed_rule(folder, slug, query=query, id="00000000-0000-4000-8000-000000000001", name=slug)
    return folder


def _alerts(out: str) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in out.splitlines()]
    return sorted((r["Timestamp"], r["DetectionType"], r["FileName"]) for r in rows)


def _plant(monkeypatch: pytest.MonkeyPatch, sql: str, kql: str = EVIL_KQL) -> None:
    """The cache hands back `sql` for `kql`, as if a planted entry had passed its checks."""
    real = kqlcache.get
    monkeypatch.setattr(kqlcache, "get", lambda inp: (sql, {}) if inp.kql == kql else real(inp))


def _attacks(tmp_path: Path) -> list[tuple[str, str]]:
    secret = tmp_path / "secret.txt"
    secret.write_text("col\ntop-secret\n", encoding="utf-8")
    out = tmp_path / "written.txt"
    return [
        ("copy-to", f"COPY (SELECT 1) TO '{out}'"),
        ("copy-after-select", f"SELECT 1 AS x; COPY (SELECT 1) TO '{out}'"),
        ("read_csv", f"SELECT * FROM read_csv('{secret}')"),
        ("read_text", f"SELECT content AS Timestamp FROM read_text('{secret}')"),
        ("glob", "SELECT file AS Timestamp FROM glob('/*')"),
        ("attach", f"ATTACH '{out}' AS stolen"),
        ("install", "INSTALL httpfs"),
        ("load", "LOAD httpfs"),
        ("set", "SET enable_external_access = true"),
        # Tampering with the evidence the other rules read (this rule runs first).
        ("drop-after-select", 'SELECT 1 AS x; DROP VIEW "DeviceProcessEvents"'),
        ("with-delete", 'WITH a AS (SELECT 1) DELETE FROM "_s_DeviceProcessEvents"'),
    ]


ATTACK_IDS = ["copy-to", "copy-after-select", "read_csv", "read_text", "glob", "attach", "install", "load", "set",
              "drop-after-select", "with-delete"]


def _attack(tmp_path: Path, name: str) -> str:
    return dict(_attacks(tmp_path))[name]


def _flat(text: str) -> str:
    """Text without whitespace: the terminal wraps lines wherever it likes (paths included)."""
    return "".join(text.split())


def _refused(err: str) -> bool:
    text = _flat(err)
    return (_flat("refused to run: the query's SQL is") in text and _flat("not one SELECT") in text) or \
        _flat("refused: the query tried to read or write a file") in text


@pytest.mark.parametrize("attack", ATTACK_IDS)
def test_detect_refuses_a_planted_query_and_keeps_the_other_rules(
        data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: str) -> None:
    _plant(monkeypatch, _attack(tmp_path, attack))
    rules = _rules(tmp_path, "0-evil", EVIL_KQL)
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat", "-j", "1"])
    assert code == 2
    assert _alerts(out) == SEED_ALERTS, "the seed rule's alerts are still reported"
    assert "rule 0-evil FAILED:" in err and _refused(err), err
    assert "1 of 2 rule(s) failed (0-evil): the results are partial" in " ".join(err.split())
    assert not (tmp_path / "written.txt").exists()
    assert "top-secret" not in out + err


@pytest.mark.parametrize("attack", ["copy-to", "read_text", "attach"])
def test_query_refuses_a_planted_query(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       attack: str) -> None:
    _plant(monkeypatch, _attack(tmp_path, attack))
    code, out, err = run_cli(["query", EVIL_KQL, str(data), "-f", "jsonl", "-q"])
    assert code == 2 and out == ""
    assert err.startswith("error: refused") and _refused(err), err
    assert not (tmp_path / "written.txt").exists()
    assert "top-secret" not in err


def test_rules_test_refuses_a_planted_query(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "rules"
    path = helpers.seed_rule(folder, "evil", query=EVIL_KQL)
    (folder / "tests").mkdir()
    (folder / "tests" / "evil.yaml").write_text(yaml.safe_dump({"rule": "evil", "cases": [{
        "name": "one row", "kind": "true-positive",
        "events": {"DeviceProcessEvents": [{"Timestamp": "2026-01-01T00:00:00Z", "FileName": "a.exe"}]},
        "expect": [{"EvilMarker": "a.exe"}]}]}), encoding="utf-8")
    (result,) = run_tests(load_rules([str(path)]))
    assert result.passed, result.problems  # the rule itself is fine
    _plant(monkeypatch, _attack(tmp_path, "copy-to"))
    (result,) = run_tests(load_rules([str(path)]))
    assert not result.passed
    assert _refused(result.problems[0]), result.problems
    assert not (tmp_path / "written.txt").exists()


@pytest.mark.parametrize("kql", [
    'print x = read_text("/etc/passwd")',
    'DeviceProcessEvents | extend x = read_csv("/etc/passwd")',
    'externaldata (x: string) [@"/etc/passwd"] with (format="txt")',
])
def test_the_translator_lets_no_file_function_through(data: Path, tmp_path: Path, kql: str) -> None:
    code, out, err = run_cli(["query", kql, str(data), "-q"])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "is not supported by the local engine" in err and "root:" not in err
    rules = _rules(tmp_path, "reader", kql)
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat"])
    assert code == 2
    assert _alerts(out) == SEED_ALERTS
    assert "rule reader FAILED:" in err


def test_inputs_hunted_in_place_stay_readable_once_file_access_is_off(data: Path) -> None:
    """Only the input files themselves: the Parquet views and provenance still read them."""
    with Session() as s:
        s.in_place = True
        s.load_files(list(sources.walk([data])))
        s.seal()
        assert DuckDBBackend(s).query("DeviceProcessEvents | count").to_pylist() == [{"Count": 3}]
        with pytest.raises(duckdb.PermissionException):
            s.run(f"SELECT * FROM read_text('{data.parent / 'elsewhere.txt'}')")
        with pytest.raises(RuntimeError, match="files cannot be loaded once queries have run"):
            s.load_files([])


def test_spilling_still_works_once_file_access_is_off() -> None:
    """DuckDB's temporary folder is its own: rows beyond the memory limit still spill there."""
    with Session(memory_limit="32MB") as s:
        s.seal()
        s.run("CREATE TABLE big AS SELECT range AS i, md5(CAST(range AS VARCHAR)) AS s FROM range(1000000)")
        assert s.run("SELECT count(*), max(i), min(s) FROM big") == [(1000000, 999999, s.run(
            "SELECT min(md5(CAST(range AS VARCHAR))) FROM range(1000000)")[0][0])]
        assert s.run("SELECT count(*) > 0 FROM duckdb_temporary_files()") == [(True,)]


# -- a rule failing at run time costs only its own alerts ---------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_rule_whose_regex_re2_refuses_fails_alone(data: Path, tmp_path: Path, jobs: str) -> None:
    rules = _rules(tmp_path, "bad-regex", BACKREF_KQL)
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat", "-j", jobs,
                              "--fail-on", "low"])
    text = " ".join(err.split())
    assert code == 2, "a partial run exits 2, whatever --fail-on says"
    assert _alerts(out) == SEED_ALERTS
    assert ("rule bad-regex FAILED: the regular expression `(e)\\1` cannot run: RE2, the local engine's regex library, "
            "refuses it (invalid escape sequence: \\1)") in text
    assert "rule a-seed: 3 alert(s)" in text
    assert "1 of 2 rule(s) failed (bad-regex): the results are partial; 3 alert(s) from the other 1." in text


def test_failed_rule_is_reported_even_with_quiet(data: Path, tmp_path: Path) -> None:
    rules = _rules(tmp_path, "bad-regex", BACKREF_KQL)
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat", "-q"])
    assert code == 2 and _alerts(out) == SEED_ALERTS
    assert "rule a-seed" not in err and "rule bad-regex FAILED" in err


def test_rule_running_out_of_memory_fails_alone(data: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = DuckDBBackend._execute

    def short_of_memory(self: DuckDBBackend, sql: str, params: dict[str, Any]) -> Any:
        if "Hungry" in sql:
            raise duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block of size 256.0 KiB")
        return real(self, sql, params)

    monkeypatch.setattr(DuckDBBackend, "_execute", short_of_memory)
    rules = _rules(tmp_path, "hungry", "DeviceProcessEvents | project Timestamp, Hungry = FileName")
    code, out, err = run_cli(["detect", str(data), "--rules", str(rules), "-f", "jsonl", "--flat", "--memory", "1GB"])
    assert code == 2 and _alerts(out) == SEED_ALERTS
    assert "rule hungry FAILED: ran out of memory (DuckDB's share of this run is" in " ".join(err.split())


def test_validate_finds_the_regex_re2_refuses_ahead_of_time(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "bad-regex", BACKREF_KQL)
    code, _, err = run_cli(["rules", "validate", str(rules / "bad-regex.yaml")])
    assert code == 2
    query_line = next(i for i, text in enumerate((rules / "bad-regex.yaml").read_text().splitlines(), 1)
                      if text.startswith("query:"))
    assert (f"error: line {query_line}: the regular expression `(e)\\1` cannot run: RE2, the local engine's "
            "regex library, refuses it (invalid escape sequence: \\1)") in " ".join(err.split())
    code, _, err = run_cli(["rules", "validate", str(rules / "a-seed.yaml")])
    assert "regular expression" not in err


def test_validate_checks_patterns_built_from_literals(tmp_path: Path) -> None:
    kql = ('DeviceProcessEvents | where FileName has_any ("a", "b") or FolderPath matches regex '
           'strcat("x", "a++") | project Timestamp, DeviceName')
    rules = _rules(tmp_path, "built", kql)
    code, _, err = run_cli(["rules", "validate", str(rules / "built.yaml")])
    assert code == 2
    assert "the regular expression `xa++` cannot run" in " ".join(err.split())


# -- YAML: aliases bounded ---------------------------------------------------------------------------


def _bomb(folder: Path, name: str = "bomb.yaml") -> Path:
    """The seed rule with a billion-laughs alias bomb (9^9 strings) as its tactics."""
    laughs = ['lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = (shipped_dir() / f"{SEED}.yaml").read_text(encoding="utf-8")
    assert text.count("\ntactics:\n") == 1
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(laughs) + "\n" + text.replace("\ntactics:\n", "\ntactics: *l8\nunused:\n"),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["validate", "detect"])
def test_alias_bomb_in_a_rule_fails_fast_naming_the_file(data: Path, tmp_path: Path, command: str) -> None:
    bomb = _bomb(tmp_path / "rules")
    args = (["rules", "validate", str(bomb)] if command == "validate"
            else ["detect", str(data), "--rules", str(bomb.parent)])
    code, out, err = run_cli(args)
    assert code == 2 and out == ""
    if command == "validate":  # every rule is checked: the bomb is this rule's problem
        assert _flat(err) == _flat(f"FAIL bomb ({bomb}) error: its aliases expand to more than 100,000 nodes "
                                   f"(an alias bomb?); refused 1 rule, 0 ok, 1 with problems")
        return
    assert _flat(err) == _flat(f"error: {bomb}: its aliases expand to more than 100,000 nodes "
                               f"(an alias bomb?); refused")


def test_alias_bomb_in_a_rules_tests_fails_naming_the_file(tmp_path: Path) -> None:
    path = helpers.seed_rule(tmp_path / "rules", "plain")
    bomb = _bomb(tmp_path / "rules" / "tests", "plain.yaml")
    code, _, err = run_cli(["rules", "test", str(path)])
    assert code == 2
    assert _flat(f"error: {bomb}: its aliases expand to more than 100,000 nodes") in _flat(err)


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(yamltext.AliasBombError, match="refers to a node that contains it"):
        yamltext.load("tactics: &t [Persistence, *t]\n")


def test_ordinary_aliases_still_load() -> None:
    doc = yamltext.load("base: &b {a: 1}\nx: [*b, *b]\ny: &s [Persistence]\nz: *s\n")
    assert doc == {"base": {"a": 1}, "x": [{"a": 1}, {"a": 1}], "y": ["Persistence"], "z": ["Persistence"]}
    assert yamltext.expanded_size(yamltext._Loader("x: [[1, 2], 3]").get_single_node()) == 7


@pytest.mark.parametrize(("sql", "kind"), [
    ("WITH a AS (SELECT 1) SELECT * FROM a;", None),
    ("SELECT 'x; COPY y' AS \"update\" -- ; DELETE", None),
    ("COPY (SELECT 1) TO 'x'", "a statement beginning COPY"),
    ("SELECT 1; SELECT 2", "more than one statement"),
    ("SELECT 1 /* /* nested */ ; COPY */", "more than one statement"),
    ("WITH a AS (SELECT 1) DELETE FROM t", "a statement containing DELETE"),
    ("PRAGMA version", "a statement beginning PRAGMA"),
])
def test_only_one_select_passes(sql: str, kind: str | None) -> None:
    """The quick check (signed cache entries) and DuckDB's parser (new translations) agree."""
    con = duckdb.connect()
    assert sqlguard.statement_kind(con, sql, thorough=False) == kind
    assert (sqlguard.statement_kind(con, sql) is None) == (kind is None)
