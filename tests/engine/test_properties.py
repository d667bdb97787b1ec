"""Properties: formatting is a fixed point that keeps meaning; mutated policies only ever
give diagnostics; the compiled evaluator agrees with a plain reference interpreter."""

import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ast
from engine.checker import check_policy
from engine.diagnostics import PolicyError
from engine.evaluator import evaluate_policy
from engine.formatter import format_expr, format_policy, format_string
from engine.parser import parse_policy
from engine.report import build_report, report_json

from .helpers import sheet
from .strategies import bool_expr, facts, texts

POLICIES = Path(__file__).resolve().parents[2] / "policies" / "msit-originality"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def policy_text(cond, title, message_text, note):
    template = format_string(message_text, template=True)[:-1] + " {tokenizer.reference}\""
    return (f'policy "p"\nversion "1"\ntitle ko {format_string(title)}\n'
            f"param limit: number = 0.5 {format_string(note)}\n"
            f"rule r {{\n  level blocking\n  cite {format_string(note)}\n  require {format_expr(cond)}\n"
            f"  message {template}\n}}\n")


@SETTINGS
@given(cond=bool_expr(), title=texts, message_text=texts, note=texts)
def test_format_is_idempotent_and_keeps_meaning(cond, title, message_text, note):
    text = policy_text(cond, title, message_text, note)
    parsed = parse_policy(text)
    assert parsed.rules[0].condition == cond  # the printer and the parser agree
    assert parsed.titles[0].text == title
    once = format_policy(text)
    assert format_policy(once) == once
    assert parse_policy(once) == parsed


def test_shipped_policies_are_formatted():
    for path in sorted(POLICIES.glob("*.policy")):
        text = path.read_text(encoding="utf-8")
        assert format_policy(text, str(path)) == text, path


def test_comments_survive_formatting():
    text = ('# file comment\npolicy "p"  # trailing\nversion "1"\n\n# before the rule\nrule r {\n'
            '  # before level\n  level blocking   # why blocking\n  require true\n  # at the end\n}\n# last\n')
    once = format_policy(text)
    for comment in re.findall(r"#[^\n]*", text):
        assert comment in once
    assert format_policy(once) == once


