"""The checker: every problem in one run, sorted, each with a code and a place."""

from pathlib import Path

import pytest

from engine.diagnostics import PolicyError, render_diagnostic
from engine.loader import load_policy

from .helpers import HEADER, check_text, diagnostics_of

FIVE_MISTAKES = HEADER + '''
param limit: number = 0.9

rule frozen_encoder {
  level blocking
  cite "criterion 2"
  forbid any c in components where c.kind == "vision_encodr":
    c.match.relaton == "identical"
  message "{c.nam} reuses weights"
}

rule thresholds {
  level blockin
  cite "criterion 1"
  require tokenizer.vocab_overlap >= "high"
  message "x"
}
'''


def test_five_mistakes_five_diagnostics(catalogue):
    diags = diagnostics_of(FIVE_MISTAKES, catalogue)
    got = [(d.code, d.span.text) for d in diags]
    assert got == [
        ("unused_param", "limit"),
        ("unknown_value", '"vision_encodr"'),
        ("unknown_fact", "relaton"),
        ("unknown_fact", "nam"),
        ("unknown_level", "blockin"),
        ("type_mismatch", '"high"'),
    ]
    assert [d.severity for d in diags].count("error") == 5
    helps = {d.code + ":" + d.span.text: d.help for d in diags}
    assert helps['unknown_value:"vision_encodr"'] == "did you mean `vision_encoder`?"
    assert helps["unknown_fact:relaton"] == "did you mean `relation`?"
    assert helps["unknown_level:blockin"] == "did you mean `blocking`?"


def test_rendered_diagnostic_has_location_line_and_caret(catalogue):
    diags = diagnostics_of(FIVE_MISTAKES, catalogue, name="five.policy")
    text = render_diagnostic(next(d for d in diags if d.code == "unknown_fact"))
    assert text.splitlines() == [
        "error[unknown_fact]: unknown fact `components[].match.relaton`",
        "  --> five.policy:10:13",
        "   |",
        '10 |     c.match.relaton == "identical"',
        "   |             ^^^^^^^",
        "  = help: did you mean `relation`?",
    ]


RULE = 'rule r {{\n  level blocking\n  cite "c"\n  {cond}\n  message "m"\n}}\n'


@pytest.mark.parametrize("cond,code,underlined", [
    ("require foo == 1", "unknown_name", "foo"),
    ("require componets == []", "unknown_name", "componets"),
    ("require tokenizer.vocab == 1", "unknown_fact", "vocab"),
    ("require tokenizer.present == 1", "type_mismatch", "=="),
    ('require tokenizer.vocab_overlap > "x"', "type_mismatch", '"x"'),
    ("require tokenizer.vocab_overlap", "type_mismatch", "tokenizer.vocab_overlap"),
    ("require not tokenizer.vocab_overlap", "type_mismatch", "tokenizer.vocab_overlap"),
    ('require components.kind == "x"', "type_mismatch", "kind"),
    ("require tokenizer.present.x", "type_mismatch", "x"),
    ('require any c in tokenizer.vocab_size: true', "type_mismatch", "tokenizer.vocab_size"),
    ('require any c in components: c.kind == "encoder"', "unknown_value", '"encoder"'),
    ('require any c in components: c.kind in ["vision_encoder", "audio"]', "unknown_value", '"audio"'),
    ('require any c in components: decided(c.match.relation) == "same"', "unknown_value", '"same"'),
    ("require frobnicate(1)", "unknown_function", "frobnicate"),
    ("require known(1, 2)", "wrong_arguments", "known(1, 2)"),
    ("require lower(1) == \"a\"", "type_mismatch", "1"),
    ("require any components in components: true", "shadowed_name", "components"),
    ("require any c in components: any c in components: true", "shadowed_name", "c"),
    ('require 1 in "abc"', "type_mismatch", '"abc"'),
    ('require "a" in [1, 2]', "type_mismatch", '"a"'),
    ('require [1, "a"] == []', "type_mismatch", '"a"'),
    ("require count(c in components where c.parameters) > 0", "type_mismatch", "c.parameters"),
    ('require tokenizer.reference otherwise 1 == "x"', "type_mismatch", "1"),
])
def test_each_diagnostic_code(catalogue, cond, code, underlined):
    diags = diagnostics_of(HEADER + RULE.format(cond=cond), catalogue)
    errors = [d for d in diags if d.severity == "error"]
    assert [(d.code, d.span.text) for d in errors][:1] == [(code, underlined)]


