"""Authenticode: is a PE file signed, does the signature hold, by whom, and is that Microsoft.

Verification is signify's (digest of the file, the signer's signature, the chain, its dates
and code-signing usage) against signify's trust store (Microsoft's root program), with no
network access. A signature is `valid` when it holds whatever its root (integrity: the file
is what its signer signed); `trusted` when, in addition, its chain ends at a trusted root;
`microsoft` only when the trusted chain ends at one of Microsoft's own roots, found by
fingerprint, and the signing certificate is issued to Microsoft Corporation. A certificate
that merely calls itself "Microsoft Corporation" is valid at best, never trusted nor Microsoft.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.audit.cryptocompat import crypto_problem
from exhunt.audit.readbound import DEFAULT_MAX_BYTES, read_bounded

for _name in ("signify", "oscrypto", "certvalidator"):
    logging.getLogger(_name).addHandler(logging.NullHandler())
    logging.getLogger(_name).propagate = False

# SHA-1 fingerprints of Microsoft's own root certificates that issue its code-signing CAs
# (fingerprints are what Windows shows as the thumbprint; names are only for the reader).
MICROSOFT_ROOTS: frozenset[str] = frozenset(
    {
        "8f43288ad272f3103b6fb1428485ea3014c0bcfe",  # Microsoft Root Certificate Authority 2011
        "3b1efd3a66ea28b16697394703a72ca340a05bd5",  # Microsoft Root Certificate Authority 2010
        "cdd4eeae6000ac7f40c3802c171e30148030c072",  # Microsoft Root Certificate Authority
        "a43489159a520f0d93d032ccaf37e7fe20a8b419",  # Microsoft Root Authority
        "06f1aa330b927b753a40e68cdf22e34bcbef3352",  # Microsoft ECC Product Root Certificate Authority 2018
    }
)
MICROSOFT_PUBLISHER = "Microsoft Corporation"

_CN = "2.5.4.3"
_O = "2.5.4.10"


@dataclass
class Signature:
    """What a PE file's Authenticode signature says, in facts a finding can quote."""

    present: bool
    valid: bool = False  # digest and signer's signature hold, chain well-formed, whatever the root
    signer: str = ""  # subject CN (O when there is no CN) of the signing certificate
    issuer: str = ""  # CN (or O) of the signing certificate's issuer
    microsoft: bool = False  # trusted chain to a Microsoft root, certificate issued to Microsoft Corporation
    reason: str = ""  # why not valid / not trusted, in plain words ("" when fine)
    trusted: bool = False  # valid, and the chain ends at a root trusted for code signing
    signer_org: str = ""  # subject O of the signing certificate
    thumbprint: str = ""  # SHA-1 of the signing certificate (lowercase hex), as Windows shows it
    root: str = ""  # CN of the root the chain was verified to ("" when none)


@dataclass(frozen=True)
class Trust:
    """Roots besides signify's store (a vendor's or a test's CA) and which roots are Microsoft's."""

    extra_roots: tuple[bytes, ...] = ()  # PEM or DER certificates
    microsoft_roots: frozenset[str] = field(default_factory=lambda: MICROSOFT_ROOTS)


TRUST = Trust()  # what pe_signature uses when no trust is given (tests may replace it)

_STORES: dict[tuple[bytes, ...], Any] = {}
_INDEXES: dict[int, tuple[Any, dict[Any, list[tuple[Any, Any]]]]] = {}
_STORES_LOCK = threading.Lock()


def pe_signature(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, trust: Trust | None = None) -> Signature:
    """The signature of the PE file at `path`; never raises (problems go to `reason`)."""
    read = read_bounded(path, max_bytes)
    if read.data is None:
        return Signature(present=False, reason=read.error or "the file could not be read")
    return signature_of(read.data, trust)


def signature_of(data: bytes, trust: Trust | None = None) -> Signature:
    """The signature of a PE file given as bytes; never raises."""
    trust = trust or TRUST
    directory = security_directory(data)
    if directory is None:
        return Signature(present=False, reason="not a PE file")
    if directory == (0, 0):
        return Signature(present=False, reason="the file is not signed")
    problem = crypto_problem()
    if problem:
        return Signature(present=True, reason=f"the signature was not checked: {problem}")
    try:
        return _verify(data, trust)
    except Exception as exc:  # a hostile signature must give a reason, never a traceback
        return Signature(present=True, reason=f"the signature could not be read ({type(exc).__name__})")


