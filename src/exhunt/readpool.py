"""Reading files: in this process, or in a small pool of worker processes.

`iter_source` turns one input (a file, or an archive and its members) into a stream
of events for the engine: a batch for a file's report, or a DuckDB query for a file
DuckDB reads itself (Parquet on disk). It never touches DuckDB, so it also runs in a
worker process: `pooled` reads files there (the Python-heavy readers, JSON and EVTX,
gain most) and sends each file's reports and Arrow batches back as IPC streams,
while the main process normalizes and stores. Results come back in input order, so
reports, rows and alerts are the same as with sequential reading.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from exhunt import sources
from exhunt.sources import archives
from exhunt.sources.base import NESTED_TOO_DEEP, Batch, FileReport, Relation, SourceFile, transcoded, utf16_codec

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

#: Exceptions a reader may raise for bad input: the file's report says so, the run goes on.
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, pa.ArrowException)
#: Below this much input in files a worker can take, start-up (about 0.5 s) outweighs the gain.
POOL_MIN_BYTES = 16 << 20
#: A file larger than this is read in this process, streaming (a worker returns whole files).
POOL_MAX_FILE_BYTES = 64 << 20


Event = tuple[FileReport, str, Batch | Relation]


def _agent_list(name: str, head: bytes) -> bool:
    """An Exchange agent list (agents.config, fetagents.config, their copies) or an admin's saved
    Get-TransportAgent output: `exhunt audit` reads these, not `detect`."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base.startswith(("agents.config", "fetagents.config")):
        return True
    text = head[:4096].replace(b"\x00", b"").lower()
    return b"<agentlist>" in text or (b"transportagentfactory" in text and b"assemblypath" in text)


def iter_source(
    src: SourceFile, input_format: str | None, table: str | None, reports: list[FileReport],
    direct: bool = True, parse_text: bool = False,
) -> Iterator[Event]:
    """(report, display, batch or relation) for one input; reports are appended in order.

    `direct`: files DuckDB reads itself (Parquet) come as a relation. `parse_text`: so do
    text files DuckDB can parse (CSV), worth it only when their rows are queried in place.
    """
    report = FileReport(src.display)
    reports.append(report)
    if src.problem:
        report.error = src.problem
        return
    try:
        head = src.head(sources.SNIFF_BYTES)
    except OSError as exc:
        report.error = f"cannot read: {exc.strerror or exc}"
        return
    codec = utf16_codec(head)
    if codec:  # a UTF-16 export: read as the UTF-8 it decodes to
        src = transcoded(src, codec)
        head = src.head(sources.SNIFF_BYTES)
    if not head:
        report.error = f"cannot read: {src.faults[-1].message}" if src.faults else "empty file"
        return
    if input_format is None:
        for container in sources.containers():
            if container.sniff(src, head):
                report.format = container.name
                try:
                    for member in container.members(src, report):
                        yield from iter_source(member, None, table, reports, direct, parse_text)
                except READ_ERRORS as exc:
                    report.error = f"stopped reading the archive: {exc}"
                _stream_faults(src, report, container=True)
                return
    reader = sources.choose(src, head, input_format)
    if reader is None:
        report.error = "not a telemetry format exhunt reads (unknown file type)"
        if _agent_list(src.display, head):
            report.error += "; it is an Exchange agent list: judge its agents with `exhunt audit`"
        return
    report.format = reader.name
    src.faults.clear()  # the reader reads from the start again: what it meets is what counts
    try:
        relation = getattr(reader, "relation", None) if direct else None
        found = relation(src, report, table) if relation else None
        if found is not None and (found.fallback is None or parse_text):
            yield report, src.display, found
            return
        for batch in reader.read(src, report, table):
            yield report, src.display, batch
    except READ_ERRORS as exc:
        report.error = f"stopped reading: {exc}"
    except RecursionError:  # a reader's own recursion over a value nested too deep
        report.error = f"stopped reading: {NESTED_TOO_DEEP}"
    finally:
        _stream_faults(src, report)


def _stream_faults(src: SourceFile, report: FileReport, container: bool = False) -> None:
    """What the file's streams met (see base.Guarded): data that failed its integrity check,
    and where the readable data ended (the rest of the file counted as one skipped record)."""
    for text in src.warnings:
        report.error = report.error or text
    if not src.faults:
        return
    fault = max(src.faults, key=lambda f: f.offset)
    src.faults.clear()
    if container:
        report.error = report.error or f"stopped reading at byte {fault.offset}: {fault.message}"
        return
    report.read += 1
    report.skip(f"byte {fault.offset}", fault.reason, fault.message)


# -- reports kept by another thread or process ----------------------------------------
#
# A reader records what it finds in the file's report while it yields batches, and the
# engine adds what it finds while storing them. Reading ahead (a thread, a worker) must not
# change the order of those notes, so the reader writes into shadow reports and every batch
# carries the changes made since the previous one; the engine applies them to the real
# reports just before it stores that batch, exactly when sequential reading would have
# made them.

