"""The command line as scripts and CI pipelines use it: verbs, exit codes, report fields, bytes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jsonschema
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICIES = Path("policies/msit-originality")
V1 = str(POLICIES / "1.0.policy")
V2 = str(POLICIES / "2.0-draft.policy")
EXAMPLES = Path("examples/facts")
FORMATS = ("table", "json", "markdown", "html")

# Each example sheet and its verdict under 1.0 and under 2.0-draft.
VERDICTS = {
    "from-scratch-committed": ("pass", "pass"),
    "overseas-fine-tune": ("fail", "fail"),
    "frozen-vision-encoder": ("fail", "fail"),
    "reset-vision-encoder": ("pass", "pass"),
    "inconclusive-detection": ("indeterminate", "indeterminate"),
    "no-manifest-no-trail": ("pass", "fail"),
    "undeclared-encoder-reuse": ("pass", "fail"),
    "non-commercial-licence": ("pass", "fail"),
    "domestic-base-continued": ("fail", "fail"),
    "overseas-tokenizer": ("pass", "pass"),
}
EXIT = {"pass": 0, "fail": 1, "indeterminate": 3}


@dataclass
class Run:
    code: int | None
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ORIGINALITY_CATALOG", raising=False)
    monkeypatch.delenv("ORIGINALITY_DEBUG", raising=False)


@pytest.fixture
def cli(capsys):
    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = None  # main always ends in SystemExit
        except SystemExit as stop:
            code = stop.code
        out, err = capsys.readouterr()
        return Run(code, out, err)
    return run


def sheet(name: str) -> str:
    return str(EXAMPLES / f"{name}.json")


def schema(name: str) -> dict:
    return json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))


def validate(data: dict, schema_file: str) -> None:
    jsonschema.Draft202012Validator(schema(schema_file)).validate(data)


# -- the example fact sheets -------------------------------------------------------------


def test_the_examples_are_the_ones_the_readme_names():
    assert sorted(p.stem for p in (ROOT / EXAMPLES).glob("*.json")) == sorted(VERDICTS)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_each_example_is_canonical_and_valid(name):
    path = ROOT / EXAMPLES / f"{name}.json"
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    validate(data, "factsheet.schema.json")
    assert data["subject"]["name"] == name
    assert data["subject"]["digest"].startswith("blake3:")


@pytest.mark.parametrize("name", sorted(VERDICTS))
@pytest.mark.parametrize("version", [0, 1])
def test_each_example_has_its_verdict(cli, name, version):
    policy = (V1, V2)[version]
    want = VERDICTS[name][version]
    run = cli("check", sheet(name), "--policy", policy, "--format", "json")
    assert (run.code, run.err) == (EXIT[want], "")
    assert json.loads(run.out)["verdict"] == want


def test_the_examples_tell_their_stories(cli):
    def outcomes(name, policy):
        report = json.loads(cli("check", sheet(name), "--policy", policy, "-f", "json").out)
        return {r["id"]: r["outcome"] for r in report["rules"]}

    assert outcomes("frozen-vision-encoder", V1)["no_frozen_external_encoder"] == "fail"
    assert outcomes("overseas-fine-tune", V1)["no_overseas_derivative"] == "fail"
    domestic = outcomes("domestic-base-continued", V1)
    assert (domestic["no_overseas_derivative"], domestic["pretrained_from_scratch"]) == ("pass", "fail")
    assert outcomes("inconclusive-detection", V1)["pretrained_from_scratch"] == "indeterminate"
    reset = outcomes("reset-vision-encoder", V2)
    assert set(reset.values()) == {"pass"}
    hidden = outcomes("undeclared-encoder-reuse", V2)
    assert hidden["detected_reuse_declared"] == hidden["declared_components_agree"] == "fail"
    licence = outcomes("non-commercial-licence", V2)
    assert [k for k, v in licence.items() if v != "pass"] == ["no_license_constraints"]
    tokenizer = outcomes("overseas-tokenizer", V2)
    assert [k for k, v in tokenizer.items() if v != "pass"] == ["tokenizer_reuse"]
    assert outcomes("overseas-fine-tune", V2)["card_names_no_base_model"] == "fail"  # its card says so
    bare = outcomes("no-manifest-no-trail", V2)
    assert bare["from_scratch_evidence"] == "fail" and bare["declared_from_scratch"] == "indeterminate"


# -- check: exit codes in every format ---------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name,code", [("from-scratch-committed", 0), ("frozen-vision-encoder", 1),
                                       ("inconclusive-detection", 3)])
def test_check_exit_code_in_every_format(cli, fmt, name, code):
    run = cli("check", sheet(name), "--policy", V1, "--format", fmt)
    assert run.code == code
    assert run.err == ""
    assert name in run.out


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_invalid_input_in_every_format(cli, fmt, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "originality.facts/1"', encoding="utf-8")
    run = cli("check", bad, "--policy", V1, "--format", fmt)
    assert run.code == 2
    assert run.out == ""
    assert len(run.err_lines) == 1 and run.err.startswith(f"error: {bad}:1:")


def test_check_formats_show_the_verdict_and_rules(cli):
    md = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "markdown").out
    assert md.startswith("# frozen-vision-encoder: FAIL\n")
    assert "| `no_frozen_external_encoder` | blocking | ❌ fail |" in md
    html = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "html").out
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<code>no_frozen_external_encoder</code> — fail" in html
    table = cli("check", sheet("frozen-vision-encoder"), "--policy", V1).out
    assert "FAIL" in table and "no_frozen_external_encoder" in table


def test_html_escapes_what_the_fact_sheet_says(cli, tmp_path):
    data = json.loads((ROOT / sheet("frozen-vision-encoder")).read_text(encoding="utf-8"))
    data["subject"]["name"] = "<script>alert(1)</script>"
    data["facts"]["components"][2]["match"]["reference"] = "<img src=x onerror=alert(1)>"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    run = cli("check", path, "--policy", V1, "-f", "html")
    assert run.code == 1
    assert "<script>" not in run.out and "<img" not in run.out
    assert "&lt;script&gt;" in run.out


# -- check: the report contract ----------------------------------------------------------


def test_json_report_has_the_contract_fields(cli):
    run = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "json")
    report = json.loads(run.out)
    validate(report, "report.schema.json")
    assert report["verdict"] == "fail"
    assert set(report["policy"]) >= {"id", "version", "digest"}
    assert (report["policy"]["id"], report["policy"]["version"]) == ("msit-originality", "1.0")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", report["policy"]["digest"])
    assert report["subject"]["name"] == "frozen-vision-encoder"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", report["facts_digest"])
    assert [r["id"] for r in report["rules"]] == ["backbone_found", "no_overseas_derivative",
                                                  "no_frozen_external_encoder", "pretrained_from_scratch"]
    for rule in report["rules"]:
        assert set(rule) >= {"id", "level", "outcome", "message", "evidence"}
        assert rule["level"] in ("blocking", "advisory")
        assert rule["outcome"] in ("pass", "fail", "indeterminate")
    frozen = report["rules"][2]
    assert frozen["outcome"] == "fail"
    assert "vision_encoder reuses the weights of siglip-so400m (US) unchanged" in frozen["message"]
    evidence = {e["path"]: e for e in frozen["evidence"]}
    relation = evidence["components[2].match.relation"]
    assert (relation["value"], relation["detector"], relation["method"]) == ("identical", "weights@1.0.0", "digest")


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_every_report_validates_against_the_schema(cli, name):
    for policy in (V1, V2):
        validate(json.loads(cli("check", sheet(name), "--policy", policy, "-f", "json").out), "report.schema.json")


def test_an_indeterminate_rule_names_the_unknown_fact(cli):
    report = json.loads(cli("check", sheet("no-manifest-no-trail"), "--policy", V2, "-f", "json").out)
    rule = next(r for r in report["rules"] if r["id"] == "declared_from_scratch")
    assert rule["outcome"] == "indeterminate"
    assert "declared.from_scratch" in rule["unknown"]


@pytest.mark.parametrize("fmt", ["json", "markdown", "html"])
def test_same_inputs_same_bytes(cli, fmt):
    runs = [cli("check", sheet("undeclared-encoder-reuse"), "--policy", V2, "-f", fmt) for _ in range(2)]
    assert runs[0].out == runs[1].out and runs[0].out


def test_reformatting_the_fact_sheet_changes_nothing_in_the_report(cli, tmp_path):
    data = json.loads((ROOT / sheet("frozen-vision-encoder")).read_text(encoding="utf-8"))
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(data, separators=(",", ":"), sort_keys=False), encoding="utf-8")
    a = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "json").out
    b = cli("check", compact, "--policy", V1, "-f", "json").out
    assert a == b
    assert str(ROOT) not in a and str(tmp_path) not in b


def test_report_digest_seals_the_report(cli):
    import hashlib

    report = json.loads(cli("check", sheet("overseas-tokenizer"), "--policy", V2, "-f", "json").out)
    body = {k: v for k, v in report.items() if k != "report_digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert report["report_digest"] == "sha256:" + hashlib.sha256(canonical).hexdigest()


@pytest.mark.parametrize("fmt,start", [("json", "{"), ("markdown", "# "), ("html", "<!doctype html>"),
                                       ("table", "frozen-vision-encoder: FAIL")])
def test_output_file_is_written_and_stdout_stays_empty(cli, tmp_path, fmt, start):
    out = tmp_path / f"report.{fmt}"
    run = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", fmt, "-o", out)
    assert (run.code, run.out, run.err) == (1, "", "")
    assert out.read_text(encoding="utf-8").startswith(start)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left behind
    if fmt != "table":
        assert out.read_text(encoding="utf-8") == cli("check", sheet("frozen-vision-encoder"), "--policy", V1,
                                                      "-f", fmt).out


def test_output_file_is_replaced_whole(cli, tmp_path):
    out = tmp_path / "report.json"
    out.write_text("old contents that are longer than nothing" * 1000, encoding="utf-8")
    cli("check", sheet("from-scratch-committed"), "--policy", V1, "-f", "json", "-o", out)
    assert json.loads(out.read_text(encoding="utf-8"))["verdict"] == "pass"


# -- check: parameters and languages -----------------------------------------------------


def test_set_overrides_a_parameter(cli):
    base = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "-f", "json")
    raised = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "-f", "json",
                 "--set", "tokenizer_overlap_limit=1.01")
    outcome = lambda run: next(r["outcome"] for r in json.loads(run.out)["rules"] if r["id"] == "tokenizer_reuse")
    assert (outcome(base), outcome(raised)) == ("fail", "pass")
    report = json.loads(raised.out)
    assert report["overrides"] == {"tokenizer_overlap_limit": 1.01}
    assert report["params"]["tokenizer_overlap_limit"] == 1.01
    assert json.loads(base.out)["overrides"] == {}


def test_set_a_list_parameter_turns_a_verdict(cli):
    args = ("check", sheet("domestic-base-continued"), "--policy", V2, "-f", "json")
    before = json.loads(cli(*args).out)
    after = json.loads(cli(*args, "--set", 'own_references=["hyperclova-x-seed-3b"]').out)
    rule = lambda r: next(x["outcome"] for x in r["rules"] if x["id"] == "external_weights_reinitialized")
    assert (rule(before), rule(after)) == ("fail", "pass")
    assert after["overrides"] == {"own_references": ["hyperclova-x-seed-3b"]}


def test_set_shows_in_markdown(cli):
    md = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "-f", "markdown",
             "--set", "tokenizer_overlap_limit=1.01").out
    assert "parameters set: `tokenizer_overlap_limit = 1.01`" in md


@pytest.mark.parametrize("value", ["abc", '"0.5"', "true", "[0.5]"])
def test_set_a_number_parameter_to_a_non_number(cli, value):
    run = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "--set", f"tokenizer_overlap_limit={value}")
    assert run.code == 2 and run.out == ""
    assert len(run.err_lines) == 1 and run.err.startswith("error: --set ")
    assert "`tokenizer_overlap_limit`" in run.err and "number" in run.err


def test_set_an_unknown_parameter_suggests_the_near_one(cli):
    run = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "--set", "tokenizer_overlap_limt=0.5")
    assert run.code == 2
    assert run.err == ("error: --set `tokenizer_overlap_limt=0.5`: unknown parameter `tokenizer_overlap_limt`; "
                       "did you mean `tokenizer_overlap_limit`?\n")


def test_set_a_parameter_that_the_version_removed(cli):
    run = cli("check", sheet("overseas-tokenizer"), "--policy", V2, "--set", 'encoder_kinds=["vision_encoder"]')
    assert run.code == 2 and "unknown parameter `encoder_kinds`" in run.err


def test_lang_ko_picks_the_korean_message(cli):
    args = ("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "json")
    message = lambda run: next(r["message"] for r in json.loads(run.out)["rules"]
                               if r["id"] == "no_frozen_external_encoder")
    assert message(cli(*args)).startswith("vision_encoder reuses the weights of siglip-so400m")
    assert message(cli(*args, "--lang", "en")).startswith("vision_encoder reuses the weights of siglip-so400m")
    assert message(cli(*args, "--lang", "ko")) == "vision_encoder은(는) siglip-so400m(US)의 가중치를 그대로 사용합니다"
    md = cli("check", sheet("frozen-vision-encoder"), "--policy", V1, "-f", "markdown", "--lang", "ko").out
    assert "가중치를 그대로 사용합니다" in md


def test_lang_falls_back_to_the_only_message(cli):
    # 2.0-draft's new rules have one message, in English: every language gets it.
    report = json.loads(cli("check", sheet("non-commercial-licence"), "--policy", V2, "-f", "json",
                            "--lang", "ko").out)
    rule = next(r for r in report["rules"] if r["id"] == "no_license_constraints")
    assert rule["message"] == "audio_encoder carries the licence cc-by-nc-4.0, which constrains development"


# -- lint ------------------------------------------------------------------------------


def test_lint_clean(cli):
    run = cli("lint", V1, V2)
    assert (run.code, run.out, run.err) == (0, "2 policies clean\n", "")


def test_lint_json_clean_is_an_empty_list(cli):
    run = cli("lint", "--format", "json", V1, V2)
    assert run.code == 0 and json.loads(run.out) == []


BAD_POLICY = '''policy "t"
version "1"

rule frozen {
  level blocking
  cite "criterion 2"
  forbid any c in components where c.kind == "vision_encodr":
    c.match.relaton == "identical"
  message "{c.name} is frozen"
}
'''


def test_lint_errors_exit_2_with_every_problem(cli, tmp_path):
    path = tmp_path / "t.policy"
    path.write_text(BAD_POLICY, encoding="utf-8")
    run = cli("lint", path)
    assert run.code == 2
    assert "error[unknown_value]" in run.out and "error[unknown_fact]" in run.out
    assert "did you mean `relation`?" in run.out
    assert "8 |     c.match.relaton == \"identical\"" in run.out
    assert run.out.rstrip().endswith("2 errors, 0 warnings")


def test_lint_json_diagnostics_have_code_line_column(cli, tmp_path):
    path = tmp_path / "t.policy"
    path.write_text(BAD_POLICY, encoding="utf-8")
    run = cli("lint", "--format", "json", path)
    assert run.code == 2
    diags = json.loads(run.out)
    assert [(d["code"], d["line"], d["column"], d["text"]) for d in diags] == [
        ("unknown_value", 7, 46, '"vision_encodr"'),
        ("unknown_fact", 8, 13, "relaton"),
    ]
    for d in diags:
        assert d["severity"] == "error" and d["file"] == str(path) and d["message"]


def test_lint_warnings_only_exit_1(cli, tmp_path):
    path = tmp_path / "t.policy"
    path.write_text(BAD_POLICY.replace('  cite "criterion 2"\n', "").replace("vision_encodr", "vision_encoder")
                    .replace("relaton", "relation"), encoding="utf-8")
    run = cli("lint", "-f", "json", path)
    assert run.code == 1
    assert [(d["code"], d["severity"]) for d in json.loads(run.out)] == [("missing_citation", "warning")]


def test_lint_reports_every_file(cli, tmp_path):
    a, b = tmp_path / "a.policy", tmp_path / "b.policy"
    a.write_text(BAD_POLICY, encoding="utf-8")
    b.write_text(BAD_POLICY.replace("relaton", "relation"), encoding="utf-8")
    diags = json.loads(cli("lint", "-f", "json", V1, a, b).out)
    assert [(Path(d["file"]).name, d["code"]) for d in diags] == [
        ("a.policy", "unknown_value"), ("a.policy", "unknown_fact"), ("b.policy", "unknown_value")]


# -- fmt -------------------------------------------------------------------------------


def _messy(tmp_path) -> Path:
    text = (ROOT / V1).read_text(encoding="utf-8")
    text = text.replace('param domestic_origins: list[string] = ["KR"]',
                        'param   domestic_origins :list[string]=[ "KR" ]')
    text = text.replace("  level blocking", "      level    blocking")
    path = tmp_path / "1.0.policy"
    path.write_text(text, encoding="utf-8")
    return path


def test_fmt_check_clean(cli):
    run = cli("fmt", "--check", V1, V2)
    assert (run.code, run.out, run.err) == (0, "", "")


def test_fmt_check_reports_and_leaves_the_file(cli, tmp_path):
    path = _messy(tmp_path)
    before = path.read_bytes()
    run = cli("fmt", "--check", V1, path)
    assert run.code == 1
    assert run.out == f"{path}: not formatted\n"
    assert path.read_bytes() == before


def test_fmt_rewrites_in_place_and_is_idempotent(cli, tmp_path):
    path = _messy(tmp_path)
    run = cli("fmt", path)
    assert run.code == 0 and run.out == f"{path}: formatted\n"
    first = path.read_bytes()
    assert first == (ROOT / V1).read_bytes()  # comments kept, layout canonical
    assert cli("fmt", "--check", path).code == 0
    run = cli("fmt", path)
    assert run.code == 0 and run.out == ""
    assert path.read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_fmt_keeps_meaning(cli, tmp_path):
    path = _messy(tmp_path)
    before = cli("check", sheet("frozen-vision-encoder"), "--policy", path, "-f", "json").out
    cli("fmt", path)
    after = cli("check", sheet("frozen-vision-encoder"), "--policy", path, "-f", "json").out
    strip = lambda text: {k: v for k, v in json.loads(text).items() if k not in ("policy", "report_digest")}
    assert strip(before) == strip(after)


# -- test ------------------------------------------------------------------------------


def test_policy_tests_pass(cli):
    run = cli("test", "policies/")
    assert run.code == 0, run.out
    assert re.search(r"^(\d+) of \1 cases pass$", run.out, re.M)
    assert "FAIL" not in run.out


def _copy_version(tmp_path, version="1.0") -> Path:
    for suffix in (".policy", ".test.yaml"):
        shutil.copy(ROOT / POLICIES / f"{version}{suffix}", tmp_path / f"{version}{suffix}")
    return tmp_path / f"{version}.test.yaml"


def test_a_failing_case_exits_1_and_says_where(cli, tmp_path):
    test_file = _copy_version(tmp_path)
    text = test_file.read_text(encoding="utf-8")
    text = text.replace("expect: {verdict: fail, no_overseas_derivative: pass, no_frozen_external_encoder: fail,",
                        "expect: {verdict: pass, no_overseas_derivative: pass, no_frozen_external_encoder: pass,", 1)
    test_file.write_text(text, encoding="utf-8")
    run = cli("test", tmp_path)
    assert run.code == 1
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "an overseas vision encoder used frozen" in l)
    assert f"FAIL  {test_file}:{line}  an overseas vision encoder used frozen fails criterion 2" in run.out
    assert "verdict: expected pass, got fail" in run.out
    assert "rule `no_frozen_external_encoder`: expected pass, got fail" in run.out


def test_a_failing_message_expectation_exits_1(cli, tmp_path):
    test_file = _copy_version(tmp_path)
    text = test_file.read_text(encoding="utf-8").replace("reuses the weights of siglip-so400m (US) unchanged",
                                                         "reuses the weights of siglip-so400m (CN) unchanged")
    test_file.write_text(text, encoding="utf-8")
    run = cli("test", test_file)
    assert run.code == 1 and "message" in run.out and "(CN)" in run.out


def test_a_fixture_text_yaml_reads_as_false_says_to_quote_it(cli, tmp_path):
    test_file = _copy_version(tmp_path)
    text = test_file.read_text(encoding="utf-8").replace("origin: US,", "origin: NO,", 1)  # Norway
    test_file.write_text(text, encoding="utf-8")
    run = cli("test", test_file)
    assert run.code == 2 and "expected a text, got `false`" in run.err and "quote the text" in run.err


def test_coverage_is_the_policys_across_its_test_files(cli, tmp_path):
    (tmp_path / "1.0.policy").write_text('policy "t"\nversion "1.0"\nrule r {\n  level blocking\n  cite "x"\n'
                                         '  require trail.checkpoints >= 2\n  message "m"\n}\n', encoding="utf-8")
    (tmp_path / "1.0.test.yaml").write_text(
        "cases:\n  - name: pass\n    facts: {trail: {checkpoints: 3}}\n    expect: {r: pass}\n"
        "  - name: fail\n    facts: {trail: {checkpoints: 1}}\n    expect: {r: fail}\n", encoding="utf-8")
    assert cli("test", tmp_path / "1.0.test.yaml").code == 1  # alone, it never sees `r` indeterminate
    (tmp_path / "1.0-more.test.yaml").write_text(
        "policy: 1.0.policy\ncases:\n  - name: unknown\n    facts: {}\n    expect: {r: indeterminate}\n",
        encoding="utf-8")
    run = cli("test", tmp_path)
    assert run.code == 0 and "gap" not in run.out and run.out.endswith("3 of 3 cases pass\n")


def test_a_coverage_gap_exits_1_unless_waived(cli, tmp_path):
    test_file = _copy_version(tmp_path)
    cases = test_file.read_text(encoding="utf-8").split("\n  - name: ")
    # keep the fixtures and the first case only: every rule then only ever passes
    test_file.write_text(cases[0] + "\n  - name: " + cases[1], encoding="utf-8")
    run = cli("test", test_file)
    assert run.code == 1 and "gap" in run.out and "never expected to fail, indeterminate" in run.out
    assert cli("test", "--no-coverage", test_file).code == 0


# -- render ----------------------------------------------------------------------------


def _quoted(policy: str, field: str) -> list[str]:
    text = (ROOT / policy).read_text(encoding="utf-8")
    return re.findall(rf'^\s*{field} "(.*)"$', text, re.M)


@pytest.mark.parametrize("policy", [V1, V2])
def test_render_has_every_title_and_citation(cli, policy):
    run = cli("render", policy)
    assert run.code == 0 and run.err == ""
    doc = run.out
    titles = _quoted(policy, "title ko") + _quoted(policy, "title en")
    cites = _quoted(policy, "cite")
    assert titles and cites
    for text in titles + cites:
        assert text in doc
    assert re.search("[\uac00-\ud7a3]", doc)  # Korean text


def test_render_includes_inherited_rules_and_not_removed_ones(cli):
    doc = cli("render", V2).out
    assert "`pretrained_from_scratch`" in doc and "since version `1.0`" in doc
    assert "`no_frozen_external_encoder`" not in doc
    assert "Open-source code and published architectures may be used" in doc


def test_render_to_a_file(cli, tmp_path):
    out = tmp_path / "criteria.md"
    run = cli("render", V1, "-o", out)
    assert (run.code, run.out) == (0, "")
    assert out.read_text(encoding="utf-8") == cli("render", V1).out


# -- diff ------------------------------------------------------------------------------

CHANGED = {"no-manifest-no-trail", "non-commercial-licence", "undeclared-encoder-reuse"}


def test_diff_json_lists_the_sheets_whose_verdict_changes(cli):
    run = cli("diff", "--old", V1, "--new", V2, "--format", "json", str(EXAMPLES) + "/")
    assert (run.code, run.err) == (0, "")
    diff = json.loads(run.out)
    validate(diff, "diff.schema.json")
    assert diff["summary"]["sheets"] == len(VERDICTS)
    assert diff["summary"]["verdicts_changed"] == len(CHANGED)
    assert diff["summary"]["transitions"]["pass → fail"] == len(CHANGED)
    changed = {s["subject"]: s for s in diff["sheets"] if s["verdict_changed"]}
    assert set(changed) == CHANGED
    for s in changed.values():
        assert (s["old"], s["new"]) == ("pass", "fail")
        assert s["sheet"] == str(EXAMPLES / f"{s['subject']}.json")
    licence = {r["id"]: r for r in changed["non-commercial-licence"]["rules"]}
    assert (licence["no_license_constraints"]["old"], licence["no_license_constraints"]["new"]) == (None, "fail")
    assert licence["no_license_constraints"]["why"] == ["rule added in 2.0-draft"]
    assert "cc-by-nc-4.0" in licence["no_license_constraints"]["message"]
    assert licence["no_frozen_external_encoder"]["why"] == ["rule removed in 2.0-draft"]
    rules = {r["id"]: r["change"] for r in diff["rules"]}
    assert rules["no_frozen_external_encoder"] == "removed"
    assert rules["pretrained_from_scratch"] == "unchanged"
    assert rules["no_license_constraints"] == "added"


def test_diff_json_lists_rule_only_changes_on_request(cli):
    args = ("diff", "--old", V1, "--new", V2, "-f", "json", sheet("overseas-tokenizer"))
    quiet = json.loads(cli(*args).out)
    assert quiet["sheets"] == [] and quiet["summary"]["verdicts_changed"] == 0
    assert quiet["summary"]["rule_outcomes_changed"]["tokenizer_reuse"] == {"absent → fail": 1}
    diff = json.loads(cli(*args, "--every-change").out)
    validate(diff, "diff.schema.json")
    [entry] = diff["sheets"]
    assert (entry["old"], entry["new"], entry["verdict_changed"]) == ("pass", "pass", False)
    assert any(r["id"] == "tokenizer_reuse" and r["new"] == "fail" for r in entry["rules"])


def test_diff_says_why_when_a_parameter_changes(cli):
    diff = json.loads(cli("diff", "--old", V2, "--new", V2, "--set-new", "tokenizer_overlap_limit=0.2", "-f", "json",
                          "--every-change", sheet("from-scratch-committed"), sheet("overseas-tokenizer")).out)
    validate(diff, "diff.schema.json")
    [rule] = [r for r in diff["rules"] if r["change"] != "unchanged"]
    assert rule == {"id": "tokenizer_reuse", "change": "changed",
                    "details": ["parameter `tokenizer_overlap_limit` 0.9 → 0.2"]}
    [entry] = diff["sheets"]
    assert entry["subject"] == "from-scratch-committed" and not entry["verdict_changed"]
    assert entry["rules"][0]["why"] == ["parameter `tokenizer_overlap_limit` 0.9 → 0.2"]
    assert diff["new"]["params"]["tokenizer_overlap_limit"] == 0.2


def _revision(tmp_path: Path, rule_id: str, edit: Callable[[str], str]) -> Path:
    """A version 1.1 of the shipped 1.0 beside a copy of it, redefining one rule as `edit`
    rewrites its text."""
    shutil.copy(V1, tmp_path / "1.0.policy")
    text = (ROOT / V1).read_text(encoding="utf-8")
    start = text.index(f"rule {rule_id} {{")
    block = text[start:text.index("\n}\n", start) + 3]
    path = tmp_path / "1.1.policy"
    path.write_text('policy "msit-originality"\nversion "1.1"\nextends "1.0"\n\n' + edit(block), encoding="utf-8")
    return path


@pytest.mark.parametrize("level,moved", [("advisory", "fail → pass"), ("blocking", None)])
def test_diff_names_a_rule_whose_level_alone_moves_a_verdict(cli, tmp_path, level, moved):
    _revision(tmp_path, "no_frozen_external_encoder", lambda block: block.replace("level blocking", f"level {level}"))
    args = ("diff", "--old", tmp_path / "1.0.policy", "--new", tmp_path / "1.1.policy", sheet("frozen-vision-encoder"))
    diff = json.loads(cli(*args, "-f", "json").out)
    validate(diff, "diff.schema.json")
    if moved is None:  # unchanged: nothing to say
        assert diff["sheets"] == [] and diff["summary"]["verdicts_changed"] == 0
        return
    [entry] = diff["sheets"]
    assert f"{entry['old']} → {entry['new']}" == moved
    [rule] = entry["rules"]
    assert (rule["id"], rule["old"], rule["new"], rule["old_level"], rule["level"]) == (
        "no_frozen_external_encoder", "fail", "fail", "blocking", "advisory")
    assert rule["why"] == ["level blocking → advisory"]
    assert diff["summary"]["rule_outcomes_changed"] == {}  # no outcome changed
    for fmt in ("markdown", "table"):
        assert "no_frozen_external_encoder" in cli(*args, "-f", fmt).out.split("change verdict")[-1], fmt


def test_diff_reports_a_changed_note_as_wording(cli, tmp_path):
    _revision(tmp_path, "backbone_found", lambda block: block.replace(
        "  level blocking", '  note "a pickle-only submission fails this rule"\n  level blocking'))
    diff = json.loads(cli("diff", "--old", tmp_path / "1.0.policy", "--new", tmp_path / "1.1.policy",
                          sheet("frozen-vision-encoder"), "-f", "json").out)
    assert {r["id"]: r for r in diff["rules"]}["backbone_found"] == {
        "id": "backbone_found", "change": "changed", "details": ["wording changed"]}


def test_diff_carries_its_own_digest_whatever_the_paths(cli, tmp_path):
    copy = tmp_path / "archive"
    shutil.copytree(EXAMPLES, copy)
    runs = [json.loads(cli("diff", "--old", V1, "--new", V2, "-f", "json", folder).out)
            for folder in (str(EXAMPLES), str(EXAMPLES.resolve()), str(copy))]
    assert runs[0]["sheets"] != runs[2]["sheets"]  # the paths differ ...
    assert len({r["diff_digest"] for r in runs}) == 1  # ... the digest does not
    body = {k: v for k, v in runs[0].items() if k != "diff_digest"}
    body["sheets"] = sorted(({k: v for k, v in x.items() if k != "sheet"} for x in body["sheets"]),
                            key=lambda x: (not x["verdict_changed"], x["facts_digest"], x["subject"]))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    assert runs[0]["diff_digest"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert runs[0]["diff_digest"] in cli("diff", "--old", V1, "--new", V2, "-f", "markdown", str(EXAMPLES)).out


def test_diff_skips_json_in_a_folder_that_is_no_fact_sheet_and_says_so(cli, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(EXAMPLES, archive)
    assert cli("check", archive / "overseas-fine-tune.json", "--policy", V2, "-f", "json",
               "-o", archive / "overseas-fine-tune.report.json").code == 1
    assert cli("diff", "--old", V1, "--new", V2, archive, "-f", "json", "-o", archive / "round-1.json").code == 0
    (archive / "model").mkdir()
    (archive / "model" / "config.json").write_text('{"model_type": "llama"}')
    run = cli("diff", "--old", V1, "--new", V2, archive, "-f", "json")
    assert run.code == 0 and json.loads(run.out)["summary"]["sheets"] == len(VERDICTS)
    assert run.err.startswith("note: skipped 3 JSON files that are not a fact sheet (first: ")
    # Named on the command line, a file must be a fact sheet.
    run = cli("diff", "--old", V1, "--new", V2, archive / "round-1.json")
    assert run.code == 2 and "round-1.json" in run.err


def test_diff_markdown(cli):
    run = cli("diff", "--old", V1, "--new", V2, "-f", "markdown", str(EXAMPLES))
    assert run.code == 0
    md = run.out
    assert md.startswith("# Verdicts from `msit-originality` 1.0 to 2.0-draft\n")
    assert f"{len(CHANGED)} of {len(VERDICTS)} fact sheets change verdict." in md
    listed = re.findall(r"^- `[^`]+` \(([^)]+)\): (\w+) → (\w+)$", md, re.M)
    assert sorted(listed) == sorted((name, "pass", "fail") for name in CHANGED)
    assert "`no_license_constraints` absent → fail (rule added in 2.0-draft)" in md
    assert "overseas-tokenizer" not in md  # its verdict stays


def test_diff_table(cli):
    run = cli("diff", "--old", V1, "--new", V2, str(EXAMPLES))
    assert run.code == 0
    assert f"{len(CHANGED)} of {len(VERDICTS)} fact sheets change verdict from 1.0 to 2.0-draft" in run.out
    for name in CHANGED:
        assert f"{name}.json: pass → fail" in run.out


@pytest.mark.parametrize("fmt", ["json", "markdown"])
def test_diff_same_inputs_same_bytes(cli, fmt):
    runs = [cli("diff", "--old", V1, "--new", V2, "-f", fmt, str(EXAMPLES)) for _ in range(2)]
    assert runs[0].out == runs[1].out


def test_diff_sheet_order_does_not_depend_on_argument_order(cli):
    names = sorted(VERDICTS)
    a = cli("diff", "--old", V1, "--new", V2, "-f", "json", *map(sheet, names)).out
    b = cli("diff", "--old", V1, "--new", V2, "-f", "json", *map(sheet, reversed(names))).out
    assert a == b


def test_diff_to_a_file(cli, tmp_path):
    out = tmp_path / "diff.md"
    run = cli("diff", "--old", V1, "--new", V2, "-f", "markdown", "-o", out, str(EXAMPLES))
    assert (run.code, run.out) == (0, "")
    assert out.read_text(encoding="utf-8") == cli("diff", "--old", V1, "--new", V2, "-f", "markdown",
                                                  str(EXAMPLES)).out
    # The table, as plain text, when the format is the table.
    table = tmp_path / "diff.txt"
    assert cli("diff", "--old", V1, "--new", V2, "-o", table, str(EXAMPLES)).code == 0
    text = table.read_text(encoding="utf-8")
    assert "fact sheets change verdict" in text and "old → new" in text and "\x1b" not in text and "|---|" not in text


# -- catalogue -------------------------------------------------------------------------


def _reference(folder: Path, id: str = "llama-3-8b", origin: str = "US") -> None:
    (folder / id).mkdir(parents=True)
    (folder / id / "reference.json").write_text(json.dumps(
        {"schema_version": 1, "id": id, "origin": origin, "organisation": "Meta", "license": "llama3",
         "components": {}}), encoding="utf-8")


def test_catalog_list_empty(cli, tmp_path):
    run = cli("catalog", "list", "--catalog", tmp_path, "-f", "json")
    assert (run.code, json.loads(run.out), run.err) == (0, [], "")
    run = cli("catalog", "list", "--catalog", tmp_path)
    assert run.code == 0 and "id" in run.out


def test_catalog_list_without_a_catalogue(cli):
    run = cli("catalog", "list")
    assert run.code == 2
    assert run.err == "error: no catalogue: pass --catalog DIR or set ORIGINALITY_CATALOG\n"


def test_catalog_list_missing_catalogue(cli, tmp_path):
    run = cli("catalog", "list", "--catalog", tmp_path / "nowhere")
    assert run.code == 2
    assert run.err == f"error: {tmp_path / 'nowhere'}: catalogue folder does not exist\n"


def test_catalog_env_is_honoured_by_list(cli, tmp_path, monkeypatch):
    _reference(tmp_path)
    monkeypatch.setenv("ORIGINALITY_CATALOG", str(tmp_path))
    run = cli("catalog", "list", "-f", "json")
    assert run.code == 0
    [ref] = json.loads(run.out)
    assert (ref["id"], ref["origin"], ref["license"]) == ("llama-3-8b", "US", "llama3")
    other = tmp_path / "other"
    other.mkdir()
    assert json.loads(cli("catalog", "list", "-f", "json", "--catalog", other).out) == []  # the flag wins


def _tiny_model(folder: Path, seed: int = 0) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    tensors = {f"model.layers.{i}.mlp.up_proj.weight": rng.normal(0, 0.02, (64, 32)).astype(np.float32)
               for i in range(2)}
    tensors["model.embed_tokens.weight"] = rng.normal(0, 0.02, (100, 32)).astype(np.float32)
    tensors["lm_head.weight"] = rng.normal(0, 0.02, (100, 32)).astype(np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                    "hidden_size": 32, "vocab_size": 100}), encoding="utf-8")
    return folder


def test_catalog_env_is_honoured_by_add_and_check(cli, tmp_path, monkeypatch):
    model = _tiny_model(tmp_path / "tiny")
    catalog = tmp_path / "catalog"
    monkeypatch.setenv("ORIGINALITY_CATALOG", str(catalog))
    run = cli("catalog", "add", model, "--id", "tiny-ref", "--origin", "US")
    assert run.code == 0 and "tiny-ref" in run.out
    assert (catalog / "tiny-ref" / "reference.json").is_file()
    # With the catalogue (from the environment) the copy is recognised; without, nothing is.
    report = json.loads(cli("check", model, "--policy", V1, "-f", "json").out)
    assert report["verdict"] == "fail"
    assert report["subject"]["name"] == "tiny"
    monkeypatch.delenv("ORIGINALITY_CATALOG")
    run = cli("check", model, "--policy", V1, "-f", "json")
    assert run.code == 3 and json.loads(run.out)["verdict"] == "indeterminate"


def test_outputs_never_go_over_a_catalogue_file(cli, tmp_path):
    model = _tiny_model(tmp_path / "tiny")
    catalog = tmp_path / "catalog"
    assert cli("catalog", "add", model, "--id", "tiny-ref", "--origin", "US", "--catalog", catalog).code == 0
    ref = catalog / "tiny-ref" / "reference.json"
    before = ref.read_bytes()
    for args in (("detect", model), ("check", model, "--policy", V1, "-f", "json")):
        run = cli(*args, "--catalog", catalog, "-o", ref)
        assert run.code == 2 and "which this command reads" in run.err, args
    assert ref.read_bytes() == before


def test_detect_writes_a_sheet_that_check_reads_alike(cli, tmp_path):
    model = _tiny_model(tmp_path / "tiny")
    out = tmp_path / "tiny.json"
    run = cli("detect", model, "-o", out)
    assert (run.code, run.out) == (0, "")
    data = json.loads(out.read_text(encoding="utf-8"))
    validate(data, "factsheet.schema.json")
    from_sheet = cli("check", out, "--policy", V1, "-f", "json").out
    from_folder = cli("check", model, "--policy", V1, "-f", "json").out
    assert from_sheet == from_folder


def test_detect_never_writes_over_a_file_of_the_model(cli, tmp_path):
    model = _tiny_model(tmp_path / "tiny")
    config = model / "config.json"
    before = config.read_bytes()
    run = cli("detect", model, "-o", config)
    assert run.code == 2 and "which this command reads" in run.err and config.read_bytes() == before
    # Nor a new file beside them: the next reading of the folder would take it in.
    run = cli("detect", model, "-o", model / "facts.json")
    assert run.code == 2 and "which this command reads" in run.err and not (model / "facts.json").exists()


# -- init ------------------------------------------------------------------------------


def _template(folder: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    folder.mkdir()
    save_file({"embed.weight": np.zeros((16, 8), np.float32), "norm.weight": np.zeros(8, np.float32),
               "proj.bias": np.ones(8, np.float32)}, str(folder / "model.safetensors"))
    return folder


def test_init_writes_step0_and_prints_its_commitment(cli, tmp_path):
    tpl = _template(tmp_path / "tpl")
    run = cli("init", tpl, "--seed", "3", "--std", "0.02", "-o", tmp_path / "checkpoints" / "step-0")
    assert run.code == 0, run.err
    promise = json.loads(run.out)
    assert promise["init"] == "originality/1" and promise["seed"] == 3 and promise["std"] == 0.02
    assert promise["step0_digest"].startswith("blake3:")
    assert (tmp_path / "checkpoints" / "step-0" / "model.safetensors").is_file()
    # The same again, the commitment to a file: the same bytes.
    run = cli("init", tpl, "--seed", "3", "--std", "0.02", "-o", tmp_path / "again",
              "--commitment", tmp_path / "commitment.json")
    assert run.code == 0
    assert json.loads((tmp_path / "commitment.json").read_text()) == promise
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        tmp_path / "checkpoints" / "step-0" / "model.safetensors").read_bytes()


@pytest.mark.parametrize(("args", "problem"), [
    (("--seed", "-1", "--std", "0.02"), "seed must be a whole number"),
    (("--seed", "1", "--std", "0"), "std must be a number above 0"),
    (("--seed", "1", "--std", "inf"), "std must be a number above 0"),
    (("--seed", "1", "--std", "1e308"), "at most 1e30"),
])
def test_init_bad_values_exit_2_with_one_line(cli, tmp_path, args, problem):
    run = cli("init", _template(tmp_path / "tpl"), *args, "-o", tmp_path / "out")
    assert run.code == 2
    assert len(run.err_lines) == 1 and problem in run.err
    assert not (tmp_path / "out").exists()


def test_init_refuses_a_used_output_folder(cli, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    run = cli("init", _template(tmp_path / "tpl"), "--seed", "1", "--std", "0.02", "-o", tmp_path / "out")
    assert run.code == 2 and len(run.err_lines) == 1
    assert "not an empty folder" in run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("where", ["missing/commitment.json", "."])
def test_init_with_a_commitment_that_cannot_be_written_writes_nothing(cli, tmp_path, where):
    run = cli("init", _template(tmp_path / "tpl"), "--seed", "1", "--std", "0.02", "-o", tmp_path / "out",
              "--commitment", tmp_path / where)
    assert run.code == 2 and len(run.err_lines) == 1
    assert not (tmp_path / "out").exists()


def test_init_removes_step0_when_its_commitment_fails_to_be_written(cli, tmp_path, monkeypatch):
    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_text", full_disk)
    run = cli("init", _template(tmp_path / "tpl"), "--seed", "1", "--std", "0.02", "-o", tmp_path / "out",
              "--commitment", tmp_path / "commitment.json")
    assert run.code == 2 and "no space left on device" in run.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tpl"]


# -- usage errors ----------------------------------------------------------------------


@pytest.mark.parametrize("args,word", [
    (("check", "examples/facts/from-scratch-committed.json"), "--policy"),
    (("check", "examples/facts/from-scratch-committed.json", "--policy", V1, "--bogus"), "--bogus"),
    (("frobnicate",), "frobnicate"),
])
def test_usage_errors_are_one_line_and_exit_2(cli, args, word):
    run = cli(*args)
    assert run.code == 2
    assert len(run.err_lines) == 1 and word in run.err and "Traceback" not in run.err


def test_help_exits_0(cli):
    run = cli("--help")
    assert run.code == 0 and "check" in run.out and "diff" in run.out
    run = cli("check", "--help")
    assert run.code == 0 and "--policy" in run.out


# -- out of process --------------------------------------------------------------------


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORIGINALITY_")}
    env["COLUMNS"] = "100"
    return env


def test_python_dash_m_engine(tmp_path):
    out = tmp_path / "r.json"
    done = subprocess.run([sys.executable, "-m", "engine", "check", sheet("frozen-vision-encoder"), "--policy", V1,
                           "-f", "json", "-o", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")
    assert json.loads(out.read_text(encoding="utf-8"))["verdict"] == "fail"


def test_console_script():
    script = Path(sys.executable).with_name("originality")
    assert script.exists()
    done = subprocess.run([str(script), "check", sheet("inconclusive-detection"), "--policy", V1, "-f", "json"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and done.stderr == ""
    assert json.loads(done.stdout)["verdict"] == "indeterminate"
    bad = subprocess.run([str(script), "check", "nowhere.json", "--policy", V1], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=120)
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", "error: nowhere.json: no such fact sheet\n")


def test_what_a_submission_writes_is_shown_as_written_never_as_markup_or_terminal_codes(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line a row: nothing below is cut by wrapping
    # A team controls its manifest: names holding terminal escape codes or rich markup
    # must not clear a screen, recolour a verdict or restyle a report.
    data = json.loads((ROOT / sheet("non-commercial-licence")).read_text(encoding="utf-8"))
    data["facts"]["declared"]["components"][0].update(name="lm\x1b[2J[bold green]PASS[/]", license="cc-by-nc")
    data["subject"]["name"] = "m[red]x\x07"
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(data))
    for fmt in ("table", "markdown", "html"):
        run = cli("check", path, "--policy", V2, "--format", fmt)
        assert run.code == 1
        assert "\x1b" not in run.out and "\x07" not in run.out, fmt
        # Markdown escapes the backslash and bracket too, so it shows as written.
        assert ("\\\\x1b\\[2J" if fmt == "markdown" else "\\x1b[2J") in run.out, fmt
    table = cli("check", path, "--policy", V2).out
    assert "[bold green]PASS[/]" in table and "m[red]x\\x07" in table  # shown literally
    report = json.loads(cli("check", path, "--policy", V2, "--format", "json").out)
    assert any("lm\x1b[2J[bold green]PASS[/]" in r["message"] for r in report["rules"])  # the data, exact


def test_markdown_shows_html_and_markup_a_team_writes_as_text(cli, tmp_path):
    data = json.loads((ROOT / sheet("non-commercial-licence")).read_text(encoding="utf-8"))
    data["facts"]["declared"]["components"][0].update(name="<img src=x onerror=alert(1)> *big* | [l](u)",
                                                     license="cc-by-nc")
    data["subject"]["name"] = "# heading?"
    path = tmp_path / "html.json"
    path.write_text(json.dumps(data))
    out = cli("check", path, "--policy", V2, "--format", "markdown").out
    assert re.search(r"(?<!\\)<img", out) is None and "\\<img src=x onerror=alert(1)\\>" in out
    assert "\\*big\\* \\| \\[l\\](u)" in out
    assert out.startswith("# # heading?: FAIL")  # text after the heading's own `# `


# -- where outputs go --------------------------------------------------------------------


def test_an_output_that_is_an_input_is_refused(cli, tmp_path):
    policy = tmp_path / "2.0-draft.policy"
    shutil.copy(V2, policy)
    shutil.copy(POLICIES / "1.0.policy", tmp_path / "1.0.policy")
    facts = tmp_path / "facts.json"
    shutil.copy(sheet("overseas-fine-tune"), facts)
    before = (policy.read_bytes(), facts.read_bytes())
    for target in (policy, facts):
        run = cli("check", facts, "--policy", policy, "-f", "markdown", "-o", target)
        assert run.code == 2 and "is one of this command's inputs" in run.err
    run = cli("diff", "--old", V1, "--new", policy, facts, "-f", "json", "-o", facts)
    assert run.code == 2 and "is one of this command's inputs" in run.err
    assert (policy.read_bytes(), facts.read_bytes()) == before


@pytest.mark.parametrize("name", [".", ""])
def test_an_output_that_names_no_file_is_one_line(cli, tmp_path, name):
    run = cli("check", sheet("overseas-fine-tune"), "--policy", V2, "-o", name)
    assert run.code == 2 and len(run.err.splitlines()) == 1 and "not a file name" in run.err


def test_an_output_through_a_symlink_writes_its_target_and_keeps_its_mode(cli, tmp_path):
    target = tmp_path / "private.json"
    target.write_text("old")
    target.chmod(0o600)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert cli("check", sheet("overseas-fine-tune"), "--policy", V2, "-f", "json", "-o", link).code == 1
    assert link.is_symlink() and json.loads(target.read_text())["verdict"] == "fail"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_output_to_a_pipe_is_written_into_it(cli, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert cli("check", sheet("overseas-fine-tune"), "--policy", V2, "-f", "json", "-o", fifo).code == 1
    reader.join(timeout=10)
    assert fifo.exists() and not fifo.is_file() and json.loads(got[0])["verdict"] == "fail"


def test_an_interrupt_while_writing_exits_130_and_leaves_nothing(cli, tmp_path, monkeypatch):
    out = tmp_path / "report.json"

    def interrupted(self, *args, **kwargs):
        Path.write_bytes(self, b"half")  # the temporary file is partly written
        raise KeyboardInterrupt
    monkeypatch.setattr(Path, "write_text", interrupted)
    run = cli("check", sheet("overseas-fine-tune"), "--policy", V2, "-f", "json", "-o", out)
    assert run.code == 130 and run.err == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_diff_reads_each_sheet_once_and_never_its_own_output(cli, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("overseas-fine-tune", "from-scratch-committed"):
        shutil.copy(sheet(name), archive / f"{name}.json")
    out = archive / "diff.json"
    for _ in range(2):  # the second run finds the first one's output among the sheets
        run = cli("diff", "--old", V1, "--new", V2, archive, archive / "overseas-fine-tune.json",
                  "-f", "json", "-o", out)
        assert run.code == 0, run.err
        assert json.loads(out.read_text())["summary"]["sheets"] == 2


def test_every_change_is_listed_in_every_format(cli):
    args = ["diff", "--old", V1, "--new", V2, str(EXAMPLES)]
    data = json.loads(cli(*args, "-f", "json", "--every-change").out)
    kept = [x["sheet"] for x in data["sheets"] if not x["verdict_changed"]]
    assert kept
    for fmt in ("markdown", "table"):
        plain, every = cli(*args, "-f", fmt).out, cli(*args, "-f", fmt, "--every-change").out
        assert all(Path(k).name not in plain for k in kept), fmt
        assert all(Path(k).name in every for k in kept), fmt


def test_the_terminal_table_cuts_a_huge_name_that_the_json_keeps(cli, tmp_path):
    data = json.loads((ROOT / sheet("overseas-fine-tune")).read_text(encoding="utf-8"))
    data["subject"]["name"] = "m" * 100_000
    path = tmp_path / "long.json"
    path.write_text(json.dumps(data))
    table = cli("check", path, "--policy", V2).out
    assert "… (98,000 more characters)" in table and len(table) < 20_000
    assert json.loads(cli("check", path, "--policy", V2, "-f", "json").out)["subject"]["name"] == "m" * 100_000


@pytest.mark.parametrize("args,problem", [
    (("--component", "lm=model.", "--component", "lm=other."), "`lm` is already given as `model.`"),
    (("--license", " "), "--license: an empty text"),
])
def test_catalog_add_refuses_options_it_would_lose(cli, tmp_path, args, problem):
    model = _tiny_model(tmp_path / "tiny")
    run = cli("catalog", "add", model, "--id", "ref", "--origin", "US", "--catalog", tmp_path / "cat", *args)
    assert run.code == 2 and problem in run.err and not (tmp_path / "cat" / "ref").exists()


def _policy_with_test(tmp_path: Path, cases: str) -> Path:
    (tmp_path / "1.0.policy").write_text(
        'policy "t"\nversion "1.0"\nrule a {\n  level blocking\n  cite "x"\n  require trail.present == true\n'
        '  message ko "체크포인트 이력이 없습니다"\n  message en "no trail"\n}\n', encoding="utf-8")
    test = tmp_path / "1.0.test.yaml"
    test.write_text("cases:\n" + cases, encoding="utf-8")
    return test


def test_a_case_may_expect_the_message_in_korean(cli, tmp_path):
    test = _policy_with_test(tmp_path, "  - name: ko\n    lang: ko\n    facts: {trail: {present: false}}\n"
                                       "    expect: {a: fail}\n    messages: {a: 체크포인트}\n"
                                       "  - name: en\n    facts: {trail: {present: false}}\n"
                                       "    expect: {a: fail}\n    messages: {a: no trail}\n")
    run = cli("test", "--no-coverage", test)
    assert run.code == 0, run.out


@pytest.mark.parametrize("case,problem", [
    ("    unset: [tokenizr]\n", "`tokenizr` names no fact; did you mean `tokenizer`?"),
    ("    messages: {a: ''}\n", "an empty text is in every message"),
    ("    lang: fr\n", "`fr` is not a message language"),
])
def test_a_case_that_would_test_nothing_is_refused(cli, tmp_path, case, problem):
    test = _policy_with_test(tmp_path, "  - name: c\n    facts: {trail: {present: false}}\n    expect: {a: fail}\n"
                             + case)
    run = cli("test", test)
    assert run.code == 2 and problem in run.err
