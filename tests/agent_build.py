"""Real transport-agent DLLs for the audit tests, built here rather than shipped.

Debian's `mcs` (package mono-mcs) compiles a stand-in for Exchange's
Microsoft.Exchange.Data.Transport.dll (the agent base classes, written for these tests: names
and inheritance as Microsoft documents them, no behaviour) and agent assemblies against it;
`osslsigncode` signs copies with certificates made here with the `cryptography` package
(a test root CA and its code-signing certificate, a self-signed "Microsoft Corporation"
certificate, a stand-in "Microsoft" root). A small native x64 DLL is assembled byte by byte.

`build(folder)` makes everything once; tests get it through the session fixture `agent_dlls`
(tests/conftest.py), which skips with the missing tool's name where one is absent.
"""

from __future__ import annotations

import datetime as dt
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

TRANSPORT_STUB = """
namespace Microsoft.Exchange.Data.Transport
{
    public abstract class AgentFactory { public virtual void Close() { } }
    public abstract class Agent { }
    public abstract class SmtpServer { }
}
namespace Microsoft.Exchange.Data.Transport.Smtp
{
    public abstract class SmtpReceiveAgent : Microsoft.Exchange.Data.Transport.Agent { }
    public abstract class SmtpReceiveAgentFactory : Microsoft.Exchange.Data.Transport.AgentFactory
    {
        public abstract SmtpReceiveAgent CreateAgent(Microsoft.Exchange.Data.Transport.SmtpServer server);
    }
}
namespace Microsoft.Exchange.Data.Transport.Routing
{
    public abstract class RoutingAgent : Microsoft.Exchange.Data.Transport.Agent { }
    public abstract class RoutingAgentFactory : Microsoft.Exchange.Data.Transport.AgentFactory
    {
        public abstract RoutingAgent CreateAgent(Microsoft.Exchange.Data.Transport.SmtpServer server);
    }
}
namespace Microsoft.Exchange.Data.Transport.Delivery
{
    public abstract class DeliveryAgentManager { }
    public abstract class DeliveryAgent : Microsoft.Exchange.Data.Transport.Agent { }
    public abstract class DeliveryAgentFactory<TManager> : Microsoft.Exchange.Data.Transport.AgentFactory
        where TManager : DeliveryAgentManager, new()
    {
        public abstract DeliveryAgent CreateAgent(Microsoft.Exchange.Data.Transport.SmtpServer server);
    }
}
"""

# A routing agent as a vendor would write it: the factory builds on a base class of its own.
ROUTING_AGENT = """
using Microsoft.Exchange.Data.Transport;
using Microsoft.Exchange.Data.Transport.Routing;
namespace Contoso.Mail.Archive
{
    public abstract class ArchiveFactoryBase : RoutingAgentFactory { }
    public sealed class ArchiveRoutingAgentFactory : ArchiveFactoryBase
    {
        public override RoutingAgent CreateAgent(SmtpServer server) { return new ArchiveRoutingAgent(); }
    }
    public sealed class ArchiveRoutingAgent : RoutingAgent { }
}
"""

# A delivery agent: its factory's base is the generic DeliveryAgentFactory<TManager>.
DELIVERY_AGENT = """
using Microsoft.Exchange.Data.Transport;
using Microsoft.Exchange.Data.Transport.Delivery;
namespace Contoso.Mail.Fax
{
    public sealed class FaxManager : DeliveryAgentManager { }
    public sealed class FaxDeliveryAgentFactory : DeliveryAgentFactory<FaxManager>
    {
        public override DeliveryAgent CreateAgent(SmtpServer server) { return null; }
    }
}
"""

# A class named as a factory that is no agent factory at all.
OTHER_BASE = """
namespace Contoso.Mail.Notes
{
    public class NotesBase { }
    public class NotesAgentFactory : NotesBase { }
}
"""

