"""Platform reference data, held as files beside this module so a new ATT&CK release or a
new Sentinel entity type is a data change: the ATT&CK Enterprise technique table (generated
from MITRE's STIX data by scripts/make_attack_table.py) and Sentinel's entity types.
Each file's header names its source, version and date."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any

from exhunt import yamltext

#: Tactic names Sentinel accepts in `tactics` (its AttackTactic values: Enterprise, the
#: ICS matrix's two, and the retired PreAttack).
SENTINEL_TACTICS = (
    "Reconnaissance", "ResourceDevelopment", "InitialAccess", "Execution", "Persistence", "PrivilegeEscalation",
    "DefenseEvasion", "CredentialAccess", "Discovery", "LateralMovement", "Collection", "Exfiltration",
    "CommandAndControl", "Impact", "PreAttack", "ImpairProcessControl", "InhibitResponseFunction",
)

#: MITRE's tactic short names (STIX kill-chain phases, Sigma's `attack.*` tags) -> Sentinel's names.
ATTACK_TACTIC = {
    "reconnaissance": "Reconnaissance", "resource-development": "ResourceDevelopment",
    "initial-access": "InitialAccess", "execution": "Execution", "persistence": "Persistence",
    "privilege-escalation": "PrivilegeEscalation", "defense-evasion": "DefenseEvasion",
    "credential-access": "CredentialAccess", "discovery": "Discovery", "lateral-movement": "LateralMovement",
    "collection": "Collection", "command-and-control": "CommandAndControl", "exfiltration": "Exfiltration",
    "impact": "Impact",
}


@dataclass(frozen=True)
class Technique:
    """One ATT&CK Enterprise technique or sub-technique."""

    id: str
    name: str
    tactics: frozenset[str]
    status: str  # active, revoked or deprecated
    replaced_by: str


def _text(name: str) -> str:
    return (resources.files("exhunt") / "refdata" / name).read_text(encoding="utf-8")


@functools.cache
def attack() -> tuple[dict[str, Technique], dict[str, str]]:
    """The technique table and its header (attack_version, source, generated)."""
    header: dict[str, str] = {}
    table: dict[str, Technique] = {}
    for line in _text("attack_enterprise.tsv").splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip()] = value.strip()
            continue
        cells = line.split("\t")
        if len(cells) != 5 or cells[0] == "id":
            continue
        tid, name, tactics, status, replaced = cells
        table[tid] = Technique(tid, name, frozenset(t for t in tactics.split(",") if t), status, replaced)
    return table, header


@dataclass(frozen=True)
class EntityType:
    """A Sentinel entity type: what a rule may map and which identifier sets identify it."""

    name: str
    identifiers: tuple[str, ...]
    required: tuple[str, ...]
    strong: tuple[frozenset[str], ...]
    weak: tuple[frozenset[str], ...]
    mappable: bool


def _sets(value: Any) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(str(i) for i in s) for s in value or [])


@functools.cache
def entity_types() -> dict[str, EntityType]:
    doc = yamltext.load(_text("sentinel_entities.yaml"))
    return {name: EntityType(name, tuple(body["identifiers"]), tuple(body.get("required") or ()),
                             _sets(body.get("strong")), _sets(body.get("weak")), bool(body.get("mappable", True)))
            for name, body in doc.items()}
