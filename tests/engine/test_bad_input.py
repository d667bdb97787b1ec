"""Bad input of any kind: exit 2, one line on stderr naming the file and the place, no
Python internals, and nothing written.

The corpus is `bad_inputs/` (text files); the table below says how each file is used and
what its error must say. Bytes that are not text (binary, Latin-1) are made per test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
BAD = Path("tests/engine/bad_inputs")
V1 = "policies/msit-originality/1.0.policy"
V2 = "policies/msit-originality/2.0-draft.policy"
GOOD = "examples/facts/from-scratch-committed.json"

# Made in the test's temporary folder (under `{gen}`) before each case.
GENERATED: dict[str, bytes] = {
    "binary.json": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10",
    "latin1.json": b'{"schema": "originality.facts/1", "subject": {"name": "caf\xe9"}}',
    "binary.policy": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "latin1.policy": b'policy "bad"\nversion "1"\n# caf\xe9\n',
    "separator.policy": 'policy "bad"\nversion "1"\n\u2028\n'.encode("utf-8"),
    "latin1.test.yaml": b"policy: base.policy\n# caf\xe9\ncases: []\n",
    "nul.test.yaml": b"policy: base.policy\n# a\x00b\ncases: []\n",
    "fmt_missing_brace.policy": (ROOT / BAD / "policies/missing_brace.policy").read_bytes(),
    "fmt_latin1.policy": b'policy "bad"\nversion  "1"\n# caf\xe9\n',
}

# Python's own words that must never reach a user.
LEAKS = re.compile(
    r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|Unexpected(Token|Characters|EOF|Input)|VisitError"
    r"|\bpydantic\b|\blark\b|typer|click|codec can't|\[Errno|<class |object at 0x|internal error|NoneType")


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...] = ()  # regular expressions the error line must match
    names: str | None = None  # the file the error must name (default: the first path argument)
    unchanged: tuple[str, ...] = field(default=())  # files that must keep their bytes


def check(subject: str, policy: str = V1, *extra: str) -> tuple[str, ...]:
    return ("check", subject, "--policy", policy, "-o", "{out}", *extra)


def policy_case(name: str, *expect: str, names: str | None = None) -> Case:
    path = f"{BAD}/policies/{name}"
    return Case(f"policy/{name}", check(GOOD, path), expect, names or path)


def facts_case(name: str, *expect: str) -> Case:
    path = f"{BAD}/facts/{name}"
    return Case(f"facts/{name}", check(path), expect, path)


def yaml_case(name: str, *expect: str, names: str | None = None) -> Case:
    path = f"{BAD}/tests/{name}"
    return Case(f"test/{name}", ("test", path), expect, names or path)


CASES: list[Case] = [
    # -- policies: syntax ------------------------------------------------------------
    policy_case("missing_brace.policy", r":5:3: ", "unexpected `level`", r"`\{`"),
    policy_case("unterminated_string.policy", r":7:11: ", "unterminated_string", "not closed"),
    policy_case("unclosed_rule.policy", r":7:1: ", "end of file"),
    policy_case("missing_operand.policy", r":7:1: ", r"unexpected `\}`"),
    policy_case("missing_operator.policy", r":6:25: ", "unexpected `trail`"),
    policy_case("quantifier_without_colon.policy", r":6:30: ", "unexpected `c`"),
    policy_case("unknown_rule_field.policy", r":5:3: ", "`severity`", "`level`"),
    policy_case("unquoted_version.policy", r":2:9: ", r"`1\.0`", "quoted text"),
    policy_case("param_without_type.policy", r":4:13: ", "`=`", "`:`"),
    policy_case("unclosed_paren.policy", r":7:1: ", r"`\)`"),
    policy_case("stray_brace.policy", r":8:1: ", r"unexpected `\}`"),
    policy_case("unexpected_character.policy", r":6:33: ", "`@`"),
    policy_case("bom_then_error.policy", r":1:8: ", "unexpected `bad`"),  # the BOM is no column
    policy_case("empty.policy", "missing_header"),
    Case("policy/binary", check(GOOD, "{gen}/binary.policy"), (r"binary\.policy:1: ", "not valid UTF-8"),
         "{gen}/binary.policy"),
    Case("policy/latin1", check(GOOD, "{gen}/latin1.policy"), (r"latin1\.policy:3: ", "not valid UTF-8"),
         "{gen}/latin1.policy"),
    # A Unicode line separator: shown by its code, so the error stays one line.
    Case("policy/separator", check(GOOD, "{gen}/separator.policy"),
         (r"separator\.policy:3:1: unexpected character `U\+2028` outside quotes",), "{gen}/separator.policy"),
    Case("policy/folder", check(GOOD, f"{BAD}/policies"), ("is a folder, not a policy file",), f"{BAD}/policies"),
    Case("policy/missing", check(GOOD, f"{BAD}/policies/nowhere.policy"), ("no such policy file",),
         f"{BAD}/policies/nowhere.policy"),
    # -- policies: versions ------------------------------------------------------------
    policy_case("missing_extends/2.policy", r":3:9: ", "missing_extends", "no version `1`"),
    policy_case("cyclic_extends/a.policy", r"cyclic_extends/b\.policy:3:9: ", "cyclic_extends",
                names=f"{BAD}/policies/cyclic_extends/"),
    # -- policies: meaning ---------------------------------------------------------------
    policy_case("param_wrong_type.policy", r":4:23: ", "type_mismatch", "parameter `limit` is a number"),
    policy_case("comparison_wrong_type.policy", r":6:29: ", "type_mismatch", r"`trail\.checkpoints`"),
    policy_case("unknown_fact.policy", r":6:39: ", "unknown_fact", r"did you mean `relation`\?"),
    policy_case("unknown_fact_in_message.policy", r":7:26: ", "unknown_fact", r"`trail\.presnt`"),
    policy_case("unknown_param.policy", r":6:37: ", "`limit`"),
    policy_case("duplicate_rule.policy", r":10:6: ", "duplicate_rule"),
    policy_case("field_of_list.policy", r":6:31: ", r"`declared\.components`", "`frozen`"),
    policy_case("bad_level.policy", r":5:9: ", "unknown_level", "`strict`"),
    policy_case("huge_default.policy", r":4:23: "),
    Case("lint/missing", ("lint", f"{BAD}/policies/nowhere.policy"), ("no such policy file",)),
    Case("fmt/syntax", ("fmt", "{gen}/fmt_missing_brace.policy"), (r":5:3: ",), unchanged=("fmt_missing_brace.policy",)),
    Case("fmt/latin1", ("fmt", "{gen}/fmt_latin1.policy"), (r":3: ", "UTF-8"), unchanged=("fmt_latin1.policy",)),
    Case("render/unknown_fact", ("render", f"{BAD}/policies/unknown_fact.policy", "-o", "{out}"),
         (r":6:39: ", "unknown_fact")),
    # -- fact sheets: JSON -----------------------------------------------------------------
    facts_case("not_json.json", r"not_json\.json:1:1: invalid JSON"),
    facts_case("truncated.json", r"truncated\.json:20:11: invalid JSON", "unterminated string"),
    facts_case("trailing_comma.json", r":6:1: invalid JSON"),
    facts_case("empty.json", r"empty\.json:1:1: invalid JSON"),
    facts_case("duplicate_keys.json", r"duplicate_keys\.json:4:\d+: ", "`subject` appears twice"),
    facts_case("nan.json", r"nan\.json:5:\d+: "),
    facts_case("infinity.json", r"infinity\.json:5:\d+: "),
    facts_case("huge_number.json", "vocab_overlap"),
    Case("facts/binary", check("{gen}/binary.json"), ("byte 0: is not valid UTF-8",), "{gen}/binary.json"),
    Case("facts/latin1", check("{gen}/latin1.json"), ("byte 58: is not valid UTF-8",), "{gen}/latin1.json"),
    Case("facts/missing", check(f"{BAD}/facts/nowhere.json"), ("no such fact sheet",)),
    Case("facts/folder", check(f"{BAD}/facts"), (), f"{BAD}/facts"),
    # -- fact sheets: envelope and facts ----------------------------------------------------
    facts_case("null_envelope.json", r": \(top level\): expected a fact sheet object, got null"),
    facts_case("top_level_list.json", r": \(top level\): expected a fact sheet object, got a list"),
    facts_case("wrong_schema_id.json", r": schema: expected one of `originality\.facts/1`"),
    facts_case("unknown_top_field.json", r": created: is not a field of a fact sheet$"),
    facts_case("missing_subject.json", r": subject: is missing$"),
    facts_case("null_facts.json", r": facts: expected an object, got null$"),
    facts_case("unknown_fact.json", r": facts\.weights_digest: is not a fact any installed detector declares$"),
    facts_case("components_not_list.json", r": facts\.components: expected a list, got an object$"),
    facts_case("deep_wrong_enum.json", r": facts\.components\[1\]\.match\.relation: expected one of .*`\"frozen\"`$"),
    facts_case("deep_wrong_type.json", r": facts\.components\[1\]\.match\.relation: .*got `3`$"),
    facts_case("string_for_number.json", r": facts\.components\[0\]\.match\.similarity: expected a number, "
               r"got `\"0\.004\"`$"),
    facts_case("boolean_for_number.json", r": facts\.components\[0\]\.match\.similarity: expected a number, "
               r"got `true`$"),
    facts_case("several_problems.json", r": extra: is not a field of a fact sheet \(and 2 more problems\)$"),
    Case("diff/one_bad_sheet", ("diff", "--old", V1, "--new", V2, "-f", "json", "-o", "{out}", GOOD,
                                f"{BAD}/facts/deep_wrong_enum.json"),
         (r"facts\.components\[1\]\.match\.relation",), f"{BAD}/facts/deep_wrong_enum.json"),
    Case("diff/bad_folder", ("diff", "--old", V1, "--new", V2, "-o", "{out}", f"{BAD}/facts"), (),
         f"{BAD}/facts/"),
    Case("diff/bad_policy", ("diff", "--old", V1, "--new", f"{BAD}/policies/unknown_fact.policy", "-o", "{out}",
                             GOOD), (r":6:39: ",), f"{BAD}/policies/unknown_fact.policy"),
    # -- model folders (the detectors' errors, through the command line) -------------------------
    Case("model/not_safetensors", check(f"{BAD}/models/not_safetensors"), ("header",),
         f"{BAD}/models/not_safetensors/model.safetensors"),
    Case("model/missing_manifest", check(f"{BAD}/models/not_safetensors", V1, "--manifest",
                                         f"{BAD}/models/nowhere.yaml"), ("manifest",),
         f"{BAD}/models/nowhere.yaml"),
    # -- policy test files -------------------------------------------------------------------
    yaml_case("invalid_yaml.test.yaml", r":5:5: invalid YAML"),
    yaml_case("tab_indent.test.yaml", r":3:1: invalid YAML"),
    yaml_case("empty.test.yaml", r":1: \(top level\): a test file is a mapping"),
    yaml_case("not_a_mapping.test.yaml", r":1: \(top level\): a test file is a mapping"),
    yaml_case("unknown_key.test.yaml", r"unknown_key\.test\.yaml:2: ", "unknown key `case`"),
    yaml_case("unknown_case_key.test.yaml", r":5: cases\[0\]\.expected: unknown key `expected`"),
    yaml_case("duplicate_key.test.yaml", r":6: ", "`expect` appears twice"),
    yaml_case("missing_fixture.test.yaml", r":6: cases\[0\]\.facts: no fixture `large`"),
    yaml_case("bad_outcome.test.yaml", r":5: cases\[0\]\.expect\.frozen: `passed` is not an outcome"),
    yaml_case("unknown_rule.test.yaml", r":5: cases\[0\]\.expect\.frozn: ", "no rule `frozn`"),
    yaml_case("bad_facts.test.yaml", r":4: cases\[0\]\.facts: facts\.components\[0\]\.match\.relation: "),
    yaml_case("bad_param.test.yaml", r":5: cases\[0\]\.params\.limit: ", "parameter `limit` is a number"),
    yaml_case("bad_set_path.test.yaml", r":5: ", "there is no item 3"),
    yaml_case("set_path_through_text.test.yaml", r":5: ", "`deeper` is not inside a group of facts"),
    yaml_case("missing_policy.test.yaml", r"missing_policy\.test\.yaml:\d+: policy: ", "no policy file `nowhere.policy`"),
    yaml_case("nan_fact.test.yaml", r":\d+: ", "similarity"),
    yaml_case("python_tag.test.yaml", r":3: ", "tag"),
    Case("test/latin1", ("test", "{gen}/latin1.test.yaml"), ("UTF-8",), "{gen}/latin1.test.yaml"),
    Case("test/nul", ("test", "{gen}/nul.test.yaml"), (r":2:4: invalid YAML: character U\+0000 is not allowed",),
         "{gen}/nul.test.yaml"),
    Case("test/missing", ("test", f"{BAD}/tests/nowhere"), ("no such test file or folder",)),
    Case("test/no_tests", ("test", f"{BAD}/policies"), (r"no \*\.test\.yaml files",)),
    # -- command-line values -------------------------------------------------------------------
    Case("set/text_for_number", check(GOOD, V2, "--set", "tokenizer_overlap_limit=high"),
         ("`tokenizer_overlap_limit`", r"\(number\)"), "--set `tokenizer_overlap_limit=high`"),
    Case("set/quoted_number", check(GOOD, V2, "--set", 'tokenizer_overlap_limit="0.5"'),
         ("parameter `tokenizer_overlap_limit` is a number",), "--set"),
    Case("set/unknown", check(GOOD, V2, "--set", "tokenizer_overlap=0.5"),
         ("unknown parameter `tokenizer_overlap`", "did you mean `tokenizer_overlap_limit`"), "--set"),
    Case("set/no_equals", check(GOOD, V2, "--set", "tokenizer_overlap_limit"), ("NAME=VALUE",), "--set"),
    Case("set/unclosed_list", check(GOOD, V2, "--set", 'own_references=["a"'), ("`own_references`",), "--set"),
    Case("set/list_of_numbers", check(GOOD, V2, "--set", "own_references=[1, 2]"), (r"list\[string\]",), "--set"),
    Case("set/fact_path", check(GOOD, V2, "--set", "tokenizer_overlap_limit=trail.checkpoints"),
         ("not a plain value",), "--set"),
    Case("set/infinite", check(GOOD, V2, "--set", "tokenizer_overlap_limit=1e999"), ("`tokenizer_overlap_limit`",),
         "--set"),
    Case("set_old/unknown", ("diff", "--old", V1, "--new", V2, "--set-old", "own_references=[]", "-o", "{out}", GOOD),
         ("unknown parameter `own_references`",), "--set"),
    Case("format/unknown", check(GOOD, V1, "--format", "xml"), ("`xml`", "table, json, markdown, html"), "--format"),
    Case("output/missing_folder", ("check", GOOD, "--policy", V1, "-f", "json", "-o", "{tmp}/missing/report.json"),
         ("does not exist",), "{tmp}/missing/report.json"),
    Case("output/is_a_folder", ("check", GOOD, "--policy", V1, "-f", "json", "-o", "{tmp}"),
         ("is a folder",), "{tmp}"),
]


def _ids(cases):
    return [c.id for c in cases]


def _params():
    for case in CASES:
        yield pytest.param(case, id=case.id)


def test_the_corpus_is_large_and_every_file_is_used():
    assert len(CASES) >= 25
    assert len(set(_ids(CASES))) == len(CASES)
    used = " ".join(" ".join(c.args) for c in CASES)
    support = {"base.policy", "b.policy", "config.json", "model.safetensors"}  # read through another file
    corpus = sorted(p.relative_to(ROOT) for p in (ROOT / BAD).rglob("*") if p.is_file())
    assert len(corpus) >= 25
    assert [str(p) for p in corpus if p.name not in support and str(p) not in used] == []
    for p in corpus:  # text files only
        (ROOT / p).read_bytes().decode("utf-8")


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("ORIGINALITY_CATALOG", raising=False)
    monkeypatch.delenv("ORIGINALITY_DEBUG", raising=False)
    gen = tmp_path / "gen"
    gen.mkdir()
    for name, data in GENERATED.items():
        (gen / name).write_bytes(data)
    out = tmp_path / "report.out"
    subst = {"{gen}": str(gen), "{out}": str(out), "{tmp}": str(tmp_path)}

    def fill(text: str) -> str:
        for key, value in subst.items():
            text = text.replace(key, value)
        return text

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    corpus_before = {p: p.read_bytes() for p in (ROOT / BAD).rglob("*") if p.is_file()}
    capsys.readouterr()
    try:
        main([fill(a) for a in case.args])
        code = None
    except SystemExit as stop:
        code = stop.code
    stdout, stderr = capsys.readouterr()

    lines = stderr.splitlines()
    assert code == 2, f"exit {code}; stderr: {stderr!r}"
    assert len(lines) == 1 and stderr.endswith("\n"), stderr
    line = lines[0]
    assert line.startswith("error: ")
    assert not LEAKS.search(line), line
    names = fill(case.names or next(a for a in case.args[1:] if not a.startswith("-")))
    assert names in line
    for pattern in case.expect:
        assert re.search(pattern, line), f"{pattern!r} not in {line!r}"
    assert stdout == ""
    assert not out.exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing half-written
    for name in case.unchanged:
        assert (gen / name).read_bytes() == GENERATED[name]
    assert {p: p.read_bytes() for p in (ROOT / BAD).rglob("*") if p.is_file()} == corpus_before


# -- errors that are one line but not yet the right line ----------------------------------------


def _error_line(capsys, *args: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(list(args))
    return capsys.readouterr().err


@pytest.mark.parametrize("name,code", [("missing_operand.policy", "missing_condition_operand"),
                                       ("missing_operator.policy", "missing_operator"),
                                       ("unknown_rule_field.policy", "unknown_rule_field"),
                                       ("stray_brace.policy", "stray_top_level"),
                                       ("quantifier_without_colon.policy", "quantifier_syntax")])
def test_syntax_errors_after_the_header_are_classified(capsys, monkeypatch, name, code):
    import json

    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["lint", "--format", "json", f"{BAD}/policies/{name}"])
    assert stop.value.code == 2
    [diag] = json.loads(capsys.readouterr().out)
    assert diag["code"] == code


def test_type_words_read_well(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    line = _error_line(capsys, "check", GOOD, "--policy", f"{BAD}/policies/field_of_list.policy")
    assert "factss" not in line


def test_diff_overrides_are_named_by_their_option(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    line = _error_line(capsys, "diff", "--old", V1, "--new", V2, "--set-new", "nothing=1", GOOD)
    assert "--set-new `nothing=1`" in line


def test_an_input_error_is_one_line_whatever_a_library_said():
    from detectors.base import InputError as DetectorInputError
    from engine.diagnostics import InputError

    for error_type in (InputError, DetectorInputError):
        error = error_type("f.yaml", "line 2:3", 'unacceptable character\n  in "<unicode string>", position 4')
        assert str(error) == 'f.yaml: line 2:3: unacceptable character in "<unicode string>", position 4'
        # What an untrusted file brings never reaches a terminal raw: no escape sequences.
        error = error_type("m\x1b[2J.json", "facts.\x1e\u2028", "key `\x00` of 한글 fact sheet")
        assert str(error) == "m\\x1b[2J.json: facts.\\x1e\\u2028: key `\\x00` of 한글 fact sheet"
        assert str(error).isprintable()