# An assembly that defines its own class under Exchange's factory name and derives from it.
IMPOSTOR_BASE = """
namespace Microsoft.Exchange.Data.Transport.Routing
{
    public abstract class RoutingAgentFactory { }
}
namespace Contoso.Mail.Fake
{
    public class FakeAgentFactory : Microsoft.Exchange.Data.Transport.Routing.RoutingAgentFactory { }
}
"""

# A factory whose base lives in another (non-Exchange) assembly: the chain leaves this file.
EXTERNAL_BASE = """
namespace Contoso.Mail.Kit
{
    public sealed class KitAgentFactory : Contoso.Mail.Archive.ArchiveFactoryBase
    {
        public override Microsoft.Exchange.Data.Transport.Routing.RoutingAgent CreateAgent(
            Microsoft.Exchange.Data.Transport.SmtpServer server) { return null; }
    }
}
"""

# No type by the name an agent list would give.
NO_FACTORY = """
namespace Contoso.Mail.Empty
{
    public static class Helper { public static int Answer() { return 42; } }
}
"""

# LightNeuron's published traits: its assembly and factory names, an SMTP receive agent, and a
# P/Invoke into the companion DLL the emulation names (exdbdata.dll, export MessageValidator).
LIGHTNEURON_LIKE = """
using System;
using System.Runtime.InteropServices;
using Microsoft.Exchange.Data.Transport;
using Microsoft.Exchange.Data.Transport.Smtp;
namespace Microsoft.Exchange.Security.Interop
{
    public sealed class SecurityInteropAgentFactory : SmtpReceiveAgentFactory
    {
        public override SmtpReceiveAgent CreateAgent(SmtpServer server) { return new SecurityInteropAgent(); }
    }
    public sealed class SecurityInteropAgent : SmtpReceiveAgent
    {
        [DllImport("exdbdata.dll", CharSet = CharSet.Unicode)]
        internal static extern int MessageValidator(IntPtr message, int length);
    }
}
"""

# Strings of LightNeuron's companion DLL configuration (ESET) for the native test DLL.
COMPANION_STRINGS = (b"CONFIG_FILE_NAME", b"SEND_TIME", b"SEND_AT_NIGHT", b"SEND_FILE")

ROUTING_FACTORY = "Contoso.Mail.Archive.ArchiveRoutingAgentFactory"
DELIVERY_FACTORY = "Contoso.Mail.Fax.FaxDeliveryAgentFactory"
OTHER_FACTORY = "Contoso.Mail.Notes.NotesAgentFactory"
IMPOSTOR_FACTORY = "Contoso.Mail.Fake.FakeAgentFactory"
EXTERNAL_FACTORY = "Contoso.Mail.Kit.KitAgentFactory"
LIGHTNEURON_FACTORY = "Microsoft.Exchange.Security.Interop.SecurityInteropAgentFactory"

VENDOR_SIGNER = "Contoso Mail Tools"
VENDOR_ORG = "Contoso Ltd"
TEST_CA = "exhunt test root CA"
STANDIN_MS_ROOT = "exhunt stand-in Microsoft root"
MICROSOFT = "Microsoft Corporation"


@dataclass
class Built:
    """Paths of the built files and the certificates a test may trust."""

    folder: Path
    transport_stub: Path
    routing: Path  # unsigned
    delivery: Path
    other_base: Path
    impostor_base: Path
    external_base: Path
    no_factory: Path
    lightneuron_like: Path
    native: Path  # x64 native DLL carrying the companion's configuration strings
    signed_valid: Path  # routing, signed by the test CA's code-signing certificate
    signed_invalid: Path  # signed_valid with one byte changed after signing
    signed_untrusted_ms: Path  # routing, signed by a self-signed "Microsoft Corporation"
    signed_standin_ms: Path  # routing, signed by "Microsoft Corporation" under the stand-in root
    test_ca_pem: bytes
    standin_ms_root_pem: bytes
    standin_ms_root_sha1: str
    vendor_cert_sha1: str


