"""Hashes with a known meaning: the published LightNeuron samples (data/lightneuron-hashes.tsv).

A file is looked up by its SHA-256, SHA-1 and MD5 (ESET published all three for each sample).
The answer names what the file is and who said so, for the finding's evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class KnownHash:
    """One published sample."""

    sha256: str
    sha1: str
    md5: str
    label: str  # ESET's component label, "" where it gave none

    @property
    def description(self) -> str:
        what = f"LightNeuron {self.label}" if self.label else "LightNeuron sample"
        return f"{what} (ESET)"


@cache
def lightneuron_samples() -> tuple[KnownHash, ...]:
    """The shipped table, read once."""
    text = resources.files("exhunt.audit").joinpath("data/lightneuron-hashes.tsv").read_text("utf-8")
    rows = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        sha256, sha1, md5, label = [*line.split("\t"), "", "", ""][:4]
        rows.append(KnownHash(sha256.lower(), sha1.lower(), md5.lower(), label.strip()))
    return tuple(rows)


@cache
def _index() -> dict[str, KnownHash]:
    found: dict[str, KnownHash] = {}
    for row in lightneuron_samples():
        for digest in (row.sha256, row.sha1, row.md5):
            if digest:
                found[digest] = row
    return found


def known_hash(sha256: str = "", sha1: str = "", md5: str = "") -> str:
    """What the file with these hashes is known as ("" when none is known)."""
    index = _index()
    for digest in (sha256, sha1, md5):
        row = index.get(digest.strip().lower()) if digest else None
        if row is not None:
            return row.description
    return ""