def _items(text: str) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of each top-level item of a policy text."""
    policy = parse_policy(text, "p.policy")
    out = [(p.span.line_col[0], p.span.source.line_col(p.span.end - 1)[0], "param " + p.name)
           for p in policy.params]
    out += [(r.span.line_col[0], r.span.source.line_col(r.span.end - 1)[0], "rule " + r.id) for r in policy.rules]
    return sorted(out)


def _owner(items: list[tuple[int, int, str]], line: int) -> str:
    """The item a comment on `line` belongs to: the one around it, else the next one."""
    for first, last, name in items:
        if first <= line <= last:
            return name
    return next((name for first, _, name in items if first > line), "end")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_comment_anywhere_stays_with_its_item_and_formatting_settles(data):
    text = (POLICIES / data.draw(st.sampled_from(["1.0.policy", "2.0-draft.policy"]))).read_text(encoding="utf-8")
    lines = text.splitlines()
    items = _items(text)
    chosen = sorted(data.draw(st.lists(st.sampled_from(range(len(lines))), min_size=1, max_size=4, unique=True)))
    owners = {}
    for n, i in enumerate(chosen):
        lines[i] += f"  # note {n}"
        owners[f"# note {n}"] = _owner(items, i + 1)
    once = format_policy("\n".join(lines) + "\n")
    assert format_policy(once) == once
    after = _items(once)
    for number, line in enumerate(once.splitlines(), 1):
        for comment in re.findall(r"# note \d+", line):
            assert _owner(after, number) == owners.pop(comment), (comment, line)
    assert owners == {}


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\w+|==|!=|<=|>=|\S')


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_policies_never_crash(catalogue, data):
    parent_text = (POLICIES / "1.0.policy").read_text(encoding="utf-8")
    name = data.draw(st.sampled_from(["1.0.policy", "2.0-draft.policy"]))
    text = (POLICIES / name).read_text(encoding="utf-8")
    tokens = [m.group() for m in _TOKEN.finditer(text)]
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = rng.randrange(len(tokens))
        op = rng.choice(["delete", "duplicate", "swap", "replace"])
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        else:
            tokens[i] = rng.choice(tokens)
    mutated = " ".join(tokens)
    try:
        chain = [parse_policy(mutated, name)]
        if chain[0].extends == "1.0":
            chain.insert(0, parse_policy(parent_text, "1.0.policy"))
        check_policy(chain, catalogue)
    except PolicyError as err:
        assert err.diagnostics and all(d.code and d.message for d in err.diagnostics)
        for d in err.diagnostics:
            d.one_line()


_ODD_TEXT = ["\x00", "\x1b", "\ufeff", "\r", "\r\n", "\t", "\u2028", "\x85", '"', "{", "}", "(", ")", "[",
             "]", ":", "#", "\\", "한", "é", "1e999", "==", " in ", "\n", "{c.name", "'"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_policies_with_odd_characters_give_one_line_diagnostics(catalogue, data):
    """Characters, not tokens: control characters, line separators, stray quotes. Every
    problem is a diagnostic whose line is one printable line."""
    parent_text = (POLICIES / "1.0.policy").read_text(encoding="utf-8")
    text = list((POLICIES / "2.0-draft.policy").read_text(encoding="utf-8"))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text) - 1))
        if data.draw(st.booleans()):
            text.insert(i, data.draw(st.sampled_from(_ODD_TEXT)))
        else:
            del text[i: i + data.draw(st.integers(1, 5))]
    try:
        chain = [parse_policy("".join(text), "2.0-draft.policy")]
        if chain[0].extends == "1.0":
            chain.insert(0, parse_policy(parent_text, "1.0.policy"))
        check_policy(chain, catalogue)
    except PolicyError as err:
        for d in err.diagnostics:
            for line in (d.one_line(), d.error_line()):
                assert line.isprintable(), line


# -- the evaluator against a reference interpreter --------------------------------


def kleene_and(vals):
    return False if False in vals else (None if None in vals else True)


def kleene_or(vals):
    return True if True in vals else (None if None in vals else False)


def reference(e, facts, env):
    """A direct, slow reading of the language's semantics (None is unknown)."""
    r = lambda x: reference(x, facts, env)  # noqa: E731
    if isinstance(e, ast.Literal):
        return e.value
    if isinstance(e, ast.ListLit):
        return [r(i) for i in e.items]
    if isinstance(e, ast.Path):
        v = env[e.root] if e.root in env else facts.get(e.root)
        for f in e.fields:
            v = v.get(f) if isinstance(v, dict) else None
        return v
    if isinstance(e, ast.Not):
        v = r(e.operand)
        return None if v is None else not v
    if isinstance(e, ast.BoolChain):
        vals = [r(o) for o in e.operands]
        if e.op == "and":
            return False if False in vals else (None if None in vals else True)
        return True if True in vals else (None if None in vals else False)
    if isinstance(e, ast.Implies):
        a, b = r(e.left), r(e.right)
        a = None if a is None else not a
        return True if True in (a, b) else (None if None in (a, b) else False)
    if isinstance(e, ast.Compare):
        a, b = r(e.left), r(e.right)
        if a is None or b is None:
            return None
        if isinstance(a, list) and isinstance(b, list) and e.op in ("==", "!="):
            # an `and` of the items' equalities
            same = False if len(a) != len(b) else kleene_and(
                [None if x is None or y is None else x == y for x, y in zip(a, b)])
            return None if same is None else same == (e.op == "==")
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
    if isinstance(e, ast.Member):
        a, b = r(e.item), r(e.collection)
        if b is None:
            return None
        if isinstance(b, list):  # an `or` of equalities with the items
            found = kleene_or([None if a is None or x is None else a == x for x in b])
        else:
            found = None if a is None else a in b
        return None if found is None else found != e.negated
    if isinstance(e, ast.Arith):
        a, b = r(e.left), r(e.right)
        if a is None or b is None or (e.op == "/" and b == 0):
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[e.op]
    if isinstance(e, ast.Neg):
        v = r(e.operand)
        return None if v is None else -v
    if isinstance(e, ast.Otherwise):
        v = r(e.value)
        return r(e.default) if v is None else v
    if isinstance(e, ast.Call):
        v = r(e.args[0])
        if e.function == "known":
            return v is not None
        if v is None:
            return None
        return {"abs": abs, "decided": lambda x: None if x == "unknown" else x}[e.function](v)
    if isinstance(e, (ast.Quantifier, ast.Count)):
        items = r(e.source)
        if items is None:
            return None
        vals = []
        for item in items:
            inner = dict(env, **{e.var: item})
            f = True if e.where is None else reference(e.where, facts, inner)
            if isinstance(e, ast.Count):
                vals.append(f)
                continue
            b = reference(e.body, facts, inner)
            if e.kind == "all":
                nf = None if f is None else not f
                vals.append(True if True in (nf, b) else (None if None in (nf, b) else False))
            else:
                vals.append(False if False in (f, b) else (None if None in (f, b) else True))
        if isinstance(e, ast.Count):
            return None if None in vals else sum(1 for v in vals if v is True)
        if e.kind == "all":
            return False if False in vals else (None if None in vals else True)
        hit = True if True in vals else (None if None in vals else False)
        return hit if e.kind == "any" else (None if hit is None else not hit)
    raise TypeError(e)


