"""Which server a collection is, from what is cheap to read: Velociraptor's client_info.json,
the `server-hostname` column of one of Exchange's message-tracking logs, else the collection
folder's name (KAPE's destination is usually named after the host)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from exhunt.audit.collection import Collection, Install, fold

#: Bytes read from any one file here.
MAX_READ = 64 << 10


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_READ)
    except OSError:
        return ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def _client_info(coll: Collection) -> str:
    if coll.top is None:
        return ""
    local = coll.child(coll.top, "client_info.json")
    if local is None or coll.regular_file(local):
        return ""
    try:
        doc = json.loads(_head(local))
    except ValueError:
        return ""
    if isinstance(doc, dict):
        for key in ("Fqdn", "fqdn", "Hostname", "hostname"):
            value = doc.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def _tracking_host(coll: Collection, inst: Install) -> str:
    for folder in inst.local:
        logs = coll.lookup(folder, ["TransportRoles", "Logs", "MessageTracking"])
        if logs is None or not logs.is_dir():
            continue
        names = sorted((n for n in coll.entries(logs).values() if fold(n).startswith("msgtrk")
                        and fold(n).endswith(".log")), reverse=True)[:3]
        for name in names:
            local = logs / name
            if coll.regular_file(local):
                continue
            fields: list[str] = []
            for line in _head(local).splitlines():
                if line.startswith("#Fields:"):
                    fields = [f.strip() for f in line[len("#Fields:"):].split(",")]
                elif line and not line.startswith("#") and "server-hostname" in fields:
                    try:
                        row = next(csv.reader(io.StringIO(line)))
                    except (csv.Error, StopIteration):
                        break
                    at = fields.index("server-hostname")
                    if at < len(row) and row[at].strip():
                        return row[at].strip()
                    break
    return ""


def server_name(coll: Collection, installs: list[Install]) -> tuple[str, str]:
    """(DeviceName, how it was found)."""
    found = _client_info(coll)
    if found:
        return found, "Velociraptor's client_info.json"
    for inst in installs:
        found = _tracking_host(coll, inst)
        if found:
            return found, f"message tracking log of {inst.root}"
    if coll.layout == "live":
        return coll.name, "this computer's name"
    return coll.name, "the collection folder's name"
