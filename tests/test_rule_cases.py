"""Every shipped rule's own test cases (rules/tests/<rule>.yaml) pass, case by case."""

from __future__ import annotations

from typing import Any

import pytest

from exhunt.engine import Session
from exhunt.rule import Rule, load_rules
from exhunt.ruletest import cases_path, load_cases, run_case


def _cases() -> list[Any]:
    params = []
    for rule in load_rules():
        defaults, cases = load_cases(rule)
        for case in cases:
            params.append(pytest.param(rule, defaults, case, id=f"{rule.slug}::{case.get('name')}"))
    return params


@pytest.fixture(scope="module")
def session() -> Any:
    with Session(in_memory=True) as s:
        yield s


def test_every_rule_has_tests_with_both_kinds() -> None:
    for rule in load_rules():
        assert cases_path(rule).exists(), rule.slug
        _, cases = load_cases(rule)
        kinds = {c.get("kind") for c in cases}
        assert "true-positive" in kinds, rule.slug
        assert kinds & {"false-positive", "true-negative"}, rule.slug


@pytest.mark.parametrize(("rule", "defaults", "case"), _cases())
def test_case(session: Session, rule: Rule, defaults: dict[str, Any], case: dict[str, Any]) -> None:
    result = run_case(session, rule, defaults, case)
    assert result.passed, "\n".join(result.problems)
