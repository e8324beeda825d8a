"""Events -> Defender Advanced Hunting rows, table by table, as a Defender for Endpoint host reports them.

A process start is DeviceProcessEvents (plus its image's signature in DeviceFileCertificateInfo when
the step gives one); a file write DeviceFileEvents (over SMB: the System process, with the remote side
in Request*); a module load DeviceImageLoadEvents plus the file's signature in
DeviceFileCertificateInfo; PowerShell script content DeviceEvents PowerShellCommand, one row per
command the block runs (a block that only defines functions, as a proxy module does, runs none).
The Exchange cmdlet log and other Windows event logs are not Defender tables: they are left out (a
Defender export never holds them).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from exhunt.schema import table as table_schema
from exhunt.simulate.events import Account, Event, Proc, Simulation, fake_hash

Row = dict[str, Any]
TABLES = (
    "DeviceProcessEvents",
    "DeviceFileEvents",
    "DeviceImageLoadEvents",
    "DeviceFileCertificateInfo",
    "DeviceEvents",
)
_FILE_ACTION = {
    "created": "FileCreated",
    "modified": "FileModified",
    "renamed": "FileRenamed",
    "deleted": "FileDeleted",
}


def timestamp(t: datetime) -> str:
    """Defender's form: seven fractional digits and Z."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _acct(prefix: str, a: Account) -> Row:
    return {
        f"{prefix}AccountDomain": a.domain.lower(),
        f"{prefix}AccountName": a.name.lower(),
        f"{prefix}AccountSid": a.sid,
    }


def _initiating(p: Proc) -> Row:
    """The InitiatingProcess* columns of the process that acted (and its parent)."""
    row: Row = {
        "InitiatingProcessFileName": p.file_name,
        "InitiatingProcessFolderPath": p.image.lower() if "\\" in p.image else "",
        "InitiatingProcessCommandLine": p.command_line,
        "InitiatingProcessId": p.pid,
        "InitiatingProcessCreationTime": timestamp(p.start),
        "InitiatingProcessSHA1": p.sha1 if "\\" in p.image else "",
        "InitiatingProcessIntegrityLevel": p.integrity,
        "InitiatingProcessLogonId": p.account.logon_id,
        **_acct("InitiatingProcess", p.account),
    }
    if p.parent is not None:
        row["InitiatingProcessParentFileName"] = p.parent.file_name
        row["InitiatingProcessParentId"] = p.parent.pid
    return row


def _certificate(sha1: str, signed: bool, signer: str) -> Row:
    """A DeviceFileCertificateInfo row: what Defender knows of a file's signature, by its SHA1."""
    ms = signer.startswith("Microsoft")
    return {
        "SHA1": sha1,
        "IsSigned": signed,
        "SignatureType": "Embedded" if signed else "",
        "Signer": signer,
        "IsTrusted": signed,
        "IsRootSignerMicrosoft": ms,
        "Issuer": "Microsoft Code Signing PCA 2011" if ms else (signer + " CA" if signed else ""),
    }


