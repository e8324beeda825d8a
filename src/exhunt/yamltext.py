"""YAML parsing for rules, schemas and test cases: libyaml's C parser when PyYAML has it.

The pure-Python parser spends about 0.1 s on the shipped rules and schemas, a fixed
cost on every run; the C one gives the same documents and the same error marks.
"""

from __future__ import annotations

from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """Parse one YAML document with safe types only."""
    return yaml.load(text, Loader=_Loader)  # _Loader is a safe loader
