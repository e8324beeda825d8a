"""exhunt.audit.collection: what PATH is, Windows paths onto it, Exchange installs found."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from audit_layout import HUB_DEFAULT, V15, V15_REL, builtin_agent, install, placeholder
from exhunt.audit import collection
from exhunt.audit.collection import find_assembly, find_installs, normalize, open_collection
from exhunt.errors import UsageError

ROOT = V15


@pytest.mark.parametrize(("text", "path", "problem"), [
    (r"C:\Program Files\Vendor\x\..\a.dll", r"C:\Program Files\Vendor\a.dll", ""),
    ("%ExchangeInstallPath%TransportRoles\\agents\\a.dll", ROOT + r"\TransportRoles\agents\a.dll", ""),
    ("$env:ExchangeInstallPath\\Bin\\a.dll", ROOT + r"\Bin\a.dll", ""),
    (r"TransportRoles\agents\Rel\rel.dll", ROOT + r"\TransportRoles\agents\Rel\rel.dll", ""),
    (r"\Temp\x.dll", r"C:\Temp\x.dll", ""),
    (r"e:temp\a.dll", r"E:\temp\a.dll", ""),
    ("\\\\?\\C:\\Temp\\a.dll", r"C:\Temp\a.dll", ""),
    (r"C:\..\..\Windows\x.dll", r"C:\Windows\x.dll", ""),
    ("C:/Program Files/Vendor/a.dll", r"C:\Program Files\Vendor\a.dll", ""),
    ('"%ProgramFiles%\\Vendor\\a.dll"', r"C:\Program Files\Vendor\a.dll", ""),
    (r"\\fileserver\share\a.dll", "", "a UNC path (a network share)"),
    ("\\\\?\\UNC\\fileserver\\share\\a.dll", "", "a UNC path (a network share)"),
    (r"%NOSUCH%\a.dll", "", "cannot read the path: unknown variable %NOSUCH%"),
    ("", "", "the assembly path is empty"),
])
def test_normalize(text: str, path: str, problem: str) -> None:
    got = normalize(text, ROOT)
    assert (got.path, got.problem) == (path, problem)


def test_relative_without_a_root_is_not_guessed() -> None:
    got = normalize(r"agents\a.dll")
    assert got.path == "" and got.relative and got.problem == "a relative path and no known Exchange install"


@pytest.mark.parametrize(("name", "letter"), [("C", "C"), ("e", "E"), ("C:", "C"), ("C%3A", "C"), ("d%3a", "D"),
                                             ("%5C%5C.%5CC%3A", "C"), ("CC", None), ("C%3B", None)])
def test_drive_letter(name: str, letter: str | None) -> None:
    assert collection.drive_letter(name) == letter


def _kape(tmp_path: Path, host: str = "EXCH01", drive: str = "C") -> Path:
    top = tmp_path / host
    install(top / drive, [builtin_agent(n) for n in HUB_DEFAULT])
    return top


def test_kape_layout(tmp_path: Path) -> None:
    top = _kape(tmp_path)
    coll = open_collection(top)
    assert (coll.layout, sorted(coll.drives), coll.name) == ("kape", ["C"], "EXCH01")
    (inst,) = find_installs(coll)
    assert (inst.root, inst.version, inst.edge) == (V15, "V15", False)
    assert sorted((f.role, f.of, f.local.name) for f in inst.lists) == [
        ("live", "agents.config", "agents.config"), ("live", "fetagents.config", "fetagents.config"),
        ("template", "agents.config", "agents.config.template")]
    live = next(f for f in inst.lists if f.local.name == "agents.config")
    assert live.windows == V15 + r"\TransportRoles\Shared\agents.config"


def test_kape_destination_holding_the_host_folder(tmp_path: Path) -> None:
    _kape(tmp_path / "cases", host="EXCH07")
    coll = open_collection(tmp_path / "cases")
    assert (coll.layout, coll.name, coll.root) == ("kape", "EXCH07", tmp_path / "cases")
    assert coll.shown(coll.drives["C"][0]) == "EXCH07/C"


def test_several_collections_in_one_folder_are_refused(tmp_path: Path) -> None:
    _kape(tmp_path / "cases", host="EXCH01")
    _kape(tmp_path / "cases", host="EXCH02")
    with pytest.raises(UsageError, match=r"holds several collections \(EXCH01, EXCH02\)"):
        open_collection(tmp_path / "cases")


def test_escaped_drive_folder(tmp_path: Path) -> None:
    top = _kape(tmp_path, drive="C%3A")
    coll = open_collection(top)
    assert sorted(coll.drives) == ["C"]
    assert [i.root for i in find_installs(coll)] == [V15]


def test_velociraptor_layout(tmp_path: Path) -> None:
    top = tmp_path / "Collection-EXCH02.contoso.local-2026-11-20T10_22_31Z"
    uploads = top / "uploads"
    # The live list collected by the auto accessor, a vendor DLL only by the raw NTFS one
    # (escaped names, as Velociraptor stores them).
    install(uploads / "auto" / "C%3A", [builtin_agent(n) for n in HUB_DEFAULT] + [
        {"name": "Archive", "factory": "Contoso.F", "path": r"C:\Program Files (x86)\Contoso\a.dll"}])
    placeholder(uploads / "ntfs" / "%5C%5C.%5CC%3A" / "Program Files %28x86%29" / "Contoso" / "a.dll")
    (top / "uploads.json").write_text("[]")
    coll = open_collection(top)
    assert (coll.layout, coll.name) == ("velociraptor", "EXCH02.contoso.local")
    assert [p.name for p in coll.drives["C"]] == ["C%3A", "%5C%5C.%5CC%3A"]
    (inst,) = find_installs(coll)
    assert inst.root == V15
    found = find_assembly(coll, r"C:\Program Files (x86)\Contoso\a.dll", V15)
    assert found.local == uploads / "ntfs" / "%5C%5C.%5CC%3A" / "Program Files %28x86%29" / "Contoso" / "a.dll"
    assert coll.windows_of(found.local) == r"C:\Program Files (x86)\Contoso\a.dll"


def test_single_drive_root(tmp_path: Path) -> None:
    mount = tmp_path / "image" / "E"
    install(mount, [builtin_agent(n, root=r"E:\Exchange 2016") for n in HUB_DEFAULT], root=r"E:\Exchange 2016")
    (mount / "Program Files").mkdir()
    coll = open_collection(mount)
    assert (coll.layout, sorted(coll.drives)) == ("single-drive", ["E"])
    assert [i.root for i in find_installs(coll)] == [r"E:\Exchange 2016"]


def test_non_default_root_on_e_and_a_2007_and_v14_install(tmp_path: Path) -> None:
    top = tmp_path / "EXCH03"
    install(top / "E", [builtin_agent(n, r"E:\Apps\Microsoft\Exchange\V15") for n in HUB_DEFAULT],
            root=r"E:\Apps\Microsoft\Exchange\V15")
    install(top / "C", [builtin_agent("Transport Rule Agent", r"C:\Program Files\Microsoft\Exchange Server")],
            root=r"C:\Program Files\Microsoft\Exchange Server")
    install(top / "D", [builtin_agent("Transport Rule Agent", r"D:\Program Files\Microsoft\Exchange Server\V14")],
            root=r"D:\Program Files\Microsoft\Exchange Server\V14")
    found = {i.root: i.version for i in find_installs(open_collection(top))}
    assert found == {r"C:\Program Files\Microsoft\Exchange Server": "2007",
                     r"D:\Program Files\Microsoft\Exchange Server\V14": "V14",
                     r"E:\Apps\Microsoft\Exchange\V15": "V15"}


def test_install_found_by_exsetup_alone(tmp_path: Path) -> None:
    bin_dir = tmp_path / "EXCH04" / "D" / "Exch" / "Bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ExSetup.exe").write_bytes(b"MZ")
    insts = find_installs(open_collection(tmp_path / "EXCH04"))
    assert [(i.root, i.lists) for i in insts] == [(r"D:\Exch", [])]


def test_case_insensitive_lookup(tmp_path: Path) -> None:
    top = tmp_path / "EXCH05"
    lower = top / "C" / "program files" / "microsoft" / "exchange server" / "v15"
    (lower / "transportroles" / "shared").mkdir(parents=True)
    (lower / "transportroles" / "shared" / "AGENTS.CONFIG").write_text("<configuration/>")
    placeholder(lower / "transportroles" / "agents" / "hygiene" / "Microsoft.Exchange.Transport.Agent.Hygiene.DLL")
    coll = open_collection(top)
    (inst,) = find_installs(coll)
    assert inst.root == r"C:\program files\microsoft\exchange server\v15"
    assert [(f.role, f.local.name) for f in inst.lists] == [("live", "AGENTS.CONFIG")]
    hit = find_assembly(coll, V15 + r"\TransportRoles\agents\Hygiene\Microsoft.Exchange.Transport.Agent.Hygiene.dll",
                        V15)
    assert hit.local is not None and hit.local.name == "Microsoft.Exchange.Transport.Agent.Hygiene.DLL"


def test_backup_copies_are_found(tmp_path: Path) -> None:
    top = _kape(tmp_path)
    shared = top / "C" / V15_REL / "TransportRoles" / "Shared"
    for name in ("agents.config.old", "agents.config.20260101", "agents.bak", "fetagents.config.bak"):
        (shared / name).write_text("<configuration/>")
    (inst,) = find_installs(open_collection(top))
    roles = sorted((f.local.name, f.role, f.of) for f in inst.lists if f.role != "live")
    assert roles == [("agents.bak", "backup", "agents.config"), ("agents.config.20260101", "backup", "agents.config"),
                     ("agents.config.old", "old", "agents.config"), ("agents.config.template", "template",
                                                                        "agents.config"),
                     ("fetagents.config.bak", "backup", "fetagents.config")]


def test_drive_option_maps_a_drive(tmp_path: Path) -> None:
    top = _kape(tmp_path)
    elsewhere = tmp_path / "second-disk"
    placeholder(elsewhere / "Vendor" / "v.dll")
    coll = open_collection(top, collection.parse_drive_options([f"D={elsewhere}"]))
    hit = find_assembly(coll, r"D:\Vendor\v.dll", V15)
    assert hit.local == elsewhere / "Vendor" / "v.dll"
    assert coll.find(r"F:\x.dll").problem == "drive F: is not in the collection"


@pytest.mark.parametrize("option", ["D", "DD=/tmp", "=/tmp", "D=/no/such/folder"])
def test_bad_drive_option(option: str) -> None:
    with pytest.raises(UsageError, match="--drive"):
        collection.parse_drive_options([option])


def test_a_link_out_of_the_collection_is_not_followed(tmp_path: Path) -> None:
    top = _kape(tmp_path)
    outside = tmp_path / "outside.dll"
    placeholder(outside)
    (top / "C" / "Temp").mkdir()
    os.symlink(outside, top / "C" / "Temp" / "evil.dll")
    os.symlink(tmp_path, top / "C" / "Linked")
    coll = open_collection(top)
    hit = coll.find(r"C:\Temp\evil.dll")
    assert hit.local is None and hit.problem == "C/Temp/evil.dll is a link leading out of the collection: not followed"
    assert coll.find(r"C:\Linked\outside.dll").local is None


def test_the_install_search_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "EXCH06"
    for i in range(30):
        (top / "D" / f"dir{i:02}" / "a" / "b").mkdir(parents=True)
    monkeypatch.setattr(collection, "MAX_WALK_DIRS", 25)
    started = time.perf_counter()
    coll = open_collection(top)
    assert find_installs(coll) == []
    assert time.perf_counter() - started < 2
    assert coll.skipped == [("D:", "search for Exchange installs stopped after 25 folders")]


def test_a_deep_tree_is_not_searched_past_the_depth(tmp_path: Path) -> None:
    install(tmp_path / "EXCH08" / "F", [], root=r"F:\a\b\c\d\Exchange")  # 5 levels down: found
    install(tmp_path / "EXCH08" / "G", [], root=r"G:\a\b\c\d\e\Exchange")  # 6 levels down: too deep
    roots = [i.root for i in find_installs(open_collection(tmp_path / "EXCH08"))]
    assert roots == [r"F:\a\b\c\d\Exchange"]


def test_live_mode_reads_the_drives_as_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the server itself every drive is read in place (here one folder stands for C:)."""
    install(tmp_path / "c-root", [builtin_agent(n) for n in HUB_DEFAULT])
    monkeypatch.setattr(collection, "_live_drives", lambda: {"C": [tmp_path / "c-root"]})
    monkeypatch.setenv("COMPUTERNAME", "EXCH10")
    coll = open_collection(tmp_path / "c-root", live=True)
    assert (coll.layout, coll.name) == ("live", "EXCH10")
    assert [i.root for i in find_installs(coll)] == [V15]
