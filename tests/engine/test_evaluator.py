"""Three-valued evaluation: outcomes, verdicts, witnesses and evidence."""

import itertools

import pytest

from engine.evaluator import FAIL, INDETERMINATE, PASS, combine_verdict, evaluate_policy, prepare_policy

from .helpers import HEADER, check_text, sheet

T, F, U = True, False, None


def rule(cond: str, message: str = "m", level: str = "blocking", rid: str = "r") -> str:
    return f'rule {rid} {{\n  level {level}\n  cite "c"\n  {cond}\n  message "{message}"\n}}\n'


def outcome_of(cond: str, facts: dict, catalogue, params: str = "", **overrides):
    policy = check_text(HEADER + params + rule(cond), catalogue)
    ev = evaluate_policy(policy, sheet(facts, catalogue), overrides)
    return ev.rules[0]


def bool_fact(v):
    """`trail.present` holding a truth value, or absent (unknown)."""
    return {} if v is None else {"present": v}


KLEENE_AND = {(a, b): (F if F in (a, b) else (U if U in (a, b) else T)) for a, b in itertools.product((T, F, U), repeat=2)}
KLEENE_OR = {(a, b): (T if T in (a, b) else (U if U in (a, b) else F)) for a, b in itertools.product((T, F, U), repeat=2)}
EXPECT = {T: PASS, F: FAIL, U: INDETERMINATE}


@pytest.mark.parametrize("a,b", list(itertools.product((T, F, U), repeat=2)))
def test_kleene_and_or_implies(catalogue, a, b):
    facts = {"trail": bool_fact(a), "config": {} if b is None else {"identical": b}}
    assert outcome_of("require trail.present == true and config.identical == true", facts, catalogue).outcome \
        == EXPECT[KLEENE_AND[a, b]]
    assert outcome_of("require trail.present == true or config.identical == true", facts, catalogue).outcome \
        == EXPECT[KLEENE_OR[a, b]]
    implies = KLEENE_OR[(None if a is None else not a), b]
    assert outcome_of("require trail.present == true implies config.identical == true", facts, catalogue).outcome \
        == EXPECT[implies]


@pytest.mark.parametrize("a", (T, F, U))
def test_not_forbid_known_otherwise(catalogue, a):
    facts = {"trail": bool_fact(a)}
    neg = None if a is None else not a
    assert outcome_of("require not trail.present", facts, catalogue).outcome == EXPECT[neg]
    assert outcome_of("forbid trail.present", facts, catalogue).outcome == EXPECT[neg]
    assert outcome_of("require known(trail.present)", facts, catalogue).outcome == EXPECT[a is not None]
    assert outcome_of("require trail.present otherwise true", facts, catalogue).outcome == EXPECT[a is not False]


def comps(*relations):
    return {"components": [{"name": f"c{i}", "kind": "language_model" if i == 0 else "vision_encoder",
                            "match": {} if r is None else {"relation": r, "reference": "ref", "method": "digest"}}
                           for i, r in enumerate(relations)]}


@pytest.mark.parametrize("relations,any_,all_,none_", [
    ((), F, T, T),
    (("identical",), T, T, F),
    (("independent",), F, F, T),
    (("identical", None), T, U, F),
    (("independent", None), U, F, U),
    (("identical", "independent"), T, F, F),
    ((None, None), U, U, U),
])
def test_quantifiers(catalogue, relations, any_, all_, none_):
    facts = comps(*relations)
    for kind, want in (("any", any_), ("all", all_), ("none", none_)):
        cond = f'require {kind} c in components: c.match.relation == "identical"'
        assert outcome_of(cond, facts, catalogue).outcome == EXPECT[want], kind
        # an inner quantifier (short-circuiting) agrees with the outer one
        inner = f'require true and ({kind} c in components: c.match.relation == "identical")'
        assert outcome_of(inner, facts, catalogue).outcome == EXPECT[want], kind


def test_where_filter_is_three_valued(catalogue):
    facts = comps("identical", "identical")
    del facts["components"][1]["kind"]
    cond = 'forbid any c in components where c.kind == "vision_encoder": c.match.relation == "identical"'
    r = outcome_of(cond, facts, catalogue)
    assert r.outcome == INDETERMINATE and r.unknown == ("components[1].kind",)
    cond_all = 'require all c in components where c.kind == "vision_encoder": c.match.relation == "independent"'
    assert outcome_of(cond_all, facts, catalogue).outcome == INDETERMINATE
    facts["components"][1]["match"]["relation"] = "independent"
    assert outcome_of(cond_all, facts, catalogue).outcome == PASS  # unknown filter, but the body holds


