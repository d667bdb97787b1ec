"""Fact sheets and policy test files of arbitrary content: the command line answers with
a verdict or one clear line naming the file (exit 2), never an internal error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main

from .test_bad_input import LEAKS

ROOT = Path(__file__).resolve().parents[2]
V2 = ROOT / "policies" / "msit-originality" / "2.0-draft.policy"
GOOD = json.loads((ROOT / "examples" / "facts" / "from-scratch-committed.json").read_text(encoding="utf-8"))

KEYS = st.sampled_from(["schema", "subject", "detectors", "facts", "name", "version", "emits", "components",
                        "kind", "match", "relation", "trail", "present", "declared", "card", "base_model",
                        "policy", "fixtures", "cases", "facts", "expect", "verdict", "set", "unset", "params"])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=5), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def damaged_sheet(draw) -> str:
    """A real fact sheet with one value somewhere replaced, or arbitrary JSON."""
    if draw(st.booleans()):
        return json.dumps(draw(VALUES))
    sheet = json.loads(json.dumps(GOOD))
    node, path = sheet, []
    while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
        path.append(key)
        node = node[key]
    target = sheet
    for key in path[:-1]:
        target = target[key]
    if path:
        target[path[-1]] = draw(VALUES)
    return json.dumps(sheet)


YAML_BITS = st.sampled_from(["policy: 2.0-draft.policy\n", "fixtures:\n", "cases:\n", "  - name: x\n", "    facts: f\n",
                             "    expect: {verdict: pass}\n", "  f: {}\n", "    set: {a.b: 1}\n", "    unset: [trail]\n",
                             "params: {x: 1}\n", ":", " ", "\n", "- ", "[", "]", "{", "}", "&a ", "*a", "!!python/name:os.system",
                             "<<: ", "#", "---\n", "\x00", "ü", "\t"])


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(args)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(damaged_sheet())
def test_any_fact_sheet_gives_a_verdict_or_one_clear_error(tmp_path_factory, capsys, text):
    path = tmp_path_factory.mktemp("sheet") / "facts.json"
    path.write_text(text, encoding="utf-8")
    code, err = run_cli(["check", str(path), "--policy", str(V2), "-f", "json"], capsys)
    if code in (0, 1, 3):
        assert err == ""
        return
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1 and str(path) in lines[0], lines
    assert not LEAKS.search(lines[0]), lines[0]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(YAML_BITS, max_size=30).map("".join))
def test_any_policy_test_file_gives_results_or_one_clear_error(tmp_path_factory, capsys, text):
    folder = tmp_path_factory.mktemp("tests")
    for name in ("1.0.policy", "2.0-draft.policy"):
        (folder / name).write_bytes((V2.parent / name).read_bytes())
    path = folder / "2.0-draft.test.yaml"
    path.write_text(text, encoding="utf-8")
    code, err = run_cli(["test", str(path)], capsys)
    assert code in (0, 1, 2)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and str(path) in lines[0], lines
        assert not LEAKS.search(lines[0]), lines[0]


@pytest.mark.parametrize("value", [None, [], "x", 1])
def test_a_fact_sheet_that_is_no_object(tmp_path, capsys, value):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(value))
    code, err = run_cli(["check", str(path), "--policy", str(V2)], capsys)
    assert code == 2 and len(err.splitlines()) == 1


@pytest.mark.parametrize("kind,body,problem", [
    ("sheet", '{"schema": "originality.facts/1", "facts": {"model": {"parameters": ' + "9" * 5000 + "}}}",
     "a whole number of 5000 digits"),
    ("sheet", "[" * 50_000 + "]" * 50_000, "nests too deeply"),
    ("test", "policy: 2.0-draft.policy\nfixtures:\n  a: {model: {parameters: " + "9" * 5000 + "}}\n",
     "a whole number of 5000 digits"),
    ("test", "policy: 2.0-draft.policy\nfixtures:\n  a: " + "[" * 5000 + "]" * 5000 + "\n", "nests too deeply"),
])
def test_numbers_and_nesting_past_pythons_own_limits(tmp_path, capsys, kind, body, problem):
    if kind == "sheet":
        path = tmp_path / "facts.json"
        args = ["check", str(path), "--policy", str(V2)]
    else:
        for name in ("1.0.policy", "2.0-draft.policy"):
            (tmp_path / name).write_bytes((V2.parent / name).read_bytes())
        path = tmp_path / "2.0-draft.test.yaml"
        args = ["test", str(path)]
    path.write_text(body, encoding="utf-8")
    code, err = run_cli(args, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and problem in err and "internal error" not in err


def test_a_lone_surrogate_in_a_fact_sheet_is_one_clear_problem(tmp_path, capsys):
    data = json.loads((V2.parents[2] / "examples" / "facts" / "overseas-fine-tune.json").read_text(encoding="utf-8"))
    data["subject"]["name"] = "x\ud800"
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(data))  # ASCII JSON: the surrogate is written as an escape
    code, err = run_cli(["check", str(path), "--policy", str(V2)], capsys)
    assert code == 2 and err == (f"error: {path}: subject.name: a text holds half of a UTF-16 surrogate pair "
                                 "(`\\ud800`-`\\udfff` alone), which is no character\n")
