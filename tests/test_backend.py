"""The Backend protocol is all a hunt needs: replay, alerts and detect given an engine reduced to
the protocol give the alerts of the local run; no SQL and no DuckDB outside the loading side and
the DuckDB backend; a CSV file hunted in place is read for its lines only after every rule ran."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exhunt import hunt as hunting
from exhunt.backends import base
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session
from exhunt.rule import load_rules
from exhunt.sources import mde_csv
from exhunt.sources.base import FileReport, RowBuffer
from helpers import FILE_ROWS, HOST, PROCESS_ROWS, write_csv

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "demo"
SRC = REPO / "src" / "exhunt"
#: The members of the protocol (what a backend has to offer).
PROTOCOL = {n for n in vars(base.Backend) if not n.startswith("_")} | {"name"}


class OnlyProtocol:
    """An engine seen through the protocol only: any other attribute is missing, as it would
    be on a Kusto or Log Analytics backend. Records the members used."""

    def __init__(self, inner: Any, used: set[str]) -> None:
        self._inner = inner
        self._used = used

    def __getattr__(self, name: str) -> Any:
        if name not in PROTOCOL:
            raise AttributeError(f"{name!r} is not part of the Backend protocol")
        self._used.add(name)
        if name == "worker":
            return lambda: OnlyProtocol(self._inner.worker(), self._used)
        return getattr(self._inner, name)


def _alerts(result: hunting.HuntResult) -> list[tuple[Any, ...]]:
    return [tuple(sorted((k, str(v)) for k, v in a.items())) for a in result.alerts]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_hunt_on_a_backend_reduced_to_the_protocol_gives_the_local_alerts(jobs: int) -> None:
    rules = load_rules(None)
    local = hunting.hunt([DEMO], rules, hunting.HuntOptions(jobs=1))
    used: set[str] = set()
    backend, _ = hunting.open_local([DEMO], [r.query for r in rules], hunting.HuntOptions(jobs=1), lines_later=True)
    with backend:
        remote = hunting.hunt([], rules, hunting.HuntOptions(jobs=jobs), backend=OnlyProtocol(backend, used))
    assert len(local.alerts) > 10 and remote.reports == [] and local.reports
    assert _alerts(remote) == _alerts(local)
    assert [(r.rule.slug, r.runs, r.note, r.error) for r in remote.runs] == \
        [(r.rule.slug, r.runs, r.note, r.error) for r in local.runs]
    assert {"tables", "slice_ends", "sources", "seal"} <= used
    assert ("worker" in used) == (jobs > 1)


@pytest.fixture
def csv_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Defender CSV export DuckDB parses and hunts in place (its lines found only on request)."""
    monkeypatch.setattr(mde_csv, "DUCKDB_MIN_BYTES", 0)
    write_csv(tmp_path / "DeviceFileEvents.csv", "DeviceFileEvents", FILE_ROWS)
    write_csv(tmp_path / "DeviceProcessEvents.csv", "DeviceProcessEvents", PROCESS_ROWS)
    return tmp_path


