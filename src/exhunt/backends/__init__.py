"""The engines a hunt runs on: DuckDB in the process, Kusto clusters, Log Analytics workspaces."""
