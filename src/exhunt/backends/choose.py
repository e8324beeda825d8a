"""Which engine a command hunts on: the inputs loaded into DuckDB, a Kusto cluster
(`--cluster URL --database DB`) or a Log Analytics workspace (`--workspace ID`)."""

from __future__ import annotations

from pathlib import Path

from exhunt.backends.remote import RemoteBackend
from exhunt.errors import UsageError
from exhunt.timerange import TimeRange


def remote(paths: list[Path] | None, cluster: str | None, database: str | None, workspace: str | None,
           auth: str = "default", span: TimeRange | None = None) -> RemoteBackend | None:
    """The remote engine the options name (None: hunt the input paths locally); a UsageError
    for a combination that makes no sense, before anything is read or sent."""
    if cluster is not None and workspace is not None:
        raise UsageError("--cluster and --workspace are two engines: choose one")
    if (cluster is None) != (database is None):
        raise UsageError("--cluster and --database go together")
    if cluster is None and workspace is None:
        if not paths:
            raise UsageError("give the files or folders to hunt, or --cluster URL --database DB, or --workspace ID")
        return None
    if paths:
        raise UsageError("--cluster/--workspace hunt the tables already there: give no input paths "
                         "(put a case on a cluster with `exhunt ingest PATH --cluster URL --database DB`)")
    backend: RemoteBackend
    if cluster is not None:
        from exhunt.backends.kusto import KustoBackend

        backend = KustoBackend(cluster, str(database), auth)
    else:
        from exhunt.backends.log_analytics import LogAnalyticsBackend

        backend = LogAnalyticsBackend(str(workspace), auth)
    if span is not None:
        backend.bounds = span.bounds()
    return backend
