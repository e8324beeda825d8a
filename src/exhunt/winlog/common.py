"""Small value conversions every Windows mapping needs (paths, accounts, ids, hashes)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

#: Sysmon and Security write "-" where a value is absent.
EMPTY = ("", "-", None)


def text(value: Any) -> str:
    """A field as text; absent values become '' (KQL strings have no null)."""
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def basename(path: Any) -> str:
    """Last component of a Windows path ('C:\\a\\b.exe' -> 'b.exe')."""
    p = text(path)
    i = max(p.rfind("\\"), p.rfind("/"))
    return p[i + 1:] if i >= 0 else p


def split_user(value: Any) -> tuple[str, str]:
    """'DOMAIN\\user' -> ('DOMAIN', 'user'); a bare name has no domain."""
    v = text(value)
    if v in EMPTY:
        return "", ""
    dom, sep, user = v.partition("\\")
    return (dom, user) if sep else ("", v)


def to_int(value: Any) -> int | None:
    """Decimal or 0x-hex text (Windows writes process ids and logon ids both ways)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    v = str(value).strip()
    if not v or v == "-":
        return None
    try:
        return int(v, 16) if v[:2].lower() == "0x" else int(v)
    except ValueError:
        return None


def hashes(value: Any) -> dict[str, str]:
    """Sysmon 'SHA1=..,MD5=..,SHA256=..,IMPHASH=..' -> {'SHA1': '..', ...}, hex lower-cased like Defender."""
    out: dict[str, str] = {}
    for part in text(value).split(","):
        algo, sep, digest = part.partition("=")
        if sep:
            out[algo.strip().upper()] = digest.strip().lower()
    return out


def sysmon_time(value: Any) -> str:
    """Sysmon's UtcTime '2022-09-22 16:31:14.259' is UTC without a zone mark: add one."""
    v = text(value).strip()
    if not v or v == "-":
        return ""
    return v if v.endswith("Z") or "+" in v[10:] else v + "Z"


_md5 = hashlib.md5


def report_id(*parts: Any) -> int:
    """A stable positive 63-bit id from the event's identity (Defender's ReportId is a long).

    The first 8 bytes of the MD5 of the parts joined by U+001F, little-endian, top bit
    cleared: exactly DuckDB's `md5_number_upper(...) & 0x7FFFFFFFFFFFFFFF`, so the SQL
    mappings compute the same id.
    """
    key = "\x1f".join([text(p) for p in parts]).encode("utf-8", "surrogatepass")
    return int.from_bytes(_md5(key).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


_orjson_dumps = orjson.dumps


def dumps(obj: Any) -> str:
    """Compact JSON text for dynamic columns (the same text as `json.dumps` with
    `separators=(",", ":"), ensure_ascii=False`, written by orjson at C speed)."""
    try:
        return _orjson_dumps(obj).decode()
    except (TypeError, orjson.JSONEncodeError):  # lone surrogates, huge ints, odd key types
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def bool_text(value: Any) -> bool | None:
    v = text(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    return None


_HIVES = (
    ("\\REGISTRY\\MACHINE", "HKEY_LOCAL_MACHINE"),
    ("\\REGISTRY\\USER", "HKEY_USERS"),
    ("HKLM", "HKEY_LOCAL_MACHINE"),
    ("HKU", "HKEY_USERS"),
    ("HKCU", "HKEY_CURRENT_USER"),
    ("HKCR", "HKEY_LOCAL_MACHINE\\Classes"),
)


def registry_key(value: Any) -> str:
    """Sysmon's short or kernel hive names -> the full names Defender writes."""
    v = text(value)
    upper = v.upper()
    for short, full in _HIVES:
        if upper.startswith(short) and (len(v) == len(short) or v[len(short)] == "\\"):
            return full + v[len(short):]
    return v
