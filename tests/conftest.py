"""Shared test helpers: where the shared public data lives, and a CLI runner."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from exhunt.cli import app

# Translations cached by one test must not leak into the user's cache, nor an old
# cache into the tests: every run starts with an empty one of its own.
os.environ["EXHUNT_CACHE_DIR"] = tempfile.mkdtemp(prefix="exhunt-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, or skip: a user's fresh clone has no shared folder."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"public sample data not present at {path} (only on the project's machines)")
    return path


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """Run exhunt in-process; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """bench/bench_detect.py as a module (the bench smoke and noise tests drive its generator)."""
    spec = importlib.util.spec_from_file_location("bench_detect", REPO / "bench" / "bench_detect.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_detect"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def agent_dlls(tmp_path_factory: pytest.TempPathFactory):  # -> agent_build.Built
    """Real agent DLLs (mono-mcs) and signed copies (osslsigncode), built once per session;
    skips with the missing tool's name where they cannot be built (tests/agent_build.py)."""
    import agent_build

    why = agent_build.missing_tools()
    if why:
        pytest.skip(why)
    return agent_build.build(tmp_path_factory.mktemp("agent-dlls"))