def test_lines_of_a_csv_hunted_in_place_are_read_after_every_rule(csv_in_place: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rules alert on rows of the same files: the files are read again for their lines once
    every rule has run (a `Later` each), and the alerts name the exact lines."""
    log: list[str] = []
    lines_of, execute = Session.lines_of, DuckDBBackend._execute

    def spy_lines(self: Session, display: str, keys: Any) -> dict[int, str]:
        log.append("lines " + Path(display).name)
        return lines_of(self, display, keys)

    def spy_query(self: DuckDBBackend, sql: str, params: dict[str, Any]) -> Any:
        log.append("query")
        return execute(self, sql, params)

    monkeypatch.setattr(Session, "lines_of", spy_lines)
    monkeypatch.setattr(DuckDBBackend, "_execute", spy_query)
    rules = load_rules(["exchange-transport-agent-seed", "exchange-agent-dll-placement"])
    found = hunting.hunt([csv_in_place], rules, hunting.HuntOptions(jobs=1))
    assert {a["rule_name"] for a in found.alerts} == {r.name for r in rules}
    first = log.index(next(e for e in log if e.startswith("lines")))
    assert "query" in log[:first] and "query" not in log[first:]
    assert sorted(log[first:]) == ["lines DeviceFileEvents.csv", "lines DeviceProcessEvents.csv"]  # once each
    stored, _ = hunting.open_local([csv_in_place], [r.query for r in rules], hunting.HuntOptions(jobs=1))
    with stored:  # the reference: every row's line stored while loading
        want = hunting.hunt([], rules, hunting.HuntOptions(jobs=1), backend=stored)
    assert _alerts(found) == _alerts(want)
    assert {a["source_record"] for a in found.alerts} == {"line 2", "line 3"}


def test_later_sources_are_found_together_at_the_first_get() -> None:
    settled: list[int] = []
    pending: list[base.Later] = []

    def settle() -> None:
        settled.append(len(pending))
        for i, later in enumerate(pending):
            later.source, later.settled = (f"f{i}", f"line {i}"), True
        pending.clear()

    pending.extend([base.Later(settle, ("f0", "")), base.Later(settle), base.Later(settle, ("x", ""))])
    first, second, third = pending
    assert (first.source, second.source) == (("f0", ""), ("", ""))
    assert second.get() == ("f1", "line 1") and settled == [3]
    assert (first.get(), third.get()) == (("f0", "line 0"), ("f2", "line 2")) and settled == [3]


def _loaded(rows: list[dict[str, Any]]) -> DuckDBBackend:
    session = Session(in_memory=True)
    buf, report = RowBuffer(), FileReport("mem")
    for i, row in enumerate(rows, 1):
        buf.add("DeviceProcessEvents", row, f"record {i}")
    for batch in buf.drain():
        session.insert(batch, report, "mem")
    return DuckDBBackend(session, own=True)


def test_duckdb_windows_show_only_their_rows_and_no_window_shows_all() -> None:
    t0 = datetime(2026, 3, 1, 10)
    rows = [{"Timestamp": (t0 + timedelta(hours=h)).isoformat() + "Z", "DeviceName": HOST, "FileName": f"p{h}.exe"}
            for h in range(4)]
    count = "DeviceProcessEvents | count"
    with _loaded(rows) as b:
        assert b.query(count, window=(t0, t0 + timedelta(hours=2))).to_pylist() == [{"Count": 2}]
        assert b.query(count).to_pylist() == [{"Count": 4}]
        assert b.query(count, window=(t0 - timedelta(hours=1), t0)).to_pylist() == [{"Count": 1}]
        windows = [(t0 + timedelta(hours=h - 1), t0 + timedelta(hours=h)) for h in range(4)]
        together = b.query_windows("DeviceProcessEvents | project FileName", windows)
        assert together is not None and together.column_names == [base.SLICE_END, "FileName"]
        assert together.to_pylist() == [{base.SLICE_END: end, "FileName": f"p{h}.exe"}
                                        for h, (_, end) in enumerate(windows)]
        assert b.time_span(["DeviceProcessEvents", "DeviceFileEvents"]) == (t0, t0 + timedelta(hours=3))
        assert b.slice_ends(["DeviceProcessEvents"], timedelta(hours=2)) == \
            [datetime(2026, 3, 1, 10), datetime(2026, 3, 1, 12), datetime(2026, 3, 1, 14)]


def _imports(tree: ast.Module) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _strings(tree: ast.Module) -> list[str]:
    """String constants that are not docstrings."""
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("module", ["replay", "alerts", "ruletest", "ingest", "hunt", "cli"])
def test_no_sql_and_no_duckdb_outside_the_engine(module: str) -> None:
    tree = ast.parse((SRC / f"{module}.py").read_text(encoding="utf-8"))
    imports = _imports(tree)
    assert not {i for i in imports if i == "duckdb" or i.startswith("duckdb.")}
    if module in ("replay", "alerts", "cli"):  # the engine only through Backend (and hunt's loading)
        assert not {i for i in imports if i.startswith(("exhunt.engine", "exhunt.backends.duckdb"))}
    sql = [s for s in _strings(tree) if any(w in s for w in ("SELECT ", "COPY ", "INSERT ", "CREATE ", " FROM "))]
    assert sql == []