def security_directory(data: bytes) -> tuple[int, int] | None:
    """(offset, size) of the PE certificate table, (0, 0) when absent, None when not a PE file."""
    if len(data) < 0x40 or data[:2] != b"MZ":
        return None
    (pe_at,) = struct.unpack_from("<I", data, 0x3C)
    if pe_at + 24 + 2 > len(data) or data[pe_at : pe_at + 4] != b"PE\0\0":
        return None
    optional = pe_at + 24
    (magic,) = struct.unpack_from("<H", data, optional)
    if magic == 0x10B:
        directories, count_at = optional + 96, optional + 92
    elif magic == 0x20B:
        directories, count_at = optional + 112, optional + 108
    else:
        return None
    if directories + 5 * 8 > len(data):
        return (0, 0)
    (count,) = struct.unpack_from("<I", data, count_at)
    if count < 5:
        return (0, 0)
    offset, size = struct.unpack_from("<II", data, directories + 4 * 8)
    if offset == 0 or size == 0:
        return (0, 0)
    return (offset, size)


def _trusted_store(trust: Trust) -> Any:
    """signify's trust store, plus the extra roots when there are any (built once per Trust)."""
    from signify.authenticode import TRUSTED_CERTIFICATE_STORE
    from signify.x509 import Certificate, CertificateStore

    if not trust.extra_roots:
        return TRUSTED_CERTIFICATE_STORE
    with _STORES_LOCK:
        store = _STORES.get(trust.extra_roots)
        if store is None:
            certs: list[Any] = []
            for blob in trust.extra_roots:
                if b"-----BEGIN" in blob:
                    certs.extend(Certificate.from_pems(blob))
                else:
                    certs.append(Certificate.from_der(blob))
            store = TRUSTED_CERTIFICATE_STORE | CertificateStore(certs, trusted=True)
            _STORES[trust.extra_roots] = store
        return store


def _roots_by_subject(store: Any) -> dict[Any, list[tuple[Any, Any]]]:
    """Every trusted certificate of `store` by subject name, with the part of the store holding
    it (each part keeps its own trust list: which roots may sign code). Built once per store."""
    with _STORES_LOCK:
        index = _INDEXES.get(id(store))
        if index is not None and index[0] is store:
            return index[1]
    parts = list(getattr(store, "stores", [store]))
    by_subject: dict[Any, list[tuple[Any, Any]]] = {}
    for part in parts:
        for cert in part:
            by_subject.setdefault(cert.subject, []).append((part, cert))
    with _STORES_LOCK:
        _INDEXES[id(store)] = (store, by_subject)
    return by_subject


def _store_for(store: Any, signature: Any) -> Any:
    """The trusted roots that can end this signature's chain: those named as the issuer (or the
    subject) of one of its certificates. Same verdicts as the whole store, built for each file
    in a fraction of the time (signify otherwise indexes hundreds of roots on every check)."""
    from signify.x509 import CertificateStore

    names = set()
    for cert in signature.certificates:
        names.add(cert.issuer)
        names.add(cert.subject)
    index = _roots_by_subject(store)
    chosen: dict[int, tuple[Any, list[Any]]] = {}
    for name in names:
        for part, cert in index.get(name, []):
            chosen.setdefault(id(part), (part, []))[1].append(cert)
    narrowed = CertificateStore([], trusted=True)
    for part, certs in chosen.values():
        narrowed = narrowed | CertificateStore(certs, trusted=True, ctl=part.ctl)
    return narrowed


def _verify(data: bytes, trust: Trust) -> Signature:
    from signify.authenticode import AuthenticodeFile
    from signify.exceptions import CertificateVerificationError

    signed = AuthenticodeFile.from_stream(io.BytesIO(data))
    signatures = list(signed.iter_embedded_signatures())
    if not signatures:
        return Signature(present=True, reason="the signature could not be read")
    store = _trusted_store(trust)
    try:
        verified = _verify_any(signed, signatures, store)
    except CertificateVerificationError:
        return _untrusted(signatures)
    except Exception as exc:
        return _broken(signatures, exc)
    found = _leaf_and_root(verified)
    if found is None:
        return Signature(present=True, reason="the signature verified without a certificate chain")
    leaf, root = found
    signature = _signed_by(Signature(present=True, valid=True, trusted=True, root=_pick(root.subject, _CN, _O)), leaf)
    from_microsoft_root = root.sha1_fingerprint.replace(" ", "").lower() in trust.microsoft_roots
    signature.microsoft = from_microsoft_root and MICROSOFT_PUBLISHER in (signature.signer, signature.signer_org)
    return signature