def test_witnesses_messages_and_evidence(catalogue):
    facts = comps("identical", "independent", "identical")
    cond = 'forbid any c in components: c.match.relation == "identical"'
    policy = check_text(HEADER + rule(cond, message="{c.name} reuses {c.match.reference}"), catalogue)
    res = evaluate_policy(policy, sheet(facts, catalogue)).rules[0]
    assert res.outcome == FAIL
    assert res.witnesses == ("components[0]", "components[2]")
    assert res.message == "c0 reuses ref; c2 reuses ref"
    assert [(e.path, e.value, e.detector, e.method) for e in res.evidence] == [
        ("components[0].match.relation", "identical", "weights@1", "digest"),
        ("components[2].match.relation", "identical", "weights@1", "digest"),
    ]


def test_passing_rule_shows_every_fact_read(catalogue):
    facts = comps("independent", "independent")
    res = outcome_of('forbid any c in components: c.match.relation == "identical"', facts, catalogue)
    assert res.outcome == PASS and res.message == "" and res.witnesses == ()
    assert [e.path for e in res.evidence] == ["components[0].match.relation", "components[1].match.relation"]


def test_indeterminate_names_the_unknown_facts(catalogue):
    facts = comps("independent", None)
    res = outcome_of('require all c in components: c.match.relation == "independent"', facts, catalogue)
    assert res.outcome == INDETERMINATE
    assert res.unknown == ("components[1].match.relation",)
    assert res.message == "cannot decide: `components[1].match.relation` unknown"
    assert res.witnesses == ("components[1]",)


def test_decided_turns_a_detectors_unknown_into_unknown(catalogue):
    facts = comps("unknown")
    plain = outcome_of('require all c in components: c.match.relation == "independent"', facts, catalogue)
    assert plain.outcome == FAIL
    decided = outcome_of('require all c in components: decided(c.match.relation) == "independent"', facts, catalogue)
    assert decided.outcome == INDETERMINATE and decided.unknown == ("components[0].match.relation",)


def test_guarded_reads_are_not_reported_unknown(catalogue):
    res = outcome_of("require (tokenizer.vocab_overlap otherwise 0) < 0.5 and trail.present", {}, catalogue)
    assert res.outcome == INDETERMINATE and res.unknown == ("trail.present",)


def test_nested_quantifier_paths(catalogue):
    facts = {"components": [{"name": "lm", "match": {"layers": [{"name": "l0", "p_value": 0.5},
                                                                 {"name": "l1", "p_value": 1e-9}]}}]}
    res = outcome_of("forbid any c in components: any l in c.match.layers: l.p_value < 1e-6", facts, catalogue)
    assert res.outcome == FAIL
    assert [e.path for e in res.evidence] == ["components[0].match.layers[0].p_value",
                                             "components[0].match.layers[1].p_value"]


def test_arithmetic_count_and_functions(catalogue):
    facts = {"components": [{"name": "a", "parameters": 30, "kind": "vision_encoder"},
                            {"name": "b", "parameters": 70, "kind": "language_model"}],
             "model": {"parameters": 100}}
    ok = [
        'require count(c in components where c.kind == "vision_encoder") == 1',
        "require size(components) == 2",
        "require count(c in components) == 2",
        "require any c in components: c.parameters / model.parameters > 0.5",
        "require -model.parameters + 2 * 50 == 0",
        'require upper("ab") == "AB" and lower("AB") == "ab" and starts_with("abc", "ab")',
        'require contains("abc", "bc") and "b" in "abc" and min(3, 1, 2) == 1 and max(1, 4) == 4 and abs(-2) == 2',
    ]
    for cond in ok:
        assert outcome_of(cond, facts, catalogue).outcome == PASS, cond
    assert outcome_of("require model.parameters / 0 > 1", facts, catalogue).outcome == INDETERMINATE


def test_unknown_count_when_a_filter_is_unknown(catalogue):
    facts = {"components": [{"name": "a"}, {"name": "b", "kind": "head"}]}
    res = outcome_of('require count(c in components where c.kind == "head") == 1', facts, catalogue)
    assert res.outcome == INDETERMINATE


def test_parameters_and_overrides(catalogue):
    params = 'param limit: number = 0.9\n'
    facts = {"tokenizer": {"vocab_overlap": 0.95}}
    assert outcome_of("forbid tokenizer.vocab_overlap >= limit", facts, catalogue, params).outcome == FAIL
    res = outcome_of("forbid tokenizer.vocab_overlap >= limit", facts, catalogue, params, limit=0.99)
    assert res.outcome == PASS and res.params == (("limit", 0.99),)
    with pytest.raises(KeyError):
        prepare_policy(check_text(HEADER + params + rule("forbid tokenizer.vocab_overlap >= limit"), catalogue),
                       {"limt": 1.0})