def test_rule_fields_are_required(catalogue):
    diags = diagnostics_of(HEADER + "rule r { }\n", catalogue)
    assert sorted(d.message for d in diags if d.code == "missing_field") == [
        "rule `r` has no `level` (blocking or advisory)",
        "rule `r` has no `message`",
        "rule `r` has no `require` or `forbid` condition",
    ]
    assert any(d.code == "missing_citation" and d.severity == "warning" for d in diags)


def test_header_checks(catalogue):
    diags = diagnostics_of('version "1"\nlanguage "7"\neffective "2026-13-01"\n', catalogue)
    codes = [d.code for d in diags]
    assert codes == ["missing_header", "unsupported_language", "invalid_date"]


def test_params(catalogue):
    text = HEADER + '''
param a: number = "x"
param b: colour = 1
param c: number = 1
param c: number = 2
param tokenizer: number = 1
param d: list[string] = ["KR", 1]
param e: number = x + 1
'''
    codes = sorted((d.code, d.span.text) for d in diagnostics_of(text, catalogue) if d.severity == "error")
    assert codes == sorted([
        ("type_mismatch", '"x"'), ("unknown_type", "colour"), ("duplicate_param", "c"),
        ("shadowed_name", "tokenizer"), ("type_mismatch", '["KR", 1]'), ("not_constant", "x + 1"),
    ])


def test_messages_may_name_the_outer_variable_only(catalogue):
    ok = HEADER + RULE.format(cond="forbid any c in components: true").replace('"m"', '"{c.name}"')
    assert diagnostics_of(ok, catalogue) == []
    bad = HEADER + RULE.format(cond="forbid tokenizer.present").replace('"m"', '"{c.name}"')
    assert [d.code for d in diagnostics_of(bad, catalogue)] == ["unknown_name"]


def test_cascades_are_suppressed(catalogue):
    text = HEADER + RULE.format(cond="require foo == 1 and foo.bar == 2 and foo > 3")
    assert [d.code for d in diagnostics_of(text, catalogue)] == ["unknown_name"]


def test_clean_policy_is_checked(catalogue):
    checked = check_text(HEADER + 'param t: number = 0.5 "x"\n' + RULE.format(
        cond="require tokenizer.vocab_overlap otherwise 0 < t"), catalogue)
    rule = checked.rules[0]
    assert rule.params_used == ("t",)
    assert rule.facts_used == ("tokenizer.vocab_overlap",)
    assert checked.warnings == ()


# -- extends ------------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = '''policy "p"
version "1.0"
param t: number = 0.5
param u: number = 1
rule a {
  level blocking
  cite "c"
  require tokenizer.vocab_overlap < t
  message "a"
}
rule b {
  level advisory
  cite "c"
  require tokenizer.present == true
  message "b"
}
rule gone {
  level advisory
  cite "c"
  require tokenizer.vocab_size > u
  message "g"
}
'''


def test_extends_overrides_removes_and_appends(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE)
    child = write(tmp_path, "2.0.policy", '''policy "p"