def _verify_any(signed: Any, signatures: list[Any], store: Any) -> list[tuple[Any, Any, Any]]:
    """signify's verification of each embedded signature in turn, each against the roots that
    could end its chain; the first that verifies wins, else the last error is raised."""
    last: Exception | None = None
    for signature in signatures:
        try:
            chains = signature.verify(trusted_certificate_store=_store_for(store, signature))
        except Exception as exc:
            last = exc
            continue
        return [(signature, signature.indirect_data, chains)]
    raise last if last is not None else ValueError("no signature")


def _untrusted(signatures: list[Any]) -> Signature:
    """The chain failed against the trust store: does the signature hold on its own certificates?"""
    from signify.x509 import CertificateStore

    last: Exception | None = None
    for signature in signatures:
        try:
            signature.verify(trusted_certificate_store=CertificateStore(list(signature.certificates), trusted=True))
        except Exception as exc:
            last = exc
            continue
        leaf = _signing_certificate(signature)
        result = _signed_by(Signature(present=True, valid=True), leaf)
        reason = "the certificate chain does not end at a root trusted for code signing"
        if leaf is not None and leaf.subject == leaf.issuer:
            reason += " (the signing certificate is self-signed)"
        if MICROSOFT_PUBLISHER in (result.signer, result.signer_org):
            reason += "; it names Microsoft Corporation but is not issued by a Microsoft root"
        result.reason = reason
        return result
    return _broken(signatures, last)


def _broken(signatures: list[Any], exc: Exception | None) -> Signature:
    return _signed_by(Signature(present=True, valid=False, reason=_why(exc)), _signing_certificate(signatures[0]))


def _why(exc: Exception | None) -> str:
    from signify import exceptions as e

    if isinstance(exc, e.AuthenticodeInvalidDigestError | e.AuthenticodeInvalidAdditionalHashError):
        return "the file was changed after it was signed: its contents do not match the signature"
    if isinstance(exc, e.AuthenticodeCounterSignerError):
        return "the signature's timestamp does not verify"
    if isinstance(exc, e.CertificateVerificationError):
        return "the signing certificate is not valid for code signing (expired, wrong usage, or a broken chain)"
    if isinstance(exc, e.AuthenticodeInconsistentDigestAlgorithmError | e.ParseError):
        return "the signature is malformed"
    if isinstance(exc, e.VerificationError):
        return "the signature does not verify"
    return "the signature could not be checked"


def _leaf_and_root(verified: Any) -> tuple[Any, Any] | None:
    """The signing certificate and the root of the first verified chain (signify lists a chain
    root first; which end is the signer is checked, not assumed)."""
    for signed_data, _indirect, chains in verified:
        leaf = _signing_certificate(signed_data)
        for chain in chains:
            chain = list(chain)
            if not chain:
                continue
            if leaf is None or leaf == chain[-1]:
                return chain[-1], chain[0]
            if leaf == chain[0]:
                return chain[0], chain[-1]
            return leaf, chain[0]
    return None


def _signing_certificate(signature: Any) -> Any:
    try:
        info = signature.signer_info
        return signature.certificates.find_certificate(issuer=info.issuer, serial_number=info.serial_number)
    except Exception:
        return None


def _signed_by(signature: Signature, cert: Any) -> Signature:
    """`signature` with the signing certificate's names and thumbprint filled in (when known)."""
    if cert is not None:
        signature.signer = _pick(cert.subject, _CN, _O)
        signature.signer_org = _pick(cert.subject, _O)
        signature.issuer = _pick(cert.issuer, _CN, _O)
        signature.thumbprint = cert.sha1_fingerprint.replace(" ", "").lower()
    return signature


def _pick(name: Any, *oids: str) -> str:
    """The first value of the first of `oids` the certificate name has ("" when none)."""
    for oid in oids:
        for value in name.get_components(oid):
            return str(value)[:256]
    return ""