def test_verdict_combination():
    assert combine_verdict([("blocking", PASS), ("advisory", FAIL)]) == PASS
    assert combine_verdict([("blocking", INDETERMINATE), ("advisory", FAIL)]) == INDETERMINATE
    assert combine_verdict([("blocking", INDETERMINATE), ("blocking", FAIL)]) == FAIL
    assert combine_verdict([("advisory", INDETERMINATE)]) == PASS
    assert combine_verdict([]) == PASS


def test_message_language(catalogue):
    text = HEADER + 'rule r {\n level blocking\n cite "c"\n forbid true\n message en "english"\n message ko "한국어"\n}\n'
    policy = check_text(text, catalogue)
    s = sheet({}, catalogue)
    assert evaluate_policy(policy, s).rules[0].message == "english"
    assert evaluate_policy(policy, s, lang="ko").rules[0].message == "한국어"


def test_message_values_are_formatted(catalogue):
    facts = {"tokenizer": {"vocab_overlap": 0.123456, "vocab_size": 64000, "present": True}, "model": {}}
    text = HEADER + rule("forbid true", message="{tokenizer.vocab_overlap} {tokenizer.vocab_size} "
                         "{tokenizer.present} {tokenizer.reference} {model.weight_files}")
    res = evaluate_policy(check_text(text, catalogue), sheet(facts, catalogue)).rules[0]
    assert res.message == "0.123456 64000 true unknown unknown"


@pytest.mark.parametrize("value,shown", [
    (0.99996, "0.99996"),  # never rounded to 1, which would read as a full copy
    (123456.7, "123456.7"),  # no exponent for a number a reader meets every day
    (4e-34, "4e-34"),  # a p-value that small is best read so
    (2.0, "2"),
    (7.000000000000001, "7"),  # arithmetic noise is not shown
])
def test_numbers_in_messages_are_shown_as_the_sheet_holds_them(catalogue, value, shown):
    facts = {"tokenizer": {"vocab_overlap": value}}
    text = HEADER + rule("forbid true", message="{tokenizer.vocab_overlap}")
    assert evaluate_policy(check_text(text, catalogue), sheet(facts, catalogue)).rules[0].message == shown


def test_an_empty_list_in_a_message_reads_none(catalogue):
    text = HEADER + rule("forbid true", message="bases: {card.base_model}")
    res = evaluate_policy(check_text(text, catalogue), sheet({"card": {"base_model": []}}, catalogue)).rules[0]
    assert res.message == "bases: none"


@pytest.mark.parametrize("n", [2, 4])  # a short list is gone through, a long one looked up
def test_join_keeps_items_whose_key_is_unknown(catalogue, n):
    declared = [{"name": "lm", "source": "own"}, {"source": "external"}, {"name": "enc", "source": "external"},
                {"name": "x"}][:n]
    facts = {"components": [{"name": "lm", "match": {"relation": "derived", "method": "digest"}},
                            {"name": "enc", "match": {"relation": "identical"}}],
             "declared": {"components": declared}}
    cond = ('require all c in components where decided(c.match.relation) in ["identical", "derived"]:\n'
            '    any d in declared.components where d.name == c.name: d.source == "external"')
    res = outcome_of(cond, facts, catalogue)
    assert res.outcome == INDETERMINATE and res.unknown == ("declared.components[1].name",)
    first = [("components[0].match.relation", "derived", "weights@1", "digest"),
             ("components[0].name", "lm", "weights@1", None)]
    second = [("components[1].match.relation", "identical", "weights@1", None),
              ("components[1].name", "enc", "weights@1", None)]
    declared_reads = [("declared.components[0].name", "lm", "manifest@1", None),
                      ("declared.components[0].source", "own", "manifest@1", None),
                      ("declared.components[1].name", None, "manifest@1", None),
                      ("declared.components[1].source", "external", "manifest@1", None)]
    # With the long list the second component finds its declaration, so only the first is open.
    assert res.witnesses == (("components[0]", "components[1]") if n == 2 else ("components[0]",))
    assert [tuple(e) for e in res.evidence] == first + (second if n == 2 else []) + declared_reads


def test_an_unknown_list_is_evidence(catalogue):
    res = outcome_of('require any c in components: c.match.relation == "identical"', {}, catalogue)
    assert res.outcome == INDETERMINATE and res.unknown == ("components",)
    assert [tuple(e) for e in res.evidence] == [("components", None, "weights@1", None)]


