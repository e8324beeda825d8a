"""Keep bench/bench_audit.py from rotting: its collection (with stub DLLs) audits as planted.

Speed targets live in the benchmark itself, never in tests.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from conftest import REPO
from exhunt.audit.run import AuditOptions, audit


def test_bench_collection_audits_as_planted(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_audit", REPO / "bench" / "bench_audit.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_audit"] = module
    spec.loader.exec_module(module)
    top, built = module.layout(tmp_path, 3, real=False)
    assert built is None
    result = audit(top, AuditOptions())
    assert (result.device, result.agents, len(result.lists)) == ("EXCH01.contoso.local", 9, 4)
    lookalike = {f["rule_id"] for f in result.findings if f["AgentName"] == "Content Filter Agent"}
    assert "audit-builtin-impersonation" in lookalike
    assert {f["rule_id"] for f in result.findings if f["AgentName"] == "Fabrikam Disclaimer"} == {
        "audit-not-dotnet", "audit-third-party-unsigned", "audit-outside-exchange", "audit-list-differs"}
