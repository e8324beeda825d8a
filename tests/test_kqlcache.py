"""Translations are kept between runs, keyed by everything the SQL depends on, and a damaged
or unwritable cache only costs a translation."""

from __future__ import annotations

from pathlib import Path

import duckdb_kql
import pytest

from exhunt import kqlcache
from exhunt.engine import Session

KQL = "DeviceProcessEvents | where Timestamp > ago(1h) | where FileName =~ 'cmd.exe' | project Timestamp"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXHUNT_CACHE_DIR", str(tmp_path))
    return tmp_path / "kql"


def _translate() -> tuple[str, dict[str, object], bool]:
    with Session(in_memory=True) as s:
        tr = s.translate(KQL)
        return tr.sql, tr.params, tr.uses_clock


def test_second_run_reads_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _translate()
    assert len(list(cache.glob("*.json"))) == 1

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("translated again although the cache holds it")

    monkeypatch.setattr(duckdb_kql, "to_sql", refuse)
    assert _translate() == first
    assert first[2], "the clock parameter (a datetime) survives the round trip"


def test_damaged_entry_is_translated_again(cache: Path) -> None:
    first = _translate()
    for entry in cache.glob("*.json"):
        entry.write_text("{not json")
    assert _translate() == first


def test_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHUNT_CACHE_DIR", "off")
    assert kqlcache.directory() is None
    _translate()
    assert not list(tmp_path.rglob("*.json"))


def test_key_changes_with_the_tables_columns() -> None:
    schema = {"DeviceProcessEvents": ["Timestamp", "FileName"]}
    other = {"DeviceProcessEvents": ["Timestamp", "FileName", "NewColumn"]}
    now = kqlcache.datetime(1601, 1, 1)
    assert kqlcache.key(KQL, schema, now) != kqlcache.key(KQL, other, now)
    assert kqlcache.key(KQL, schema, now) == kqlcache.key(KQL, dict(schema), now)


def test_names_kept_here_match_the_translator() -> None:
    """The engine names the clock parameter and the cache reads the translator's version without
    importing duckdb_kql (its parser is costly to load); both must agree with the package."""
    from duckdb_kql.translate import CLOCK_SLOT

    from exhunt import engine

    assert engine.CLOCK_SLOT == CLOCK_SLOT
    assert kqlcache._translator_version() == duckdb_kql.__version__


def test_cache_keeps_a_bounded_number_of_entries(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kqlcache, "MAX_ENTRIES", 4)
    for i in range(6):
        kqlcache.put(f"entry{i}", f"SELECT {i}", {})
    kept = sorted(e.stem for e in cache.glob("*.json"))
    assert len(kept) <= 4 and "entry5" in kept
    assert kqlcache.get("entry5") == ("SELECT 5", {})