def test_a_list_of_values_is_evidence_and_a_list_of_objects_is_shown_through_its_items(catalogue):
    facts = {"card": {"base_model": ["org/base"]},
             "components": [{"name": "lm", "kind": "language_model", "match": {"relation": "derived"}}]}
    res = outcome_of("forbid size(card.base_model) > 0", facts, catalogue)
    assert res.outcome == FAIL
    assert [tuple(e) for e in res.evidence] == [("card.base_model", ["org/base"], "card@1", None)]
    res = outcome_of('forbid size(card.base_model) > 0 or (any c in components: c.match.relation == "derived")',
                     {**facts, "card": {"base_model": []}}, catalogue)
    assert res.outcome == FAIL
    assert [(e.path, e.value) for e in res.evidence] == [("card.base_model", []),
                                                        ("components[0].match.relation", "derived")]


# -- lists, membership, counts and division, as the language documents them ------------


@pytest.mark.parametrize("cond,members,expected", [
    ('require declared.members == ["Hanbit Labs"]', ["Hanbit Labs"], PASS),
    ('require declared.members == ["Hanbit Labs"]', ["Hanbit Labs", "Seoul Vision"], FAIL),
    ('require declared.members != ["Hanbit Labs"]', ["Hanbit Labs"], FAIL),
    ("require declared.members == []", [], PASS),
    ("require declared.members == names", ["a", "b"], PASS),
    ("require names == declared.members", ["a", "b"], PASS),
    ("require names == declared.members", ["b", "a"], FAIL),  # lists are in order
])
def test_lists_compare_by_their_items(catalogue, cond, members, expected):
    params = 'param names: list[string] = ["a", "b"]\n  "names"\n'
    assert outcome_of(cond, {"declared": {"members": members}}, catalogue, params).outcome == expected


@pytest.mark.parametrize("cond,licence,expected", [
    ('require "US" in [card.license]', None, INDETERMINATE),  # `"US" == unknown`
    ('require "US" not in [card.license]', None, INDETERMINATE),
    ('require "US" in [card.license, "US"]', None, PASS),  # found: decided whatever the unknown is
    ('require "US" not in [card.license, "US"]', None, FAIL),
    ('require "US" in [card.license]', "US", PASS),
    ('require "US" in [card.license]', "mit", FAIL),
    # Nothing is in an empty list, whatever the item is.
    ("require card.license in nothing", None, FAIL),
    ("require card.license not in nothing", None, PASS),
])
def test_membership_in_a_list_holding_an_unknown(catalogue, cond, licence, expected):
    facts = {"card": {} if licence is None else {"license": licence}}
    params = 'param nothing: list[string] = []\n  "no values"\n'
    assert outcome_of(cond, facts, catalogue, params).outcome == expected


@pytest.mark.parametrize("cond,expected", [
    ('require [card.license] == ["x"]', INDETERMINATE),  # as far as it is known, it may be
    ('require [card.license, "a"] == ["x", "b"]', FAIL),  # another pair differs: decided
    ('require [card.license] != ["x", "y"]', PASS),  # lengths differ: decided
])
def test_a_list_with_an_unknown_item_equals_another_as_far_as_it_is_known(catalogue, cond, expected):
    assert outcome_of(cond, {"card": {}}, catalogue).outcome == expected


def test_shipped_reuse_rule_fails_a_copy_whose_reference_is_not_named(catalogue):
    """`c.match.reference not in own_references` (empty by default) holds for any reference,
    named or not: an identical component fails the rule even when its reference is unknown."""
    params = 'param own_references: list[string] = []\n  "own"\n'
    res = outcome_of("forbid any c in components where c.match.reference not in own_references:\n"
                     '    decided(c.match.relation) in ["identical", "derived"]',
                     {"components": [{"name": "enc", "match": {"relation": "identical"}}]}, catalogue, params)
    assert res.outcome == FAIL


@pytest.mark.parametrize("kinds,cond,expected", [
    # One backbone known: at least one, whatever the unknown component is.
    (["language_model", None], "count(c in components where c.kind in backbone) >= 1", PASS),
    (["language_model", None], "1 <= count(c in components where c.kind in backbone)", PASS),
    (["language_model", None], "count(c in components where c.kind in backbone) == 1", INDETERMINATE),
    (["language_model", None], "count(c in components where c.kind in backbone) > 2", FAIL),
    (["language_model", None], "count(c in components where c.kind in backbone) != 3", PASS),
    (["head", None], "count(c in components where c.kind in backbone) >= 1", INDETERMINATE),
    (["head", "head"], "count(c in components where c.kind in backbone) >= 1", FAIL),
    (["language_model", None], "count(c in components where c.kind in backbone) + 0 >= 1", INDETERMINATE),
])
def test_a_count_is_decided_when_its_unknown_items_cannot_change_the_answer(catalogue, kinds, cond, expected):
    params = 'param backbone: list[string] = ["language_model"]\n  "kinds"\n'
    facts = {"components": [{"name": f"c{i}"} | ({} if k is None else {"kind": k}) for i, k in enumerate(kinds)]}
    res = outcome_of(f"require {cond}", facts, catalogue, params)
    assert res.outcome == expected
    if expected == INDETERMINATE and "+" not in cond:
        assert res.unknown == ("components[1].kind",)


