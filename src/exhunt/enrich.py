"""Enrichment applied to normalized rows before they are stored, whatever file they came from.

PowerShell's `-EncodedCommand` (any accepted abbreviation: -e, -ec, -enc, ...)
takes base64 of UTF-16LE text; the decoded script is added to the row's
AdditionalFields as {"DecodedCommand": "..."} so rules and analysts can read it
on Defender exports and Windows logs alike.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

#: Tables whose rows get the decoding, and the command-line column it reads.
COMMAND_COLUMNS = {"DeviceProcessEvents": "ProcessCommandLine"}
_ABBREV = "|".join(["e", "ec"] + ["encodedcommand"[:n] for n in range(2, 15)])
_ENCODED = re.compile(rf"(?:^|\s)[-/](?:{_ABBREV})\s+[\"']?([A-Za-z0-9+/]{{8,}}={{0,2}})", re.I)
#: Rows whose command line might hold one (a cheap SQL filter before Python looks).
SQL_FILTER = r"regexp_matches({col}, '(?i)\s[-/]e[a-z]*\s+\S{{8,}}')"


def decode_command(command_line: str) -> str | None:
    """The decoded script of an -EncodedCommand argument, or None when there is none."""
    m = _ENCODED.search(command_line or "")
    if not m:
        return None
    blob = m.group(1)
    try:
        raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) % 2:
        raw = raw[:-1]
    try:
        text = raw.decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= 0.9 * len(text) else None


def merge_fields(current: Any, decoded: str) -> str | None:
    """AdditionalFields JSON with DecodedCommand added (None when the existing value is not an object)."""
    fields: Any = {}
    if isinstance(current, str) and current.strip():
        try:
            fields = json.loads(current)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            return None
    if not isinstance(fields, dict):
        return None
    fields["DecodedCommand"] = decoded
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def apply(con: Any, relation: str, table: str) -> int:
    """Decode in place in a normalized batch (a DuckDB temp table); returns rows changed."""
    col = COMMAND_COLUMNS.get(table)
    if col is None:
        return 0
    q = '"' + col + '"'
    found = con.execute(
        f'SELECT rowid, {q}, "AdditionalFields" FROM {relation} WHERE {SQL_FILTER.format(col=q)}'
    ).fetchall()
    updates = []
    for rowid, cmd, fields in found:
        decoded = decode_command(cmd)
        if decoded is not None:
            merged = merge_fields(fields, decoded)
            if merged is not None:
                updates.append((merged, rowid))
    if updates:
        con.executemany(f'UPDATE {relation} SET "AdditionalFields" = ? WHERE rowid = ?', updates)
    return len(updates)
