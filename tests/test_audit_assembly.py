"""exhunt audit's facts about one agent DLL, on real DLLs built by tests/agent_build.py (mono-mcs,
osslsigncode): factory and bases, P/Invoke, signatures, hashes, YARA, and hostile bytes."""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agent_build as ab
from exhunt.audit import known_hashes, readbound
from exhunt.audit.assembly import AGENT_FACTORIES, AssemblyFacts, Trust, assembly_facts, compile_yara, pe_signature
from exhunt.audit.authenticode import MICROSOFT_ROOTS, security_directory
from exhunt.audit.clrmeta import read_clr
from exhunt.audit.yarascan import RuleSet, scan
from exhunt.errors import UsageError

ROUTING_BASE = "Microsoft.Exchange.Data.Transport.Routing.RoutingAgentFactory"
SMTP_BASE = "Microsoft.Exchange.Data.Transport.Smtp.SmtpReceiveAgentFactory"
NOT_SIGNED = "the file is not signed"


@pytest.fixture(scope="module")
def shipped_rules() -> RuleSet:
    return compile_yara([])


@pytest.fixture(scope="module")
def test_trust(agent_dlls: ab.Built) -> Trust:
    """signify's store plus the test CA: the verifier's trust for the 'valid' case."""
    return Trust(extra_roots=(agent_dlls.test_ca_pem,))


def digests(path: Path) -> tuple[str, str, str]:
    data = path.read_bytes()
    return (
        hashlib.sha256(data).hexdigest(),
        hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
    )


# --- .NET metadata ------------------------------------------------------------------------------


def test_routing_agent_facts(agent_dlls: ab.Built, shipped_rules: RuleSet) -> None:
    path = agent_dlls.routing
    facts = assembly_facts(path, ab.ROUTING_FACTORY, shipped_rules)
    sha256, sha1, md5 = digests(path)
    assert facts == AssemblyFacts(
        path=str(path),
        exists=True,
        size=path.stat().st_size,
        sha256=sha256,
        sha1=sha1,
        md5=md5,
        is_pe=True,
        is_dotnet=True,
        machine="x86",
        assembly_name="Contoso.Mail.Archive",
        factory_found=True,
        factory_bases=["Contoso.Mail.Archive.ArchiveFactoryBase", ROUTING_BASE],
        derives_from_agent_factory=True,
        pinvokes=[],
        signature=facts.signature,
        known_hash="",
        yara=[],
        errors=[],
        notes=[],
    )
    assert facts.signature.present is False
    assert facts.signature.reason == NOT_SIGNED


def test_delivery_agent_generic_base(agent_dlls: ab.Built) -> None:
    facts = assembly_facts(agent_dlls.delivery, ab.DELIVERY_FACTORY)
    assert facts.factory_found
    assert facts.factory_bases == ["Microsoft.Exchange.Data.Transport.Delivery.DeliveryAgentFactory`1"]
    assert facts.derives_from_agent_factory
    assert facts.errors == []


def test_factory_deriving_from_something_else(agent_dlls: ab.Built) -> None:
    facts = assembly_facts(agent_dlls.other_base, ab.OTHER_FACTORY)
    assert facts.factory_found
    assert facts.factory_bases == ["Contoso.Mail.Notes.NotesBase", "System.Object"]
    assert not facts.derives_from_agent_factory
    assert facts.bases_unresolved == ""


def test_own_class_under_exchange_factory_name_does_not_count(agent_dlls: ab.Built) -> None:
    facts = assembly_facts(agent_dlls.impostor_base, ab.IMPOSTOR_FACTORY)
    assert facts.factory_bases == [ROUTING_BASE, "System.Object"]
    assert not facts.derives_from_agent_factory
    assert facts.notes == [f"its base {ROUTING_BASE} is defined in this assembly itself, not taken from Exchange"]