def test_division_by_zero_is_named_as_what_left_the_rule_open(catalogue):
    res = outcome_of("require model.parameters / (trail.checkpoints - 6) > 0",
                     {"model": {"parameters": 10}, "trail": {"checkpoints": 6}}, catalogue)
    assert res.outcome == INDETERMINATE and res.unknown == ()
    assert res.message == "cannot decide: it divides by zero"
    res = outcome_of("require model.parameters / trail.checkpoints > 0",
                     {"model": {"parameters": 10}, "trail": {}}, catalogue)
    assert res.message == "cannot decide: `trail.checkpoints` unknown"


def test_items_of_a_list_of_values_are_evidence(catalogue):
    params = 'param banned: list[string] = ["Banned Lab"]\n  "banned"\n'
    res = outcome_of("forbid any m in declared.members: m in banned",
                     {"declared": {"members": ["Hanbit Labs", "Banned Lab"]}}, catalogue, params)
    assert res.outcome == FAIL and res.witnesses == ("declared.members[1]",)
    assert [(e.path, e.value, e.detector) for e in res.evidence] == [
        ("declared.members[1]", "Banned Lab", "manifest@1")]
    # Items of a parameter's list are not facts: no evidence.
    res = outcome_of("forbid any k in banned: k in declared.members",
                     {"declared": {"members": ["Banned Lab"]}}, catalogue, params)
    assert res.outcome == FAIL and [e.path for e in res.evidence] == ["declared.members"]


@pytest.mark.parametrize("origin,shown", [("US", "origin: US"), (None, "origin: none {of it}")])
def test_a_message_hole_may_quote_a_text(catalogue, origin, shown):
    text = HEADER + rule("forbid true", message='origin: {tokenizer.origin otherwise \\"none {of it}\\"}')
    facts = {"tokenizer": {} if origin is None else {"origin": origin}}
    assert evaluate_policy(check_text(text, catalogue), sheet(facts, catalogue)).rules[0].message == shown


def test_arithmetic_beyond_floating_point_leaves_the_rule_open_and_says_why(catalogue):
    big = "model.parameters * model.parameters"
    res = outcome_of(f"require {' * '.join([big] * 6)} / 3 > 1", {"model": {"parameters": 10**38}}, catalogue)
    assert res.outcome == INDETERMINATE
    assert res.message == "cannot decide: a number grows beyond what it can compute"


def test_arithmetic_past_floating_point_has_no_value(catalogue):
    res = outcome_of("require tokenizer.vocab_overlap * 1e308 * 10 - tokenizer.vocab_overlap * 1e308 * 10 == 0",
                     {"tokenizer": {"vocab_overlap": 0.5}}, catalogue)
    assert res.outcome == INDETERMINATE and res.message == "cannot decide: a number grows beyond what it can compute"


def test_a_decided_rule_names_no_unknown_fact(catalogue):
    res = outcome_of("require trail.present == true or trail.continuous == true",
                     {"trail": {"continuous": True}}, catalogue)
    assert res.outcome == PASS and res.unknown == ()


def test_an_empty_list_that_decides_a_rule_is_its_evidence(catalogue):
    params = 'param backbone: list[string] = ["language_model"]\n  "kinds"\n'
    res = outcome_of("require count(c in components where c.kind in backbone) >= 1", {"components": []},
                     catalogue, params)
    assert res.outcome == FAIL and [(e.path, e.value) for e in res.evidence] == [("components", [])]
    res = outcome_of("require all c in components: c.kind in backbone", {"components": []}, catalogue, params)
    assert res.outcome == PASS and [(e.path, e.value) for e in res.evidence] == [("components", [])]


def test_a_fact_named_method_is_not_its_own_detection_method(catalogue):
    res = outcome_of('require declared.init.method == "random"', {"declared": {"init": {"method": "mixed"}}},
                     catalogue)
    assert [(e.path, e.value, e.method) for e in res.evidence] == [("declared.init.method", "mixed", None)]