Snapshot = tuple[str, int, dict[str, int], int, int, str | None, str | None, frozenset[str]]
Change = tuple[int, Snapshot, list[str]]


def _snap(r: FileReport) -> Snapshot:
    return (r.format, r.read, dict(r.skipped), len(r.messages), r.damaged_chunks, r.error, r.note,
            frozenset(r.unknown_columns))


class Tracker:
    """Shadow reports of one input, and what changed in them since the last look."""

    def __init__(self) -> None:
        self.reports: list[FileReport] = []
        self._seen: list[Snapshot] = []

    def changes(self) -> list[Change]:
        out: list[Change] = []
        for i, r in enumerate(self.reports):
            now = _snap(r)
            before = self._seen[i] if i < len(self._seen) else None
            if now != before:
                start = before[3] if before else 0
                out.append((i, now, r.messages[start:now[3]]))
                if before is None:
                    self._seen.append(now)
                else:
                    self._seen[i] = now
        return out


def apply(changes: list[Change], shadows: list[FileReport], real: list[FileReport],
          reports: list[FileReport], base: list[Snapshot]) -> None:
    """Replay shadow-report changes onto the real reports (created and appended on first sight)."""
    for i, now, messages in changes:
        if i >= len(real):
            report = FileReport(shadows[i].path if i < len(shadows) else "?")
            real.append(report)
            reports.append(report)
            base.append(_snap(report))
        report, before = real[i], base[i]
        report.format = now[0]
        report.read += now[1] - before[1]
        for reason, n in now[2].items():
            if n != before[2].get(reason, 0):
                report.skipped[reason] += n - before[2].get(reason, 0)
        for text in messages:
            report.message(text)
        report.damaged_chunks += now[4] - before[4]
        report.error, report.note = now[5], now[6]
        report.unknown_columns |= now[7]
        base[i] = now


# -- worker side ----------------------------------------------------------------


Item = tuple[list[Change], int, str, str, bytes] | tuple[list[Change], None, None, None, None]


def _ipc(data: pa.RecordBatch | pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write(data)
    return bytes(sink.getvalue())


def _read_file(path: str, display: str, input_format: str | None, table: str | None,
               passwords: tuple[str, ...] = archives.DEFAULT_PASSWORDS) -> tuple[list[str], list[Item]]:
    """In a worker: one file's batches (report index, display, table, IPC), each with the report
    changes made before it, and the last changes; plus the shadow reports' paths."""
    archives.set_passwords(passwords)
    track = Tracker()
    out: list[Item] = []
    try:
        src = sources.disk_file(Path(path), display)
        for report, shown, item in iter_source(src, input_format, table, track.reports, direct=False):
            if isinstance(item, Batch):
                i = next(k for k, r in enumerate(track.reports) if r is report)
                out.append((track.changes(), i, shown, item.table, _ipc(item.data)))
    except Exception as exc:  # a reader's bug must not take the run down: the file says so
        if not track.reports:
            track.reports.append(FileReport(display))
        track.reports[-1].error = f"reader failed: {type(exc).__name__}: {exc}"
    out.append((track.changes(), None, None, None, None))
    return [r.path for r in track.reports], out


# -- main side ------------------------------------------------------------------


def is_parquet(src: SourceFile) -> bool:
    """Parquet: DuckDB reads it itself, so neither a worker nor a read-ahead thread helps."""
    return src.magic == b"PAR1"


def _poolable(src: SourceFile) -> bool:
    """A file on disk that a worker can open by path and return whole; Parquet stays here."""
    if src.size > POOL_MAX_FILE_BYTES or src.path is None or not src.path.is_file():
        return False
    return not is_parquet(src)


def worth_pooling(files: list[SourceFile], jobs: int) -> bool:
    if jobs < 2:
        return False
    eligible = [f for f in files if f.size <= POOL_MAX_FILE_BYTES and _poolable(f)]
    return len(eligible) >= 2 and sum(f.size for f in eligible) >= POOL_MIN_BYTES


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _replay(paths: list[str], items: list[Item], reports: list[FileReport]) -> Iterator[Event]:
    """A worker's result as the events of sequential reading, report changes applied in turn."""
    shadows = [FileReport(p) for p in paths]
    real: list[FileReport] = []
    base: list[Snapshot] = []
    for changes, i, shown, name, payload in items:
        apply(changes, shadows, real, reports, base)
        if i is not None and shown is not None and name is not None and payload is not None:
            yield real[i], shown, Batch(name, pa.ipc.open_stream(payload).read_all())


def prefetched(src: SourceFile, input_format: str | None, table: str | None,
               reports: list[FileReport], ahead: int = 2, parse_text: bool = False) -> Iterator[Event]:
    """`iter_source` run by a thread a few batches ahead (Arrow's parsers and DuckDB both
    release the GIL, so reading overlaps storing); same events, same report contents."""
    track = Tracker()
    q: queue.Queue[tuple[list[Change], Event | None, BaseException | None]] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def work() -> None:
        try:
            for event in iter_source(src, input_format, table, track.reports, parse_text=parse_text):
                if stop.is_set():
                    return
                q.put((track.changes(), event, None))
            q.put((track.changes(), None, None))
        except BaseException as exc:  # a bug: raised again in the caller's thread
            q.put((track.changes(), None, exc))

    thread = threading.Thread(target=work, name="exhunt-read", daemon=True)
    thread.start()
    real: list[FileReport] = []
    base: list[Snapshot] = []
    try:
        while True:
            changes, event, exc = q.get()
            apply(changes, track.reports, real, reports, base)
            if exc is not None:
                raise exc
            if event is None:
                return
            shadow, shown, item = event
            yield real[next(k for k, r in enumerate(track.reports) if r is shadow)], shown, item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting to put
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.01)