def test_base_in_another_assembly_is_named_not_guessed(agent_dlls: ab.Built) -> None:
    facts = assembly_facts(agent_dlls.external_base, ab.EXTERNAL_FACTORY)
    assert facts.factory_bases == ["Contoso.Mail.Archive.ArchiveFactoryBase"]
    assert not facts.derives_from_agent_factory
    assert facts.bases_unresolved == "Contoso.Mail.Archive.ArchiveFactoryBase"
    assert facts.notes == [
        "its base Contoso.Mail.Archive.ArchiveFactoryBase is defined in Contoso.Mail.Archive: the chain goes on there"
    ]


def test_dll_without_the_named_factory(agent_dlls: ab.Built) -> None:
    facts = assembly_facts(agent_dlls.no_factory, "Contoso.Mail.Empty.EmptyAgentFactory")
    assert facts.is_dotnet
    assert facts.assembly_name == "Contoso.Mail.Empty"
    assert not facts.factory_found
    assert facts.factory_bases == []
    assert not facts.derives_from_agent_factory


def test_factory_names_are_case_sensitive_and_assembly_qualified_names_accepted(agent_dlls: ab.Built) -> None:
    lower = assembly_facts(agent_dlls.routing, ab.ROUTING_FACTORY.lower())
    assert not lower.factory_found
    lowered = ab.ROUTING_FACTORY.lower()
    assert lower.notes == [f"no type {lowered} (names are case-sensitive), but {ab.ROUTING_FACTORY} exists"]
    qualified = assembly_facts(agent_dlls.routing, f" {ab.ROUTING_FACTORY}, Contoso.Mail.Archive, Version=1.0.0.0")
    assert qualified.factory_found and qualified.derives_from_agent_factory


def test_lightneuron_like_agent(agent_dlls: ab.Built, shipped_rules: RuleSet) -> None:
    facts = assembly_facts(agent_dlls.lightneuron_like, ab.LIGHTNEURON_FACTORY, shipped_rules)
    assert facts.assembly_name == "Microsoft.Exchange.Security.Interop"
    assert facts.factory_bases == [SMTP_BASE]
    assert facts.derives_from_agent_factory
    assert facts.pinvokes == [("exdbdata.dll", "MessageValidator")]
    assert sorted(facts.yara) == ["exhunt_lightneuron_agent_names", "exhunt_lightneuron_companion_import"]


def test_native_dll(agent_dlls: ab.Built, shipped_rules: RuleSet) -> None:
    facts = assembly_facts(agent_dlls.native, "Any.Factory", shipped_rules)
    assert (facts.is_pe, facts.is_dotnet, facts.machine) == (True, False, "x64")
    assert not facts.factory_found and facts.pinvokes == []
    assert facts.yara == ["exhunt_lightneuron_companion_config_keys"]
    assert facts.errors == []
    assert facts.signature.reason == NOT_SIGNED


def test_not_a_pe_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"MZ but nothing more")
    facts = assembly_facts(path, "X.Factory")
    assert (facts.exists, facts.is_pe, facts.is_dotnet) == (True, False, False)
    assert facts.errors == ["starts like a Windows program (MZ) but is not a valid PE file"]
    assert facts.signature.reason == "not a PE file"


def test_missing_file(tmp_path: Path) -> None:
    facts = assembly_facts(tmp_path / "gone.dll", "X.Factory")
    assert (facts.exists, facts.size, facts.sha256, facts.errors) == (False, 0, "", [])


def test_agent_factories_are_exchanges() -> None:
    assert {
        SMTP_BASE,
        ROUTING_BASE,
        "Microsoft.Exchange.Data.Transport.Delivery.DeliveryAgentFactory",
    } == AGENT_FACTORIES


# --- signatures ---------------------------------------------------------------------------------


