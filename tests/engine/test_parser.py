"""Parsing: text -> AST, spans, and the classified syntax errors."""

import pytest

from engine import ast
from engine.diagnostics import PolicyError
from engine.parser import parse_expression, parse_policy
from engine.syntax_examples import SYNTAX_EXAMPLES


def expr(text):
    return parse_expression(text)


def test_header_params_rules_and_removals():
    p = parse_policy(
        'policy "p"\nversion "2"\nextends "1"\nlanguage "1"\neffective "2026-01-02"\n'
        'title ko "독자 모델"\ntitle en "Own model"\n'
        'param t: number = 0.9 "doc"\nparam o: list[string] = ["KR"]\n'
        'remove rule old\nremove param gone\n'
        'rule r {\n level blocking\n cite "c"\n note "n"\n require t > 1\n message "m {t}"\n message ko "메시지"\n}\n'
    )
    assert (p.id, p.version, p.extends, p.language, p.effective) == ("p", "2", "1", "1", "2026-01-02")
    assert [(t.lang, t.text) for t in p.titles] == [("ko", "독자 모델"), ("en", "Own model")]
    assert p.params[0] == ast.Param("t", ast.TypeRef("number"), ast.Literal(0.9), "doc")
    assert p.params[1].type.name == "list[string]"
    assert p.removals == (ast.Removal("rule", "old"), ast.Removal("param", "gone"))
    rule = p.rules[0]
    assert (rule.id, rule.level, rule.cite, rule.mode, rule.notes) == ("r", "blocking", "c", "require", ("n",))
    assert rule.condition == ast.Compare(">", ast.Path("t"), ast.Literal(1.0))
    (lang, template), (lang2, _) = rule.messages
    assert lang is None and lang2 == "ko"
    assert template.parts == ("m ", ast.Path("t"))


def test_precedence():
    assert expr("a or b and not c") == ast.BoolChain("or", (
        ast.Path("a"), ast.BoolChain("and", (ast.Path("b"), ast.Not(ast.Path("c"))))))
    assert expr("a implies b or c") == ast.Implies(ast.Path("a"), ast.BoolChain("or", (ast.Path("b"), ast.Path("c"))))
    assert expr("1 + 2 * 3 > x otherwise 4") == ast.Compare(
        ">", ast.Arith("+", ast.Literal(1.0), ast.Arith("*", ast.Literal(2.0), ast.Literal(3.0))),
        ast.Otherwise(ast.Path("x"), ast.Literal(4.0)))
    assert expr("-a - 1") == ast.Arith("-", ast.Neg(ast.Path("a")), ast.Literal(1.0))


def test_quantifier_body_reaches_right():
    e = expr("any c in components where c.kind == \"x\": c.a and c.b")
    assert isinstance(e, ast.Quantifier) and e.kind == "any" and e.var == "c"
    assert e.where == ast.Compare("==", ast.Path("c", ("kind",)), ast.Literal("x"))
    assert e.body == ast.BoolChain("and", (ast.Path("c", ("a",)), ast.Path("c", ("b",))))
    nested = expr("all c in xs: none d in c.ys: d.v")
    assert isinstance(nested.body, ast.Quantifier) and nested.body.source == ast.Path("c", ("ys",))


def test_membership_count_calls_lists():
    assert expr('x not in ["a", "b"]') == ast.Member(True, ast.Path("x"), ast.ListLit((ast.Literal("a"), ast.Literal("b"))))
    assert expr("count(c in components where c.x) >= 2") == ast.Compare(
        ">=", ast.Count("c", ast.Path("components"), ast.Path("c", ("x",))), ast.Literal(2.0))
    assert expr("known(a.b)") == ast.Call("known", (ast.Path("a", ("b",)),))
    assert expr("[]") == ast.ListLit(())


def test_spans_point_into_the_source():
    p = parse_policy('rule r {\n  require c.match.relation == "x"\n}', "f.policy")
    cond = p.rules[0].condition
    assert cond.left.span.text == "c.match.relation"
    assert [s.text for s in cond.left.field_spans] == ["match", "relation"]
    assert cond.left.span.location() == "f.policy:2:11"
    assert p.rules[0].id_span.text == "r"


def test_spans_do_not_take_part_in_equality():
    assert parse_policy('rule r { require a }') == parse_policy('\n\n# c\nrule   r {\n require   a\n}')


def test_message_holes_are_parsed_in_place():
    p = parse_policy('rule r {\n  message "x {c.name} \\{y\\} {a + 1}"\n}', "m.policy")
    parts = p.rules[0].messages[0][1].parts
    assert parts[0] == "x " and parts[2] == " {y} "
    assert parts[1].span.text == "c.name" and parts[1].span.location() == "m.policy:2:15"
    assert parts[3] == ast.Arith("+", ast.Path("a"), ast.Literal(1.0))


