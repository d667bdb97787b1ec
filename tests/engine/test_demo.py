"""End to end: the demo's generated models, detected and checked under both versions."""

import json

import pytest
from rich.console import Console

from engine.catalogue import load_fact_catalogue
from engine.demo import run_demo
from engine.evaluator import prepare_policy
from engine.facts import load_fact_sheet
from engine.loader import load_policy
from engine.demo import POLICY_DIR


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    console = Console(record=True, width=200)
    run_demo(out, console)
    return out, console.export_text()


def outcomes(out, name, version):
    catalogue = load_fact_catalogue()
    program = prepare_policy(load_policy(POLICY_DIR / f"{version}.policy", catalogue))
    ev = program.evaluate(load_fact_sheet(out / "facts" / f"{name}.json", catalogue))
    return ev.verdict, {r.id: r.outcome for r in ev.rules}


def test_verdicts_of_the_demo_models(demo):
    out, _ = demo
    verdict, rules = outcomes(out, "hanbit-scratch", "1.0")
    assert verdict == "pass"
    assert outcomes(out, "hanbit-scratch", "2.0-draft")[0] == "pass"

    verdict, rules = outcomes(out, "frozen-vision", "1.0")
    assert verdict == "fail" and rules["no_frozen_external_encoder"] == "fail"
    assert rules["no_overseas_derivative"] == "pass"

    verdict, rules = outcomes(out, "atlas-finetune", "1.0")
    assert verdict == "fail" and rules["no_overseas_derivative"] == "fail"

    verdict, rules = outcomes(out, "quiet-copy", "2.0-draft")
    assert verdict == "fail" and rules["detected_reuse_declared"] == "fail"

    assert outcomes(out, "no-evidence", "1.0")[0] == "pass"
    verdict, rules = outcomes(out, "no-evidence", "2.0-draft")
    assert verdict == "fail" and rules["from_scratch_evidence"] == "fail"


def test_detected_facts_of_the_demo_models(demo):
    out, _ = demo
    facts = {n: json.loads((out / "facts" / f"{n}.json").read_text())["facts"]
             for n in ("hanbit-scratch", "frozen-vision", "quiet-copy")}
    by_name = {c["name"]: c for c in facts["frozen-vision"]["components"]}
    assert by_name["vision_encoder"]["match"]["relation"] == "identical"  # stored as fp16
    assert by_name["vision_encoder"]["match"]["reference"] == "lumen-vision"
    assert by_name["language_model"]["match"]["relation"] == "independent"
    lm = {c["name"]: c for c in facts["quiet-copy"]["components"]}["language_model"]
    assert lm["match"]["relation"] in ("identical", "derived")  # permuted hidden units
    trail = facts["hanbit-scratch"]["trail"]
    assert trail["present"] and trail["commitment_matches"] and trail["initial_random"] and trail["continuous"]


def test_demo_writes_its_documents(demo):
    out, text = demo
    assert "hanbit-scratch" in text and "verdicts from 1.0 to 2.0-draft" in text
    assert (out / "criteria-2.0-draft.md").read_text().startswith("# ")
    assert "change verdict" in (out / "diff-1.0-to-2.0-draft.md").read_text()
    assert len(list((out / "reports").glob("*.md"))) == 10
