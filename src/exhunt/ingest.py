"""`exhunt ingest`: parse a collection once, hunt it many times.

The normalized tables are written as Parquet, one folder per table
(`OUT/<Table>/part-*.parquet`), with the provenance columns (`_source_file`,
`_record`) kept so alerts raised later still name the original file and record.
`exhunt detect OUT` / `exhunt query ... OUT` read the folder back (the Parquet
reader takes the table from the folder name).

A run killed halfway must not leave a folder a later hunt trusts (see exhunt.manifest):
a new folder is written as a hidden temporary sibling (`.OUT.exhunt-ingest-*`, with the
writer's pid file, so a later ingest removes it once that process is gone) and renamed
into place once complete, its manifest written last. `--append` writes its parts beside,
moves them in, then replaces the manifest in one rename; the manifest records each input
ingested, and an input already there (same path, size and modification time) is skipped.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from exhunt import lifecycle, manifest
from exhunt.engine import Session
from exhunt.errors import UsageError
from exhunt.sources.base import SourceFile

if TYPE_CHECKING:
    from exhunt.backends.kusto_ingest import Upload

#: Rows per Parquet file part; DuckDB starts a new part beyond this size.
PART_BYTES = "256MB"
#: Rows read from DuckDB at a time when sending tables to a cluster.
INGEST_BATCH = 10_000


def input_key(path: Path) -> dict[str, Any]:
    """What identifies an input already ingested: its absolute path, size and modification time."""
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class Target:
    """The --out folder of one ingest: checked and prepared before any input is read, filled
    by `publish`; the temporary folder is removed on exit whatever happens."""

    out: Path
    append: bool = False
    notes: list[str] = field(default_factory=list)
    _tmp: Path | None = None
    _old: manifest.Manifest | None = None
    _keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __enter__(self) -> Target:
        out = self.out
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out: {out} is a file; give a folder")
        if out.is_dir():
            self._check_existing()
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            lifecycle.sweep(manifest.temp_prefix(out), out.parent)
            self._tmp = lifecycle.make_temp(manifest.temp_prefix(out), out.parent)
        except OSError as exc:
            raise UsageError(f"--out: cannot write into {out.parent}: {exc.strerror or exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        lifecycle.remove_temp(self._tmp)
        self._tmp = None

    def _check_existing(self) -> None:
        """An existing --out: empty (filled as a new one), or, with --append, a complete ingest."""
        out = self.out
        old = manifest.read(out)
        taken = sorted(p.name for p in out.iterdir() if p.is_dir() and any(p.glob("part-*.parquet")))
        if not self.append:
            if old is not None or taken:
                raise UsageError(f"--out {out} already holds ingested tables ({', '.join(taken) or 'none'}); "
                                 "choose an empty folder or pass --append")
            if any(out.iterdir()):
                raise UsageError(f"--out {out} is not empty; choose a new or empty folder")
            return
        if old is None:
            if taken:
                raise UsageError(f"--out {out} holds exhunt part files but no {manifest.NAME}: an ingest into it "
                                 "stopped before it finished (or an older exhunt wrote it); ingest into a new folder")
            if any(out.iterdir()):
                raise UsageError(f"--out {out} is not an ingested folder and not empty; choose a new or empty folder")
            return
        manifest.verify(old, allow_unlisted=True)
        for stray in manifest.unlisted(old):  # moved in by an append that stopped: never published
            stray.unlink()
            self.notes.append(f"removed {stray.relative_to(out).as_posix()}, left by an ingest that did not finish")
        self._old = old

    def split(self, files: list[SourceFile]) -> list[SourceFile]:
        """The inputs to read: with --append, those the folder does not hold yet (a note each)."""
        done = {(i.get("path"), i.get("size"), i.get("mtime_ns")) for i in self._old.inputs} if self._old else set()
        todo = []
        for src in files:
            try:
                if src.path is None:
                    raise OSError
                key = input_key(src.path)
            except OSError:
                todo.append(src)  # not a plain file on disk: read it, its report will say
                continue
            if (key["path"], key["size"], key["mtime_ns"]) in done:
                self.notes.append(f"{src.display}: already ingested into {self.out} (same path, size and "
                                  "modification time); skipped")
                continue
            self._keys[src.display] = key
            todo.append(src)
        return todo

    def publish(self, session: Session, files: list[SourceFile]) -> dict[str, int]:
        """Write every non-empty table, then make the result visible in one rename; rows per table."""
        assert self._tmp is not None
        counts = {name: n for name in session.tables if (n := session.row_count(name))}
        run = uuid.uuid4().hex[:12]
        new = manifest.Manifest(self._tmp)
        for name in counts:
            folder = self._tmp / name
            folder.mkdir()
            session.write_parquet(name, folder, f"part-{run}", PART_BYTES)
            new.tables[name] = [self._part(p) for p in sorted(folder.glob("part-*.parquet"))]
        new.inputs = [self._keys.get(src.display) or {"path": src.display} for src in files]
        if self._old is None:
            self._publish_new(new)
        else:
            self._publish_append(self._old, new)
        return counts

    def _part(self, path: Path) -> dict[str, Any]:
        manifest.fsync_file(path)
        return {"file": f"{path.parent.name}/{path.name}", "bytes": path.stat().st_size,
                "rows": pq.ParquetFile(path).metadata.num_rows}

    def _publish_new(self, new: manifest.Manifest) -> None:
        """The complete folder, manifest last, renamed to --out (which is absent or empty)."""
        assert self._tmp is not None
        manifest.write(new)
        # Until here the pid file lets a later ingest remove this folder if the run dies.
        (self._tmp / lifecycle.PID_FILE).unlink()
        if self.out.is_dir():
            self.out.rmdir()  # empty: checked before the run
        os.replace(self._tmp, self.out)
        lifecycle.forget_temp(self._tmp)
        manifest.fsync_dir(self.out.parent)
        self._tmp = None

    def _publish_append(self, old: manifest.Manifest, new: manifest.Manifest) -> None:
        """New parts moved in beside the old ones, then one manifest listing both replaces the
        old in a single rename: until then readers see the folder as it was."""
        assert self._tmp is not None
        merged = manifest.Manifest(self.out, {k: list(v) for k, v in old.tables.items()}, list(old.inputs))
        for name, entries in new.tables.items():
            (self.out / name).mkdir(exist_ok=True)
            for entry in entries:
                shutil.move(str(self._tmp / entry["file"]), str(self.out / entry["file"]))
            merged.tables.setdefault(name, []).extend(entries)
        merged.inputs.extend(new.inputs)
        manifest.write(merged)


def cluster_uploads(session: Session) -> list[Upload]:
    """Every table with its columns (the schema's KQL types, the provenance columns, then the
    input's extra columns), its rows read in Arrow batches only as they are sent. Empty tables
    are made too: a rule reading a table the case lacks then finds it empty, as it does locally."""
    from exhunt.backends.kusto_ingest import Upload, kql_type

    uploads = []
    for name, t in session.tables.items():
        schema, batches = session.table_batches(name, INGEST_BATCH)
        typed = {c.name: c.kql_type for c in t.columns}
        columns = [(f.name, typed.get(f.name) or kql_type(f.type)) for f in schema]
        uploads.append(Upload(name, columns, batches))
    return uploads
