"""YARA: exhunt's own LightNeuron rules (yara/*.yar, shipped) plus a user's `--yara` folders.

Rules compile once per run; a broken user rule is a UsageError naming its file and line.
`include` is refused (a rule file cannot pull in other files), console output from rules
is dropped, and each scan is of bytes already read under the size limit and stops at a
time limit, so no rule or file can hang a run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from exhunt.errors import UsageError

SHIPPED_NAMESPACE = "exhunt"
RULE_SUFFIXES = (".yar", ".yara")
MAX_RULE_FILE_BYTES = 4 * 1024 * 1024
MAX_RULE_FILES = 1000
SCAN_TIMEOUT_SECONDS = 10

_ERROR_AT = re.compile(r"^(?P<file>.*)\((?P<line>\d+)\): (?:error: )?(?P<message>.*)$", re.DOTALL)


@dataclass
class RuleSet:
    """Compiled rules and where they came from."""

    rules: Any  # yara.Rules
    files: list[str]
    timeout: int = SCAN_TIMEOUT_SECONDS

    def scan(self, data: bytes) -> tuple[list[str], str]:
        """(names of the rules that matched, an error in plain words or "")."""
        return scan(self, data)


def shipped_rule_files() -> list[Path]:
    """The rule files packaged with exhunt."""
    folder = resources.files("exhunt.audit").joinpath("yara")
    return sorted(Path(str(item)) for item in folder.iterdir() if item.name.lower().endswith(RULE_SUFFIXES))


def user_rule_files(folder: Path) -> list[Path]:
    """Rule files (.yar/.yara) directly in `folder`, in name order; UsageError when none can be used."""
    if not folder.is_dir():
        raise UsageError(f"--yara {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in RULE_SUFFIXES and p.is_file())
    if not files:
        raise UsageError(f"--yara {folder}: no .yar or .yara files in it")
    for path in files:
        size = path.stat().st_size
        if size > MAX_RULE_FILE_BYTES:
            raise UsageError(f"{path}: YARA rule file of {size} bytes, over the {MAX_RULE_FILE_BYTES}-byte limit")
    return files


def compile_yara(extra_dirs: list[Path]) -> RuleSet:
    """Shipped rules plus every .yar/.yara file in `extra_dirs`; UsageError on a bad rule file."""
    try:
        import yara
    except ImportError as exc:
        raise UsageError(f"YARA rules need yara-python, which is not installed ({exc})") from None
    sources: dict[str, str] = {}
    for path in shipped_rule_files():
        sources[f"{SHIPPED_NAMESPACE}/{path.name}"] = str(path)
    user: list[Path] = []
    for folder in extra_dirs:
        user.extend(user_rule_files(Path(folder)))
    if len(user) > MAX_RULE_FILES:
        raise UsageError(f"--yara: {len(user)} rule files, more than {MAX_RULE_FILES}")
    for path in user:
        key = path.name
        n = 1
        while key in sources:
            n += 1
            key = f"{path.name}#{n}"
        sources[key] = str(path)
    try:
        rules = yara.compile(filepaths=sources, includes=False, error_on_warning=False)
    except yara.SyntaxError as exc:
        raise UsageError(_rule_error(str(exc))) from None
    except yara.Error as exc:
        raise UsageError(f"YARA rules could not be compiled: {exc}") from None
    return RuleSet(rules=rules, files=list(sources.values()))


def _rule_error(message: str) -> str:
    """yara's "file(line): message" as exhunt's "file:line: ..." form."""
    found = _ERROR_AT.match(message.strip())
    if not found:
        return f"YARA rule error: {message}"
    return f"{found['file']}:{found['line']}: YARA rule error: {found['message']}"


def scan(rule_set: RuleSet, data: bytes) -> tuple[list[str], str]:
    """Match the rules against bytes already read (bounded by the caller's size limit)."""
    import yara

    try:
        matches = rule_set.rules.match(
            data=data, timeout=rule_set.timeout, console_callback=_drop, warnings_callback=_ignore
        )
    except yara.TimeoutError:
        return [], f"the YARA scan stopped after {rule_set.timeout} s"
    except yara.Error as exc:
        return [], f"the YARA scan failed ({str(exc)[:200]})"
    names = []
    for match in matches:
        namespace = str(match.namespace)
        name = str(match.rule)
        names.append(name if namespace.startswith(f"{SHIPPED_NAMESPACE}/") else f"{namespace}:{name}")
    return names, ""


def _drop(_message: str) -> None:
    """Rules' console.log output: never to the terminal (it may quote the scanned bytes)."""


def _ignore(*_args: Any) -> bool:
    return False  # yara-python: a falsy return means go on scanning