version "2.0"
extends "1.0"
param t: number = 0.9
remove rule gone
remove param u
rule b {
  level blocking
  cite "c"
  require tokenizer.present == false
  message "b2"
}
rule c {
  level advisory
  cite "c"
  require known(config.architecture)
  message "c"
}
''')
    checked = load_policy(child, catalogue)
    assert [(r.id, r.level, r.rule.origin) for r in checked.rules] == [
        ("a", "blocking", "1.0"), ("b", "blocking", "2.0"), ("c", "advisory", "2.0")]
    assert checked.params["t"].default == 0.9
    assert "u" not in checked.params
    assert checked.extends == "1.0"
    # The digest covers the whole chain: changing the parent changes the child's digest.
    before = checked.digest
    write(tmp_path, "1.0.policy", BASE.replace("0.5", "0.6"))
    assert load_policy(child, catalogue).digest != before


def test_extends_errors(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE)
    missing = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.1"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(missing, catalogue)
    (d,) = [d for d in info.value.diagnostics if d.severity == "error"]
    assert (d.code, d.span.text, d.help) == ("missing_extends", '"1.1"', "did you mean `1.0`?")

    write(tmp_path, "a.policy", 'policy "p"\nversion "a"\nextends "b"\n')
    cyclic = write(tmp_path, "b.policy", 'policy "p"\nversion "b"\nextends "a"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(cyclic, catalogue)
    assert [d.code for d in info.value.diagnostics] == ["cyclic_extends"]

    other = write(tmp_path, "3.0.policy", 'policy "q"\nversion "3.0"\nextends "1.0"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(other, catalogue)
    assert [d.code for d in info.value.diagnostics] == ["extends_other_policy"]

    bad_removal = write(tmp_path, "4.0.policy", 'policy "p"\nversion "4.0"\nextends "1.0"\nremove rule aa\n'
                        'remove param t\nparam t: string = "x"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(bad_removal, catalogue)
    got = sorted((d.code, d.help) for d in info.value.diagnostics if d.severity == "error")
    assert got == [("remove_own_param", None), ("type_mismatch", None), ("unknown_rule", "did you mean `a`?")]


def test_a_revision_cannot_change_a_parameter_type(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE)
    child = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.0"\nparam t: string = "x"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(child, catalogue)
    (d,) = info.value.diagnostics
    assert d.code == "type_mismatch" and d.span.text == "string"


def test_diagnostics_are_sorted_by_place_across_files(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE.replace("tokenizer.present", "tokenizer.presnt"))
    child = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.0"\nparam zz: number = 1\n')
    with pytest.raises(PolicyError) as info:
        load_policy(child, catalogue)
    places = [d.location for d in info.value.diagnostics]
    assert places == sorted(places, key=lambda p: (p.split(":")[0], int(p.split(":")[1]), int(p.split(":")[2])))
    assert {d.code for d in info.value.diagnostics} == {"unknown_fact", "unused_param"}


@pytest.mark.parametrize("cond,ok", [
    ("forbid any c in components: true", True),
    ("require all c in components: true", True),
    ("require none c in components: true", True),
    ("require any c in components: true", False),
    ("forbid all c in components: true", False),
    ("forbid none c in components: true", False),
])
def test_a_message_names_the_variable_only_when_items_fail_the_rule(catalogue, cond, ok):
    text = HEADER + RULE.format(cond=cond).replace('"m"', '"{c.name}"')
    diags = [d for d in diagnostics_of(text, catalogue) if d.severity == "error"]
    assert (diags == []) is ok
    if not ok:
        assert [(d.code, d.span.text) for d in diags] == [("no_witness", "c.name")]


@pytest.mark.parametrize("typed,value", [
    ("apache-2.0", "apache-2.0"),  # a licence id is a text as typed
    ("cc-by-4.0", "cc-by-4.0"),
    ("1.0", "1.0"),
    ("true", "true"),
    ("a b", "a b"),
    ('"quoted \\"text\\""', 'quoted "text"'),  # quoted: the language's escapes
])
def test_a_text_parameter_takes_what_is_typed(catalogue, typed, value):
    from engine.checker import coerce_param_value
    policy = check_text(HEADER + 'param lic: string = "mit"\n  "a licence"\n'
                        'rule r {\n  level advisory\n  cite "c"\n  require card.license == lic\n  message "m"\n}\n',
                        catalogue)
    assert coerce_param_value("lic", typed, policy.params) == value



def test_a_mistake_in_a_message_hole_that_quotes_a_text_is_underlined_in_place(catalogue):
    text = HEADER + ('rule r {\n  level advisory\n  cite "c"\n  require true\n'
                     '  message "x {tokenizer.orign otherwise \\"none\\"} y"\n}\n')
    (diag,) = [d for d in diagnostics_of(text, catalogue) if d.code == "unknown_fact"]
    line = text.splitlines()[diag.span.line_col[0] - 1]
    start = diag.span.line_col[1] - 1
    assert diag.span.text == "orign" and line[start:start + 5] == "orign"


def test_a_version_file_holds_the_version_it_is_named_for(tmp_path, catalogue):
    copied = write(tmp_path, "2.0.policy", BASE)  # a copy of 1.0 whose `version` was not edited
    (d,) = load_policy(copied, catalogue).warnings
    assert (d.code, d.severity, d.span.text) == ("version_not_file_name", "warning", '"1.0"')
    assert d.help == 'rename the file `1.0.policy`, or say `version "2.0"`'
    # In a chain, the parent is held to it as well.
    write(tmp_path, "1.0.policy", BASE.replace('version "1.0"', 'version "7"'))
    child = write(tmp_path, "3.0.policy", 'policy "p"\nversion "3.0"\nextends "1.0"\n')
    assert [d.code for d in load_policy(child, catalogue).warnings] == ["version_not_file_name"]
    # A scratch file outside any chain may say what it likes.
    assert load_policy(write(tmp_path, "draft.policy", BASE), catalogue).warnings == ()


@pytest.mark.parametrize("target", ["../other/1.0", "sub/1.0", "..", "a\\\\b"])
def test_extends_names_a_version_beside_the_file_not_a_path(tmp_path, catalogue, target):
    (tmp_path / "other").mkdir()
    write(tmp_path / "other", "1.0.policy", BASE)
    child = write(tmp_path, "2.0.policy", f'policy "p"\nversion "2.0"\nextends "{target}"\n')
    with pytest.raises(PolicyError) as info:
        load_policy(child, catalogue)
    assert [d.code for d in info.value.diagnostics] == ["extends_not_a_version"]


def test_a_revision_that_changes_a_default_keeps_the_parameters_meaning(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE.replace("param t: number = 0.5", 'param t: number = 0.5\n  "the limit"'))
    child = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.0"\nparam t: number = 0.7\n')
    parent = load_policy(tmp_path / "1.0.policy", catalogue).params["t"]
    checked = load_policy(child, catalogue).params["t"]
    assert checked.default == 0.7 and checked.doc == parent.doc == "the limit"


@pytest.mark.parametrize("rules", ["", 'rule r {\n  level advisory\n  cite "c"\n  require true\n  message "m"\n}\n'])
def test_a_policy_no_rule_of_which_blocks_is_flagged(catalogue, rules):
    (d,) = check_text(HEADER + rules, catalogue).warnings
    assert (d.code, d.severity, d.span.text) == ("no_blocking_rule", "warning", '"1"')
    assert d.message == "no rule is blocking: every model passes this policy"


@pytest.mark.parametrize("lead,pad", [("토크나이저가 ", " " * 13), ("\t", "\t"), ("é", " ")])
def test_the_caret_sits_under_the_text_as_a_terminal_shows_it(catalogue, lead, pad):
    text = HEADER + ('rule r {\n  level advisory\n  cite "c"\n  require true\n'
                     f'  message "{lead}{{tokenizer.refrence}}"\n}}\n')
    diag = next(d for d in diagnostics_of(text, catalogue) if d.code == "unknown_fact")
    source_line, caret = render_diagnostic(diag).splitlines()[3:5]
    assert source_line.endswith(f'  message "{lead}{{tokenizer.refrence}}"')
    assert caret == "  | " + " " * len('  message "') + pad + " " + " " * len("tokenizer.") + "^" * len("refrence")


@pytest.mark.parametrize("hole,shown", [("declared.init", "group of facts"), ("components", "list of groups of facts")])
def test_a_message_cannot_show_a_group_of_facts(catalogue, hole, shown):
    text = HEADER + f'rule r {{\n  level blocking\n  cite "c"\n  require true\n  message "x {{{hole}}}"\n}}\n'
    (d,) = diagnostics_of(text, catalogue)
    assert (d.code, d.message, d.span.text) == ("group_in_message", f"a message cannot show a {shown}", hole)


def test_a_removed_parameter_an_inherited_rule_uses_points_to_the_removal(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE)
    child = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.0"\nremove param t\n')
    with pytest.raises(PolicyError) as info:
        load_policy(child, catalogue)
    (d,) = info.value.diagnostics
    assert d.code == "unknown_name" and d.span.source.name.endswith("1.0.policy")
    assert d.help.startswith("`remove param t` at ") and "2.0.policy:4:1 removed it" in d.help


def test_a_rule_cannot_be_called_verdict(catalogue):
    (d,) = diagnostics_of(HEADER + 'rule verdict {\n  level blocking\n  cite "c"\n  require true\n  message "m"\n}\n',
                          catalogue)
    assert (d.code, d.span.text) == ("reserved_rule_id", "verdict")


def test_an_inherited_parameter_no_rule_uses_any_more_says_how_to_drop_it(tmp_path, catalogue):
    write(tmp_path, "1.0.policy", BASE)
    child = write(tmp_path, "2.0.policy", 'policy "p"\nversion "2.0"\nextends "1.0"\nremove rule a\n')
    (d,) = [w for w in load_policy(child, catalogue).warnings if w.code == "unused_param" and "`t`" in w.message]
    assert d.message == "parameter `t` is not used by any rule of version `2.0`"
    assert d.help == "add `remove param t` to version `2.0`"