def missing_tools() -> str:
    """Why the agent DLLs cannot be built here ("" when they can)."""
    missing = [tool for tool in ("mcs", "osslsigncode") if shutil.which(tool) is None]
    try:
        import cryptography  # noqa: F401
    except ImportError:
        missing.append("the cryptography package")
    if not missing:
        return ""
    return (
        f"{' and '.join(missing)} not installed: the audit tests build real agent DLLs with Debian's "
        "mono-mcs and sign them with osslsigncode (apt-get install mono-mcs osslsigncode)"
    )


def build(folder: Path) -> Built:
    """Compile, assemble and sign every test file into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    stub = _compile(folder, "Microsoft.Exchange.Data.Transport", TRANSPORT_STUB, [])
    routing = _compile(folder, "Contoso.Mail.Archive", ROUTING_AGENT, [stub])
    built = {
        "routing": routing,
        "delivery": _compile(folder, "Contoso.Mail.Fax", DELIVERY_AGENT, [stub]),
        "other_base": _compile(folder, "Contoso.Mail.Notes", OTHER_BASE, []),
        "impostor_base": _compile(folder, "Contoso.Mail.Fake", IMPOSTOR_BASE, []),
        "external_base": _compile(folder, "Contoso.Mail.Kit", EXTERNAL_BASE, [stub, routing]),
        "no_factory": _compile(folder, "Contoso.Mail.Empty", NO_FACTORY, []),
        "lightneuron_like": _compile(folder, "Microsoft.Exchange.Security.Interop", LIGHTNEURON_LIKE, [stub]),
    }
    native = folder / "native-companion.dll"
    native.write_bytes(native_dll(b"\0".join(COMPANION_STRINGS)))

    pki = _Pki(folder)
    signed_valid = pki.sign(routing, folder / "signed-valid.dll", pki.vendor_chain, pki.vendor_key)
    signed_invalid = folder / "signed-invalid.dll"
    data = bytearray(signed_valid.read_bytes())
    at = data.index(b"This program cannot be run in DOS mode")  # hashed by Authenticode, unused by loaders
    data[at] ^= 0x20
    signed_invalid.write_bytes(bytes(data))
    signed_untrusted = pki.sign(routing, folder / "signed-untrusted-ms.dll", pki.fake_ms_pem, pki.fake_ms_key)
    signed_standin = pki.sign(routing, folder / "signed-standin-ms.dll", pki.standin_chain, pki.standin_key)
    return Built(
        folder=folder,
        transport_stub=stub,
        native=native,
        signed_valid=signed_valid,
        signed_invalid=signed_invalid,
        signed_untrusted_ms=signed_untrusted,
        signed_standin_ms=signed_standin,
        test_ca_pem=pki.ca_pem,
        standin_ms_root_pem=pki.standin_root_pem,
        standin_ms_root_sha1=pki.standin_root_sha1,
        vendor_cert_sha1=pki.vendor_sha1,
        **built,
    )


def _compile(folder: Path, assembly: str, source: str, references: list[Path]) -> Path:
    src = folder / f"{assembly}.cs"
    src.write_text(source, encoding="utf-8")
    out = folder / f"{assembly}.dll"
    refs = [f"-r:{ref}" for ref in references]
    cmd = ["mcs", "-nologo", "-target:library", "-optimize+", f"-out:{out}", *refs, str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mcs failed for {assembly}: {result.stdout}{result.stderr}")
    return out


def native_dll(payload: bytes) -> bytes:
    """A minimal valid PE32+ (x64) DLL: headers and one read-only data section holding `payload`."""
    file_align, section_align = 0x200, 0x1000
    raw_size = max(file_align, -(-len(payload) // file_align) * file_align)
    dos = bytearray(0x80)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x80)
    file_header = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 0xF0, 0x2022)
    optional = b"".join(
        [
            struct.pack("<HBB", 0x20B, 14, 0),  # PE32+ magic, linker version
            struct.pack("<IIIII", 0, raw_size, 0, 0, section_align),  # code/data sizes, no entry point, code base
            struct.pack("<QII", 0x180000000, section_align, file_align),  # image base, alignments
            struct.pack("<HHHHHHI", 6, 0, 0, 0, 6, 0, 0),  # OS, image and subsystem versions, Win32VersionValue
            struct.pack("<IIIHH", section_align * 2, file_align, 0, 2, 0x0160),  # sizes, checksum, GUI, DLL flags
            struct.pack("<QQQQII", 0x100000, 0x1000, 0x100000, 0x1000, 0, 16),  # stack, heap, flags, 16 dirs
            bytes(16 * 8),  # data directories: none
        ]
    )
    section = struct.pack(
        "<8sIIIIIIHHI", b".rdata", len(payload), section_align, raw_size, file_align, 0, 0, 0, 0, 0x40000040
    )
    headers = bytes(dos) + b"PE\0\0" + file_header + optional + section
    headers += bytes(file_align - len(headers))
    return headers + payload + bytes(raw_size - len(payload))


class _Pki:
    """The certificates and keys the signed test files use."""

    def __init__(self, folder: Path) -> None:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.folder = folder
        self._hashes = hashes
        pem = serialization.Encoding.PEM

        def key() -> rsa.RSAPrivateKey:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)

        ca_key = key()
        ca = self._cert(TEST_CA, "exhunt tests", ca_key, None, ca_key, is_ca=True)
        self.vendor_key_obj = key()
        vendor = self._cert(VENDOR_SIGNER, VENDOR_ORG, self.vendor_key_obj, ca, ca_key, is_ca=False)
        fake_key = key()
        fake_ms = self._cert(MICROSOFT, MICROSOFT, fake_key, None, fake_key, is_ca=False)
        root_key = key()
        root = self._cert(STANDIN_MS_ROOT, "exhunt tests", root_key, None, root_key, is_ca=True)
        standin_key = key()
        standin = self._cert(MICROSOFT, MICROSOFT, standin_key, root, root_key, is_ca=False)

        self.ca_pem = ca.public_bytes(pem)
        self.standin_root_pem = root.public_bytes(pem)
        self.standin_root_sha1 = root.fingerprint(hashes.SHA1()).hex()
        self.vendor_sha1 = vendor.fingerprint(hashes.SHA1()).hex()
        self.vendor_chain = self._write("vendor-chain.pem", vendor.public_bytes(pem) + self.ca_pem)
        self.vendor_key = self._write_key("vendor.key", self.vendor_key_obj)
        self.fake_ms_pem = self._write("fake-ms.pem", fake_ms.public_bytes(pem))
        self.fake_ms_key = self._write_key("fake-ms.key", fake_key)
        self.standin_chain = self._write("standin-chain.pem", standin.public_bytes(pem) + self.standin_root_pem)
        self.standin_key = self._write_key("standin.key", standin_key)

    def _cert(self, cn: str, org: str, key: object, issuer: object, issuer_key: object, *, is_ca: bool) -> object:
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
        )
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer is not None else subject)  # type: ignore[attr-defined]
            .public_key(key.public_key())  # type: ignore[attr-defined]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=is_ca,
                    crl_sign=is_ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        if not is_ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return builder.sign(issuer_key, self._hashes.SHA256())  # type: ignore[arg-type]

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def _write_key(self, name: str, key: object) -> Path:
        from cryptography.hazmat.primitives import serialization

        data = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return self._write(name, data)

    def sign(self, source: Path, out: Path, certs: Path, key: Path) -> Path:
        cmd = [
            "osslsigncode",
            "sign",
            "-certs",
            str(certs),
            "-key",
            str(key),
            "-h",
            "sha256",
            "-in",
            str(source),
            "-out",
            str(out),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"osslsigncode failed for {out.name}: {result.stdout}{result.stderr}")
        return out
