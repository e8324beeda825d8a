"""Translations are kept between runs, keyed by everything the SQL depends on, and a damaged
or unwritable cache only costs a translation. An entry is SQL that will run, so only one this
user's exhunt wrote for exactly this input is used, from a folder nobody else can write."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import duckdb_kql
import pytest

from exhunt import kqlcache
from exhunt.backends.duckdb import DuckDBBackend
from exhunt.engine import Session

KQL = "DeviceProcessEvents | where Timestamp > ago(1h) | where FileName =~ 'cmd.exe' | project Timestamp"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXHUNT_CACHE_DIR", str(tmp_path))
    return tmp_path / "kql"


def _translate() -> tuple[str, dict[str, object], bool]:
    with Session(in_memory=True) as s:
        tr = DuckDBBackend(s).translate(KQL)
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


def test_entry_name_changes_with_the_tables_columns() -> None:
    schema = {"DeviceProcessEvents": ["Timestamp", "FileName"]}
    other = {"DeviceProcessEvents": ["Timestamp", "FileName", "NewColumn"]}
    now = kqlcache.datetime(1601, 1, 1)
    assert kqlcache.inputs(KQL, schema, now).name != kqlcache.inputs(KQL, other, now).name
    assert kqlcache.inputs(KQL, schema, now).name == kqlcache.inputs(KQL, dict(schema), now).name


def test_names_kept_here_match_the_translator() -> None:
    """The engine names the clock parameter and the cache reads the translator's version without
    importing duckdb_kql (its parser is costly to load); both must agree with the package."""
    from duckdb_kql.translate import CLOCK_SLOT

    from exhunt.backends import duckdb as engine

    assert engine.CLOCK_SLOT == CLOCK_SLOT
    assert kqlcache._translator_version() == f"{duckdb_kql.__version__}+{kqlcache.CHECKS}"


def _input(text: str) -> kqlcache.Input:
    return kqlcache.inputs(text, {"T": ["a"]}, kqlcache.datetime(1601, 1, 1))


def test_cache_keeps_a_bounded_number_of_entries(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kqlcache, "MAX_ENTRIES", 4)
    for i in range(6):
        kqlcache.put(_input(f"q{i}"), f"SELECT {i}", {})
    kept = {e.stem for e in cache.glob("*.json")}
    assert len(kept) <= 4 and _input("q5").name in kept
    assert kqlcache.get(_input("q5")) == ("SELECT 5", {})


# -- a cache entry is SQL that will run: only this user's own translation of this input --------

posix_only = pytest.mark.skipif(not hasattr(os, "getuid"), reason="owners and modes are POSIX")


def _entry(cache: Path) -> Path:
    (entry,) = cache.glob("*.json")
    return entry


def _count_translations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = duckdb_kql.to_sql

    def counting(kql: str, **kwargs: object) -> object:
        calls.append(kql)
        return real(kql, **kwargs)

    monkeypatch.setattr(duckdb_kql, "to_sql", counting)
    return calls


def test_replaced_entry_is_not_executed(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reported attack: an entry's SQL replaced by `COPY ... TO` a file of the attacker's choice."""
    first = _translate()
    target = tmp_path / "written-by-the-cache.txt"
    entry = _entry(cache)
    mac, body = entry.read_bytes().split(b"\n", 1)
    doc = json.loads(body)
    doc["sql"] = f"COPY (SELECT 1) TO '{target}'"
    entry.write_bytes(mac + b"\n" + json.dumps(doc).encode())
    calls = _count_translations(monkeypatch)
    with Session(in_memory=True) as session:
        s = DuckDBBackend(session)
        assert (s.translate(KQL).sql, s.translate(KQL).params) == first[:2]
        assert s.query(KQL, kqlcache.datetime(2026, 1, 1)).num_rows == 0
    assert calls == [KQL], "the entry was refused and the query translated afresh"
    assert not target.exists()


def test_entry_signed_with_another_key_is_refused(cache: Path, tmp_path: Path) -> None:
    """Someone without this user's key writes a well-formed, self-signed entry for the right input."""
    first = _translate()
    entry = _entry(cache)
    doc = json.loads(entry.read_bytes().split(b"\n", 1)[1])
    doc["sql"] = "SELECT 42 AS planted"
    body = json.dumps(doc).encode()
    entry.write_bytes(kqlcache._mac(b"the attacker's own key 32 bytes!", body) + b"\n" + body)
    assert _translate() == first


def test_entry_for_another_input_is_refused(cache: Path) -> None:
    """A correctly signed entry is still only used for the very input it translated."""
    mine, other = _input("T | take 1"), _input("T | take 2")
    kqlcache.put(other, "SELECT 2", {})
    (cache / f"{other.name}.json").rename(cache / f"{mine.name}.json")
    assert kqlcache.get(mine) is None
    kqlcache.put(mine, "SELECT 1", {})
    assert kqlcache.get(mine) == ("SELECT 1", {})


@posix_only
def test_cache_folder_and_key_are_private(cache: Path) -> None:
    _translate()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE((cache / kqlcache.KEY_FILE).stat().st_mode) == 0o600


@posix_only
@pytest.mark.parametrize(("where", "mode"), [("kql", 0o777), ("kql", 0o775), ("base", 0o777), ("key", 0o644)],
                         ids=["kql-0777", "kql-0775", "base-0777", "key-0644"])
def test_cache_writable_or_readable_by_others_is_ignored_with_one_warning(
        cache: Path, monkeypatch: pytest.MonkeyPatch, where: str, mode: int) -> None:
    _translate()
    path = {"kql": cache, "base": cache.parent, "key": cache / kqlcache.KEY_FILE}[where]
    path.chmod(mode)
    kqlcache._secrets.clear()
    warned: list[str] = []
    monkeypatch.setattr(kqlcache, "warn", warned.append)
    calls = _count_translations(monkeypatch)
    _translate()
    _translate()
    assert calls == [KQL, KQL], "not read from the cache"
    assert len(warned) == 1
    what = "readable or writable" if where == "key" else "writable"
    assert f"ignored: it is {what} by group or others (mode {mode:04o})" in warned[0]
    assert str(path) in warned[0]


@posix_only
def test_cache_owned_by_another_user_is_ignored(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _translate()
    owner = cache.stat().st_uid
    monkeypatch.setattr(kqlcache.os, "getuid", lambda: owner + 1)
    warned: list[str] = []
    monkeypatch.setattr(kqlcache, "warn", warned.append)
    calls = _count_translations(monkeypatch)
    _translate()
    assert calls == [KQL]
    assert warned == [f"translation cache {str(cache.parent)!r} ignored: it is owned by another user "
                      f"(uid {owner}); KQL is translated afresh every run (fix its owner or permissions, "
                      f"or set EXHUNT_CACHE_DIR)"]


def test_default_location_is_the_platform_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    monkeypatch.delenv("EXHUNT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert kqlcache.directory() == Path(platformdirs.user_cache_dir("exhunt", appauthor=False)) / "kql"
    if sys.platform.startswith("linux"):
        assert kqlcache.directory() == tmp_path / "exhunt" / "kql"
