"""Every input yields exactly the tables, file reports and alerts frozen in tests/oracle/ (see oracle.py)."""

from __future__ import annotations

from typing import Any

import pytest

import oracle

OWNED = oracle.cases(owned=True)
#: Without ../shared/data one placeholder case, which the shared_data fixture skips with its reason.
SHARED: list[Any] = oracle.cases(owned=False) or [("shared", None, False, False, None)]


def _diff(want: dict[str, Any], got: dict[str, Any]) -> str:
    """The first differences, part by part, in words a reader can act on."""
    out = []
    for part in sorted(set(want) | set(got)):
        w, g = want.get(part), got.get(part)
        if w == g:
            continue
        if isinstance(w, dict) and isinstance(g, dict):
            for name in sorted(set(w) | set(g)):
                if w.get(name) != g.get(name):
                    out.append(f"{part}.{name}: {_rows(w.get(name), g.get(name))}")
        else:
            out.append(f"{part}: {_rows(w, g)}")
    return "\n".join(out)


def _rows(w: Any, g: Any) -> str:
    if isinstance(w, list) and isinstance(g, list) and all(isinstance(x, str) for x in w + g):
        lost = sorted(set(w) - set(g))[:3]
        new = sorted(set(g) - set(w))[:3]
        return f"{len(w)} rows frozen, {len(g)} now; frozen only: {lost}; now only: {new}"
    return f"frozen {w!r}, now {g!r}"


@pytest.mark.parametrize("case", OWNED, ids=[c[0] for c in OWNED])
def test_owned_inputs_match_the_oracle(case: oracle.Case) -> None:
    frozen = oracle.load_store(owned=True)
    assert case[0] in frozen, f"{case[0]} is not frozen: run python tests/oracle.py --freeze"
    now = oracle.compute(case, whole=True)
    assert now == frozen[case[0]], _diff(frozen[case[0]], now)


@pytest.mark.parametrize("case", SHARED, ids=[c[0] for c in SHARED])
def test_shared_inputs_match_the_oracle(case: oracle.Case, shared_data: object) -> None:
    frozen = oracle.load_store(owned=False)
    assert case[0] in frozen, f"{case[0]} is not frozen: run python tests/oracle.py --freeze"
    now = oracle.compute(case, whole=False)
    assert now == frozen[case[0]], (
        _diff(frozen[case[0]], now) + "\n(digests only: diff `python tests/oracle.py --dump DIR` of two checkouts)"
    )


def test_every_shipped_demo_file_is_a_case() -> None:
    names = {c[0] for c in OWNED}
    assert {f"demo/{p.name}" for p in (oracle.REPO / "demo").iterdir()} <= names
