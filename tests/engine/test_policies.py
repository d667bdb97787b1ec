"""The shipped policies: clean under lint with the installed detectors, formatted, tested
with every rule seen to pass, fail and be indeterminate, and rendered."""

from pathlib import Path

import pytest

from engine.catalogue import load_fact_catalogue
from engine.loader import load_policy
from engine.render import render_policy
from engine.testing import find_test_files, run_test_file

from tests.contract import contract_declarations

ROOT = Path(__file__).resolve().parents[2] / "policies"
POLICIES = sorted(ROOT.rglob("*.policy"))


def test_installed_detectors_declare_the_documented_facts():
    real = load_fact_catalogue()
    documented = {(d.path, d.type, d.values) for _, _, facts in contract_declarations() for d in facts}
    assert {(s.path, s.type, s.values) for s in real.specs} == documented


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policy_is_clean(path):
    checked = load_policy(path, load_fact_catalogue())
    assert checked.warnings == ()
    assert all(r.rule.cite for r in checked.rules)
    assert all(any(t.lang == "ko" for t in r.rule.titles) for r in checked.rules)


@pytest.mark.parametrize("path", find_test_files([ROOT]), ids=lambda p: p.name)
def test_policy_tests_pass_with_full_coverage(path):
    result = run_test_file(path, load_fact_catalogue())
    failures = [(c.name, c.failures) for c in result.cases if not c.ok]
    assert failures == []
    assert result.coverage_gaps() == []
    assert set(result.coverage) == {r.id for r in result.policy.rules}


def test_every_policy_has_tests():
    tested = {p.name[: -len(".test.yaml")] for p in find_test_files([ROOT])}
    assert {p.name[: -len(".policy")] for p in POLICIES} <= tested


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_rendered_document(path):
    catalogue = load_fact_catalogue()
    checked = load_policy(path, catalogue)
    doc = render_policy(checked, catalogue)
    for r in checked.rules:
        assert f"`{r.id}`" in doc
        assert r.rule.cite in doc
        for t in r.rule.titles:
            assert t.text in doc
    assert "원천성" in doc