#: The start method of reader workers; None: forkserver where the platform has it, else spawn.
START_METHOD: str | None = None


def start_method() -> str:
    """forkserver: workers fork from a clean server process (never from this one, whose DuckDB
    threads may hold locks) that has imported only the readers. Windows has no forkserver:
    spawn starts each worker as a fresh interpreter (what it costs: docs/benchmarks.md)."""
    if START_METHOD is not None:
        return START_METHOD
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context(start_method())
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(["exhunt.readpool"])
    return ctx


def _worker_init() -> None:
    """In each worker: Ctrl-C reaches the whole process group, but only the main process acts
    on it (it stops the pool); a worker would print a traceback for nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(jobs: int, ctx: multiprocessing.context.BaseContext) -> ProcessPoolExecutor:
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init)


def _submit(pool: ProcessPoolExecutor, path: str, input_format: str | None, table: str | None) -> Future[Any]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return pool.submit(_read_file, path, path, input_format, table, archives.passwords())
    except BrokenProcessPool as exc:  # a worker died meanwhile: this file is retried (see pooled)
        failed: Future[Any] = Future()
        failed.set_exception(exc)
        return failed


def pooled(
    files: list[SourceFile], input_format: str | None, table: str | None, reports: list[FileReport],
    jobs: int, parse_text: bool = False,
) -> Iterator[tuple[SourceFile, Iterator[Event]]]:
    """Per input file, in order: its events, to be consumed before the next file
    (reports are appended to `reports` in order).

    Files a worker cannot take are read here, lazily, when their turn comes. A worker that
    dies marks the file it was reading as failed and the pool is started again for the rest.
    """
    # Imported here: the process pool's modules cost 20 ms of start-up a run without a pool saves.
    from concurrent.futures.process import BrokenProcessPool

    ctx = context()
    pool = _pool(jobs, ctx)
    window = jobs * 2
    futures: dict[int, Future[tuple[list[str], list[Item]]]] = {}
    nxt = 0

    def submit_ahead(upto: int) -> None:
        nonlocal nxt
        while nxt < len(files) and nxt <= upto:
            src = files[nxt]
            if _poolable(src):
                futures[nxt] = _submit(pool, src.display, input_format, table)
            nxt += 1

    try:
        for i, src in enumerate(files):
            submit_ahead(i + window)
            fut = futures.pop(i, None)
            if fut is None:
                yield src, (iter_source(src, input_format, table, reports, parse_text=parse_text)
                            if is_parquet(src) else
                            prefetched(src, input_format, table, reports, parse_text=parse_text))
                continue
            try:
                got_reports, items = fut.result()
            except BrokenProcessPool:
                # A worker died, and every file in flight failed with it: start the pool again
                # for the rest, and read this file alone to learn whether it was the one.
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(jobs, ctx)
                again = sorted(futures)
                futures.clear()
                for k in again:
                    futures[k] = _submit(pool, files[k].display, input_format, table)
                alone = _pool(1, ctx)
                try:
                    got_reports, items = alone.submit(_read_file, src.display, src.display,
                                                      input_format, table, archives.passwords()).result()
                except Exception as exc:  # it was this file
                    failed = FileReport(src.display)
                    failed.error = ("reader process failed (crashed while reading this file)"
                                    if isinstance(exc, BrokenProcessPool)
                                    else f"reader process failed: {type(exc).__name__}: {exc}")
                    reports.append(failed)
                    yield src, iter(())
                    continue
                finally:
                    alone.shutdown(wait=True)
            except Exception as exc:  # could not send the file or its result: this file says so
                failed = FileReport(src.display)
                failed.error = f"reader process failed: {type(exc).__name__}: {exc}"
                reports.append(failed)
                yield src, iter(())
                continue
            yield src, _replay(got_reports, items, reports)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

