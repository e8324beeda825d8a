"""The KQL corpus (tests/kql_corpus/*.yaml): each query, on its own rows, returns exactly the
rows written beside it (or the error it must get), through the path `exhunt query` takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exhunt import alerts as alerting
from exhunt.errors import ExhuntError
from exhunt.hunt import HuntOptions, open_local

CORPUS = Path(__file__).parent / "kql_corpus"
DEFAULT_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = {"title", "features", "now", "tables", "files", "simulate", "query", "expect", "error"}


def _cases() -> list[Path]:
    return sorted(CORPUS.glob("*.yaml"))


def _json(value: Any) -> Any:
    """A cell as JSON sees it (datetimes as ISO text, dynamic values parsed)."""
    value = _iso(value)
    if isinstance(value, str | int | float | bool | list | dict) or value is None:
        return json.loads(json.dumps(value, default=str))
    return json.loads(json.dumps(alerting.jsonable(value), default=str))


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _write_inputs(case: dict[str, Any], out: Path) -> list[Path]:
    paths: list[Path] = []
    for table, rows in (case.get("tables") or {}).items():
        path = out / f"{table}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({"Type": table, **_iso(row)}) + "\n")
        paths.append(path)
    for name, text in (case.get("files") or {}).items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    sim = case.get("simulate")
    if sim:
        from exhunt.simulate.events import generate
        from exhunt.simulate.formats import writers
        from exhunt.simulate.scenario import resolve

        simulation = generate([sc for ref in sim["scenarios"] for sc in resolve(ref)], seed=sim.get("seed", 1))
        folder = out / "simulated"
        folder.mkdir()
        paths += writers()[sim.get("format", "mde-api")].write(simulation, folder)
    return paths


def _normal(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_corpus_query(path: Path, tmp_path: Path) -> None:
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= KEYS, f"{path.name}: unknown keys {sorted(set(case) - KEYS)}"
    assert case.get("features"), f"{path.name}: say which features it exercises"
    assert ("expect" in case) != ("error" in case), f"{path.name}: give expect or error"
    now = case.get("now") or DEFAULT_NOW
    if isinstance(now, str):
        now = datetime.fromisoformat(now.replace("Z", "+00:00"))
    paths = _write_inputs(case, tmp_path)
    query = case["query"]
    if "error" in case:
        with pytest.raises(ExhuntError) as caught:
            backend, _ = open_local(paths, [query], HuntOptions(jobs=1))
            with backend:
                backend.query(query, now=now)
        message = str(caught.value)
        assert case["error"] in message, message
        for raw in ("Catalog Error", "Binder Error", "Parser Error", "Conversion Error", "duckdb", "Traceback"):
            assert raw not in message, message
        return
    backend, _ = open_local(paths, [query], HuntOptions(jobs=1))
    with backend:
        result = backend.query(query, now=now)
    columns = [c for c in result.column_names if not c.startswith("_")]
    rows = [{c: _json(r[c]) for c in columns} for r in result.to_pylist()]
    expect = case["expect"]
    if "columns" in expect:
        assert columns == expect["columns"]
    wanted = [_json(_iso(r)) for r in expect.get("rows") or []]
    if expect.get("ordered"):
        assert [json.dumps(r, sort_keys=True) for r in rows] == [json.dumps(r, sort_keys=True) for r in wanted]
    else:
        assert _normal(rows) == _normal(wanted)


def test_corpus_is_not_empty() -> None:
    assert _cases(), "the corpus holds no query"