def test_strings_keep_korean_and_escapes():
    p = parse_policy('title ko "원천성 \\"기준\\"\\n"')
    assert p.titles[0].text == '원천성 "기준"\n'


@pytest.mark.parametrize("label,snippet", [(label, s) for label, (_, snippets) in SYNTAX_EXAMPLES.items()
                                           for s in snippets])
def test_syntax_error_table(label, snippet):
    """Each example of the table is classified as its own label."""
    with pytest.raises(PolicyError) as info:
        parse_policy(snippet)
    (diag,) = info.value.diagnostics
    assert diag.code == label


@pytest.mark.parametrize("text,code,underlined", [
    ('rule r {\n  require a = 1\n}', "single_equals", "="),
    ('rule r {\n  levle blocking\n}', "unknown_rule_field", "levle"),
    ('rule r {\n  message "open\n}', "unterminated_string", '"'),
    ('rule r {\n  message "{c.name"\n}', "unclosed_placeholder", "{"),
    ('rule r {\n  message "a } b"\n}', "unopened_placeholder", "}"),
    ('rule r {\n  message "{}"\n}', "empty_placeholder", "{}"),
    ('rule r {\n  message "{a +}"\n}', "syntax_error", "}"),
    ('rule r { require a and or b }', "missing_condition_operand", "or"),
    ('rule r {\n  level blocking\n  level advisory\n}', "duplicate_field", "level advisory"),
    ('policy "a"\npolicy "b"', "duplicate_field", 'policy "b"'),
])
def test_syntax_errors_point_at_the_offending_text(text, code, underlined):
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "e.policy")
    diag = info.value.diagnostics[0]
    assert diag.code == code
    assert diag.span.text == underlined


def test_did_you_mean_a_keyword():
    with pytest.raises(PolicyError) as info:
        parse_policy("rule r { requier a }")
    assert info.value.diagnostics[0].help == "did you mean `require`?"


def test_operator_words_are_reserved():
    with pytest.raises(PolicyError):
        parse_expression("c.and == 1")


@pytest.mark.parametrize("cond,shown,hint", [
    ("trail.present && trail.committed", "&&", "write `and`"),
    ("trail.present || trail.committed", "||", "write `or`"),
    ("!trail.present", "!", "write `not`"),
])
def test_operators_from_other_languages_point_to_ours(cond, shown, hint):
    text = f'policy "p"\nversion "1"\nrule r {{\n  level blocking\n  cite "c"\n  require {cond}\n  message "m"\n}}\n'
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.policy")
    (d,) = err.value.diagnostics
    assert d.message == f"unexpected `{shown}`" and d.help.startswith(hint)


def test_a_korean_rule_id_says_where_korean_text_goes():
    with pytest.raises(PolicyError) as err:
        parse_policy('policy "p"\nversion "1"\nrule 규칙 {\n}\n', "p.policy")
    (d,) = err.value.diagnostics
    assert d.code == "unexpected_character" and "in quotes, as a title or a message" in d.help


def test_a_placeholder_that_stops_short_says_so():
    with pytest.raises(PolicyError) as err:
        parse_policy('policy "p"\nversion "1"\nrule r {\n  level blocking\n  cite "c"\n  require true\n'
                     '  message "m {trail.checkpoints ==}"\n}\n', "p.policy")
    (d,) = err.value.diagnostics
    assert d.message == "unexpected end of the `{…}` placeholder"


@pytest.mark.parametrize("cond", [
    "(" * 80 + "trail.present" + ")" * 80,
    "not " * 500 + "trail.present",
    "trail.checkpoints" + " + 1" * 3000 + " > 0",
    "".join(f"any c{i} in components: " for i in range(200)) + "true",
])
def test_an_expression_nested_past_what_can_be_evaluated_is_one_diagnostic(cond):
    text = f'policy "p"\nversion "1"\nrule r {{\n  level blocking\n  cite "c"\n  require {cond}\n  message "m"\n}}\n'
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.policy")
    (d,) = err.value.diagnostics
    assert d.code == "too_deep" and d.span.line_col[0] == 6


def test_nesting_a_person_writes_is_read():
    cond = "(" * 40 + "trail.present" + ")" * 40 + " and " + "not " * 100 + "trail.present"
    parse_policy(f'policy "p"\nversion "1"\nrule r {{\n  level blocking\n  cite "c"\n  require {cond}\n'
                 '  message "m"\n}\n', "p.policy")


@pytest.mark.parametrize("cond", ["trail.present and", "trail.present ==", "trail.checkpoints +"])
def test_a_condition_left_unfinished_is_named_so(cond):
    with pytest.raises(PolicyError) as err:
        parse_policy(f'policy "p"\nversion "1"\nrule r {{\n  level blocking\n  cite "c"\n  require {cond}\n'
                     '  message "m"\n}\n', "p.policy")
    (d,) = err.value.diagnostics
    assert (d.code, d.message, d.span.text) == (
        "unfinished_condition", "the condition before `message` is unfinished", "message")