def rows(sim: Simulation) -> dict[str, list[Row]]:
    """Each Defender table's rows, in time order, ReportIds counting up per table."""
    out: dict[str, list[Row]] = {t: [] for t in TABLES}
    certs: set[str] = set()

    def add(table: str, ev: Event, row: Row) -> None:
        base = {"Timestamp": timestamp(ev.time), "DeviceId": sim.device_id, "DeviceName": sim.host}
        out[table].append({**base, **row, "ReportId": 1000 + len(out[table])})

    for ev in sim.events:
        p = ev.proc
        if not ev.seen("defender"):
            continue
        if ev.kind == "process" and p is not None:
            parent = p.parent
            add(
                "DeviceProcessEvents",
                ev,
                {
                    "ActionType": "ProcessCreated",
                    "FileName": p.file_name,
                    "FolderPath": p.image,
                    "ProcessCommandLine": p.command_line,
                    "ProcessId": p.pid,
                    "ProcessCreationTime": timestamp(p.start),
                    "ProcessIntegrityLevel": p.integrity,
                    "LogonId": p.account.logon_id,
                    **_acct("", p.account),
                    "SHA1": p.sha1,
                    "SHA256": fake_hash(p.image.lower() + "256", 64),
                    "MD5": fake_hash(p.image.lower(), 32),
                    "ProcessVersionInfoOriginalFileName": p.original_file_name or p.file_name,
                    **(_initiating(parent) if parent is not None else {}),
                },
            )
            if p.signed is not None and p.sha1 not in certs:
                certs.add(p.sha1)
                add("DeviceFileCertificateInfo", ev, _certificate(p.sha1, p.signed, p.signer))
        elif ev.kind == "file" and p is not None:
            d = ev.data
            name = d["path"].rsplit("\\", 1)[-1]
            row: Row = {
                "ActionType": _FILE_ACTION[d["action"]],
                "FileName": name,
                "FolderPath": d["path"],
                "SHA1": d["sha1"],
                "SHA256": d.get("sha256") or fake_hash(d["sha1"], 64),
                "MD5": fake_hash(d["sha1"], 32),
                "FileSize": d["size"],
                "RequestProtocol": "Local",
                **_initiating(p),
            }
            if "previous" in d:
                row["PreviousFileName"] = d["previous"].rsplit("\\", 1)[-1]
                row["PreviousFolderPath"] = d["previous"].rsplit("\\", 1)[0]
            if "smb" in d:
                smb = d["smb"]
                row.update(
                    {
                        "RequestProtocol": "SMB",
                        "RequestSourceIP": smb["ip"],
                        "RequestAccountDomain": smb["account"].domain.lower(),
                        "RequestAccountName": smb["account"].name.lower(),
                        "RequestAccountSid": smb["account"].sid,
                        "ShareName": smb["share"],
                    }
                )
            add("DeviceFileEvents", ev, row)
            if "signed" in d and d["sha1"] not in certs:
                certs.add(d["sha1"])
                add("DeviceFileCertificateInfo", ev, _certificate(d["sha1"], d["signed"], d["signer"]))
        elif ev.kind == "image_load" and p is not None:
            d = ev.data
            add(
                "DeviceImageLoadEvents",
                ev,
                {
                    "ActionType": "ImageLoaded",
                    "FileName": d["path"].rsplit("\\", 1)[-1],
                    "FolderPath": d["path"],
                    "SHA1": d["sha1"],
                    "SHA256": fake_hash(d["sha1"], 64),
                    "MD5": fake_hash(d["sha1"], 32),
                    "FileSize": d["size"],
                    **_initiating(p),
                },
            )
            if d["sha1"] not in certs:
                certs.add(d["sha1"])
                add("DeviceFileCertificateInfo", ev, _certificate(d["sha1"], d["signed"], d["signer"]))
        elif ev.kind == "script_block" and p is not None:
            for name in ev.data["runs"]:
                add(
                    "DeviceEvents",
                    ev,
                    {
                        "ActionType": "PowerShellCommand",
                        **_initiating(p),
                        "AdditionalFields": json.dumps({"Command": name}),
                    },
                )
    # only the table's published columns (a real export has no others)
    for name, table_rows in out.items():
        keep = {c.name for c in table_schema(name).columns}
        out[name] = [{k: v for k, v in r.items() if k in keep} for r in table_rows]
    return {t: r for t, r in out.items() if r and sim.selection.table(t)}


def columns(table_rows: list[Row]) -> list[str]:
    """Every column any row has, in first-seen order (one header for the table)."""
    cols: dict[str, None] = {}
    for r in table_rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def tenant_id(sim: Simulation) -> str:
    """A stable stand-in Entra tenant id for the simulated host's organisation."""
    h = fake_hash("tenant:" + sim.host.split(".", 1)[-1].lower(), 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def streaming_records(sim: Simulation) -> list[Row]:
    """Every row as the Streaming API sends it (`{time, tenantId, operationName, category, properties}`),
    all tables merged in time order, the order Defender streams them."""
    tenant = tenant_id(sim)
    recs = [
        {
            "time": r["Timestamp"],
            "tenantId": tenant,
            "operationName": "Publish",
            "category": f"AdvancedHunting-{table}",
            "properties": r,
        }
        for table, table_rows in rows(sim).items()
        for r in table_rows
    ]
    recs.sort(key=lambda rec: rec["time"])  # stable: a table's rows keep their order
    return recs