@SETTINGS
@given(cond=bool_expr(depth=4), sheet_facts=facts)
def test_evaluator_agrees_with_reference(catalogue, cond, sheet_facts):
    text = f'policy "p"\nversion "1"\nrule r {{\n level blocking\n cite "c"\n require {format_expr(cond)}\n message "m"\n}}\n'
    try:
        policy = check_policy([parse_policy(text)], catalogue)
    except PolicyError:
        return  # a generated expression the checker rejects (e.g. a list compared to itself)
    s = sheet(sheet_facts, catalogue)
    try:
        want = reference(cond, sheet_facts, {})
    except ZeroDivisionError:
        return
    got = evaluate_policy(policy, s).rules[0].outcome
    assert got == {True: "pass", False: "fail", None: "indeterminate"}[want]


@SETTINGS
@given(sheet_facts=facts)
def test_evaluation_is_deterministic(catalogue, sheet_facts):
    from engine.loader import load_policy

    policy = load_policy(POLICIES / "2.0-draft.policy", catalogue)
    first = report_json(build_report(evaluate_policy(policy, sheet(sheet_facts, catalogue))))
    # Same facts with every object's keys in reverse order: same bytes out.
    shuffled = json.loads(json.dumps(sheet_facts), object_pairs_hook=lambda kv: dict(reversed(kv)))
    again = report_json(build_report(evaluate_policy(policy, sheet(shuffled, catalogue))))
    assert first == again


@pytest.mark.parametrize("title,hole", [
    ('"a\\u000db"', 'tokenizer.origin == \\"a\\u0022b\\"'),  # a carriage return; a quote in a hole's text
    ('"x\\u2028y"', 'tokenizer.origin otherwise \\"x\\\\\\\\y\\"'),  # a line separator; a backslash
])
def test_formatting_writes_escapes_that_read_back(title, hole):
    text = (f'policy "p"\nversion "1"\ntitle {title}\nrule r {{\n  level blocking\n  cite "c"\n'
            f'  require true\n  message "m {{{hole}}}"\n}}\n')
    once = format_policy(text)
    assert parse_policy(once, "p") == parse_policy(text, "p")
    assert format_policy(once) == once and once.isascii()
