"""Facts about the DLL one agent loads: hashes, PE and .NET metadata, signature, YARA matches.

`assembly_facts` reads the file once (regular files only, refused over `max_bytes`) and
derives every fact from those bytes: SHA-256/SHA-1/MD5 and the known-hash table
(known_hashes), the factory type and its bases and the P/Invoke imports (clrmeta, dnfile),
the Authenticode signature (authenticode, signify), YARA matches (yarascan). Nothing here
raises on a hostile or damaged file: what could not be read goes to `errors` in plain words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exhunt.audit.authenticode import Signature, Trust, pe_signature, signature_of
from exhunt.audit.clrmeta import AGENT_FACTORIES, read_clr
from exhunt.audit.known_hashes import known_hash
from exhunt.audit.readbound import DEFAULT_MAX_BYTES, read_bounded
from exhunt.audit.yarascan import RuleSet, compile_yara, scan

__all__ = [
    "AGENT_FACTORIES",
    "AssemblyFacts",
    "Signature",
    "Trust",
    "assembly_facts",
    "compile_yara",
    "pe_signature",
]


@dataclass
class AssemblyFacts:
    """Everything exhunt can tell about one agent DLL without running it."""

    path: str  # local path read
    exists: bool = False
    size: int = 0
    sha256: str = ""
    is_pe: bool = False
    is_dotnet: bool = False
    assembly_name: str = ""
    factory_found: bool = False  # the agent's factory type is defined in this assembly
    factory_bases: list[str] = field(default_factory=list)  # base-type chain, nearest first (full names)
    derives_from_agent_factory: bool = False  # a base is one of Exchange's agent factories (AGENT_FACTORIES)
    pinvokes: list[tuple[str, str]] = field(default_factory=list)  # (native dll, function) P/Invoke imports
    signature: Signature = field(default_factory=lambda: Signature(present=False))
    known_hash: str = ""  # "" or what the hash is known as: "LightNeuron <component> (ESET)"
    yara: list[str] = field(default_factory=list)  # names of YARA rules that matched
    errors: list[str] = field(default_factory=list)  # what could not be read, in plain words
    # Added beyond the shared contract:
    sha1: str = ""
    md5: str = ""
    machine: str = ""  # PE machine: "x86", "x64", ...
    bases_unresolved: str = ""  # the last base found, defined in another assembly, when the chain
    #                             stops there before reaching an Exchange agent factory
    notes: list[str] = field(default_factory=list)  # observations that are not errors (plain words)


def assembly_facts(
    path: Path,
    factory: str | None,
    yara_rules: RuleSet | Any | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    trust: Trust | None = None,
) -> AssemblyFacts:
    """Facts about the file at `path` for an agent whose factory is `factory` (None: no factory
    check); `yara_rules` from compile_yara (None: no YARA scan). Never raises."""
    facts = AssemblyFacts(path=str(path))
    read = read_bounded(Path(path), max_bytes)
    facts.exists = read.exists
    facts.size = read.size
    if read.error:
        facts.errors.append(read.error)
    data = read.data
    if data is None:
        return facts
    facts.sha256 = hashlib.sha256(data).hexdigest()
    facts.sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    facts.md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    facts.known_hash = known_hash(facts.sha256, facts.sha1, facts.md5)
    clr = read_clr(data, factory)
    facts.is_pe = clr.is_pe
    facts.machine = clr.machine
    facts.is_dotnet = clr.is_dotnet
    facts.assembly_name = clr.assembly_name
    facts.factory_found = clr.factory_found
    facts.factory_bases = clr.factory_bases
    facts.derives_from_agent_factory = clr.derives_from_agent_factory
    facts.bases_unresolved = clr.bases_unresolved
    facts.pinvokes = clr.pinvokes
    facts.notes.extend(clr.notes)
    facts.errors.extend(clr.errors)
    if facts.is_pe:
        facts.signature = signature_of(data, trust)
    else:
        facts.signature = Signature(present=False, reason="not a PE file")
    if yara_rules is not None:
        matched, problem = scan(yara_rules, data)
        facts.yara = matched
        if problem:
            facts.errors.append(problem)
    return facts