def test_signed_by_trusted_vendor(agent_dlls: ab.Built, test_trust: Trust) -> None:
    sig = assembly_facts(agent_dlls.signed_valid, ab.ROUTING_FACTORY, trust=test_trust).signature
    assert (sig.present, sig.valid, sig.trusted, sig.microsoft) == (True, True, True, False)
    assert (sig.signer, sig.signer_org) == (ab.VENDOR_SIGNER, ab.VENDOR_ORG)
    assert (sig.issuer, sig.root) == (ab.TEST_CA, ab.TEST_CA)
    assert sig.thumbprint == agent_dlls.vendor_cert_sha1
    assert sig.reason == ""
    assert pe_signature(agent_dlls.signed_valid, trust=test_trust) == sig


def test_signed_chain_untrusted_without_the_ca(agent_dlls: ab.Built) -> None:
    sig = pe_signature(agent_dlls.signed_valid)
    assert (sig.present, sig.valid, sig.trusted, sig.microsoft) == (True, True, False, False)
    assert sig.signer == ab.VENDOR_SIGNER
    assert sig.reason == "the certificate chain does not end at a root trusted for code signing"


def test_changed_after_signing(agent_dlls: ab.Built, test_trust: Trust) -> None:
    sig = pe_signature(agent_dlls.signed_invalid, trust=test_trust)
    assert (sig.present, sig.valid, sig.trusted, sig.microsoft) == (True, False, False, False)
    assert sig.signer == ab.VENDOR_SIGNER
    assert sig.reason == "the file was changed after it was signed: its contents do not match the signature"


def test_self_signed_microsoft_name_is_not_microsoft(agent_dlls: ab.Built, test_trust: Trust) -> None:
    sig = pe_signature(agent_dlls.signed_untrusted_ms, trust=test_trust)
    assert (sig.present, sig.valid, sig.trusted, sig.microsoft) == (True, True, False, False)
    assert (sig.signer, sig.signer_org, sig.issuer) == (ab.MICROSOFT, ab.MICROSOFT, ab.MICROSOFT)
    assert sig.reason == (
        "the certificate chain does not end at a root trusted for code signing (the signing certificate is "
        "self-signed); it names Microsoft Corporation but is not issued by a Microsoft root"
    )


def test_microsoft_needs_a_microsoft_root_by_fingerprint(agent_dlls: ab.Built) -> None:
    path = agent_dlls.signed_standin_ms
    trusted_root = Trust(extra_roots=(agent_dlls.standin_ms_root_pem,))
    sig = pe_signature(path, trust=trusted_root)
    assert (sig.valid, sig.trusted, sig.microsoft, sig.signer) == (True, True, False, ab.MICROSOFT)
    as_microsoft = Trust(
        extra_roots=(agent_dlls.standin_ms_root_pem,), microsoft_roots=frozenset({agent_dlls.standin_ms_root_sha1})
    )
    sig = pe_signature(path, trust=as_microsoft)
    assert (sig.valid, sig.trusted, sig.microsoft, sig.root) == (True, True, True, ab.STANDIN_MS_ROOT)
    assert sig.reason == ""
    # the vendor's certificate under a root counted as Microsoft's is still not Microsoft
    ca_sha1 = _sha1_of_pem(agent_dlls.test_ca_pem)
    vendor = Trust(extra_roots=(agent_dlls.test_ca_pem,), microsoft_roots=frozenset({ca_sha1}))
    sig = pe_signature(agent_dlls.signed_valid, trust=vendor)
    assert (sig.trusted, sig.microsoft) == (True, False)
    assert agent_dlls.standin_ms_root_sha1 not in MICROSOFT_ROOTS


def _sha1_of_pem(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    return x509.load_pem_x509_certificate(pem).fingerprint(hashes.SHA1()).hex()


def test_unsigned_and_non_pe_signatures(agent_dlls: ab.Built, tmp_path: Path) -> None:
    assert pe_signature(agent_dlls.routing).reason == NOT_SIGNED
    text = tmp_path / "a.txt"
    text.write_text("hello")
    sig = pe_signature(text)
    assert (sig.present, sig.valid, sig.reason) == (False, False, "not a PE file")
    assert security_directory(agent_dlls.routing.read_bytes()) == (0, 0)
    offset, size = security_directory(agent_dlls.signed_valid.read_bytes()) or (0, 0)
    assert offset > 0 and size > 0


def test_garbage_certificate_table_is_a_reason_not_an_error(agent_dlls: ab.Built, tmp_path: Path) -> None:
    data = bytearray(agent_dlls.signed_valid.read_bytes())
    offset, size = security_directory(bytes(data)) or (0, 0)
    data[offset + 8 : offset + size] = bytes(range(256)) * ((size - 8) // 256) + bytes((size - 8) % 256)
    path = tmp_path / "garbled.dll"
    path.write_bytes(bytes(data))
    sig = pe_signature(path)
    assert sig.present and not sig.valid and not sig.trusted
    assert sig.reason.startswith("the signature could not be read")


# --- hashes -------------------------------------------------------------------------------------


def test_known_hash_table_and_lookup() -> None:
    rows = known_hashes.lightneuron_samples()
    assert len(rows) == 26
    for row in rows:
        assert (len(row.sha256), len(row.sha1), len(row.md5)) == (64, 40, 32)
        int(row.sha256 + row.sha1 + row.md5, 16)
    assert len({r.sha256 for r in rows}) == 26
    labelled = "LightNeuron Transport Agent, 2014-06-20, MSIL/Turla.A (ESET)"
    sha256 = "25facbc4265ca90f0508e77e97e1e6fcc7e46f6cca316b251b06d41232f6360c"
    assert known_hashes.known_hash(sha256=sha256) == labelled
    assert known_hashes.known_hash(sha256=sha256.upper()) == labelled
    # SHA-1 named in the research for the agent file Microsoft.Exchange.Security.Interop.dll
    assert known_hashes.known_hash(sha1="3c851e239fbf67a03e0dae8f63eee702b330db6c") == (
        "LightNeuron Transport Agent, compiled 2016-10-26, MSIL/Turla.A (ESET)"
    )
    assert known_hashes.known_hash(md5="c86e40e1fd2bd477a7f0cfed63fbca4a") == (
        "LightNeuron Companion DLL, 2016-09-02, Win64/Turla.CC (ESET)"
    )
    assert known_hashes.known_hash(md5="9ba1ef3716849301a0878ca7461fe50d") == "LightNeuron sample (ESET)"
    assert known_hashes.known_hash(sha256="0" * 64, sha1="0" * 40, md5="0" * 32) == ""


def test_file_hashes_are_looked_up(agent_dlls: ab.Built, monkeypatch: pytest.MonkeyPatch) -> None:
    sha256, _sha1, _md5 = digests(agent_dlls.native)
    assert assembly_facts(agent_dlls.native, None).known_hash == ""
    planted = known_hashes.KnownHash(sha256, "", "", "Companion DLL, test")
    monkeypatch.setattr(known_hashes, "_index", lambda: {sha256: planted})
    assert assembly_facts(agent_dlls.native, None).known_hash == "LightNeuron Companion DLL, test (ESET)"


# --- YARA ---------------------------------------------------------------------------------------


def test_shipped_rules_match_lightneuron_traits_only(agent_dlls: ab.Built, shipped_rules: RuleSet) -> None:
    matched = {
        name: assembly_facts(getattr(agent_dlls, name), None, shipped_rules).yara
        for name in ("routing", "delivery", "other_base", "no_factory", "signed_valid", "transport_stub")
    }
    assert matched == {name: [] for name in matched}
    artefacts = (["exhunt_lightneuron_artefact_names"], "")
    assert scan(shipped_rules, b"MZ... msmocf.xml ... msmodl.dat ...") == artefacts
    assert scan(shipped_rules, b"log at 814AD43-58AB-2CD3-3E68-B82A8F402FD0") == artefacts
    assert scan(shipped_rules, b"just msmocf.xml") == ([], "")


def test_user_rules_are_added(agent_dlls: ab.Built, tmp_path: Path) -> None:
    (tmp_path / "contoso.yar").write_text('rule contoso_archive { strings: $a = "Contoso.Mail.Archive" condition: $a }')
    (tmp_path / "readme.txt").write_text("not a rule")
    rules = compile_yara([tmp_path])
    assert assembly_facts(agent_dlls.routing, None, rules).yara == ["contoso.yar:contoso_archive"]
    assert sorted(assembly_facts(agent_dlls.lightneuron_like, None, rules).yara) == [
        "exhunt_lightneuron_agent_names",
        "exhunt_lightneuron_companion_import",
    ]


def test_bad_user_rule_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yar"
    bad.write_text(
        'rule ok { condition: true }\n\nrule broken {\n  strings:\n    $a = "x"\n  condition:\n    $a and\n}\n'
    )
    with pytest.raises(UsageError) as err:
        compile_yara([tmp_path])
    assert str(err.value).startswith(f"{bad}:8: YARA rule error: ")


def test_user_rules_cannot_include_files(tmp_path: Path) -> None:
    rule = tmp_path / "inc.yara"
    rule.write_text('include "/etc/passwd"\nrule r { condition: true }\n')
    with pytest.raises(UsageError, match=r"inc\.yara:1: YARA rule error: includes are disabled"):
        compile_yara([tmp_path])


def test_yara_folder_problems(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \.yar or \.yara files"):
        compile_yara([tmp_path])
    with pytest.raises(UsageError, match="not a folder"):
        compile_yara([tmp_path / "nope"])


def test_yara_console_output_never_reaches_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    import yara

    rules = RuleSet(rules=yara.compile(source='import "console"\nrule c { condition: console.log("LEAK") }'), files=[])
    assert scan(rules, b"data") == (["default:c"], "")
    out, err = capfd.readouterr()
    assert "LEAK" not in out + err


def test_yara_scan_is_time_bounded() -> None:
    import yara

    slow = yara.compile(source="rule slow { condition: for all i in (0..filesize - 1) : (uint8(i) == 0) }")
    started = time.monotonic()
    # 50 MB: about 5 s of work for this rule on the project machine without the limit
    names, problem = scan(RuleSet(rules=slow, files=[], timeout=1), bytes(50_000_000))
    assert (names, problem) == ([], "the YARA scan stopped after 1 s")
    assert time.monotonic() - started < 10


# --- limits and hostile bytes -------------------------------------------------------------------


def test_file_over_the_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "huge.dll"
    with open(big, "wb") as handle:
        handle.write(b"MZ")
        handle.truncate(100 * 1024 * 1024)
    reads: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(readbound.os, "read", counting_read)
    facts = assembly_facts(big, "X.Factory")
    monkeypatch.undo()
    assert reads == []
    assert (facts.exists, facts.size, facts.sha256, facts.is_pe) == (True, 100 * 1024 * 1024, "", False)
    assert facts.errors == ["the file is 104857600 bytes, over the 67108864-byte limit: not read"]
    small = assembly_facts(big, "X.Factory", max_bytes=1000)
    assert small.errors == ["the file is 104857600 bytes, over the 1000-byte limit: not read"]
    sig = pe_signature(big, max_bytes=1000)
    assert (sig.present, sig.reason) == (False, "the file is 104857600 bytes, over the 1000-byte limit: not read")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_fifo_and_folder_are_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "agent.dll"
    os.mkfifo(fifo)
    started = time.monotonic()
    facts = assembly_facts(fifo, "X.Factory")
    assert time.monotonic() - started < 5
    assert facts.errors == ["not a regular file: not read"]
    assert assembly_facts(tmp_path, "X.Factory").errors == ["not a regular file: not read"]


def _typedef_extends_offset(data: bytes, row: int) -> int:
    """File offset of the Extends field of TypeDef row `row` (1-based) in a small assembly, where
    a row is Flags (4 bytes) then five 2-byte indexes: name, namespace, extends, fields, methods."""
    import dnfile

    pe = dnfile.dnPE(data=data)
    table = pe.net.mdtables.TypeDef
    assert table.row_size == 14
    return pe.get_offset_from_rva(table.rva) + (row - 1) * table.row_size + 8


def test_base_type_loop_is_an_error_not_a_hang(agent_dlls: ab.Built, tmp_path: Path) -> None:
    data = bytearray(agent_dlls.other_base.read_bytes())
    clr = read_clr(bytes(data), ab.OTHER_FACTORY)
    assert clr.factory_bases == ["Contoso.Mail.Notes.NotesBase", "System.Object"]
    import dnfile

    names = [str(r.TypeName) for r in dnfile.dnPE(data=bytes(data)).net.mdtables.TypeDef.rows]
    base_row, factory_row = names.index("NotesBase") + 1, names.index("NotesAgentFactory") + 1
    offset = _typedef_extends_offset(bytes(data), base_row)
    struct.pack_into("<H", data, offset, factory_row << 2)  # coded TypeDefOrRef: NotesBase extends the factory
    path = tmp_path / "loop.dll"
    path.write_bytes(bytes(data))
    facts = assembly_facts(path, ab.OTHER_FACTORY)
    assert facts.factory_bases == ["Contoso.Mail.Notes.NotesBase", ab.OTHER_FACTORY]
    assert facts.errors == ["the base types form a loop"]
    assert not facts.derives_from_agent_factory


def _mutations() -> st.SearchStrategy[tuple[str, int, list[tuple[int, int]]]]:
    files = st.sampled_from(["routing", "lightneuron_like", "signed_valid", "native", "delivery"])
    return st.tuples(
        files,
        st.integers(min_value=0, max_value=100_000),
        st.lists(st.tuples(st.integers(min_value=0, max_value=100_000), st.integers(0, 255)), max_size=40),
    )


@settings(max_examples=120, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_mutations())
def test_damaged_pe_never_raises(agent_dlls: ab.Built, shipped_rules: RuleSet, change: tuple) -> None:
    name, cut, writes = change
    data = bytearray(getattr(agent_dlls, name).read_bytes())
    for at, value in writes:
        data[at % len(data)] = value
    if cut:
        data = data[: cut % (len(data) + 1)]
    with tempfile.NamedTemporaryFile(suffix=".dll", delete=False) as handle:
        handle.write(bytes(data))
    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    try:
        facts = assembly_facts(Path(handle.name), ab.ROUTING_FACTORY, shipped_rules)
    finally:
        os.unlink(handle.name)
    assert (root.handlers, root.filters) == (handlers, filters)  # dnfile's warnings leave no stderr handler
    assert isinstance(facts, AssemblyFacts)
    assert facts.sha256 == hashlib.sha256(bytes(data)).hexdigest()
    assert all(isinstance(e, str) and "Traceback" not in e for e in facts.errors)
    assert isinstance(facts.signature.reason, str)


@settings(max_examples=200, deadline=2000)
@given(st.binary(max_size=4096))
def test_random_bytes_behind_mz_never_raise(tail: bytes) -> None:
    data = b"MZ" + tail
    clr = read_clr(data, "A.B")
    assert not clr.factory_found
    security_directory(data)


def test_microsoft_roots_are_in_the_trust_store() -> None:
    """Each fingerprint counted as Microsoft's is a root signify trusts, issued to Microsoft."""
    from exhunt.audit.cryptocompat import crypto_problem

    assert crypto_problem() is None
    from signify.authenticode import TRUSTED_CERTIFICATE_STORE

    by_fingerprint = {c.sha1_fingerprint.replace(" ", "").lower(): c for c in TRUSTED_CERTIFICATE_STORE}
    for fingerprint in MICROSOFT_ROOTS:
        assert fingerprint in by_fingerprint
        assert "Microsoft" in by_fingerprint[fingerprint].subject.dn
