"""Fact sheets at the border: JSON paths in errors, unknown-is-null, strict types, digests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.diagnostics import InputError
from engine.facts import (
    FACTS_SCHEMA_ID,
    format_json_path,
    load_fact_sheet,
    parse_fact_sheet,
    read_json,
    validate_fact_sheet,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "facts"


def envelope(facts: dict, **extra) -> dict:
    data = {
        "schema": FACTS_SCHEMA_ID,
        "subject": {"name": "m", "digest": None},
        "detectors": [{"name": "weights", "version": "1.0.0", "emits": ["components", "model"]}],
        "facts": facts,
    }
    data.update(extra)
    return data


def component(**match) -> dict:
    return {"name": "language_model", "kind": "language_model", "parameters": 10, "reinitialized": False,
            "match": {"reference": "llama-3-8b", "origin": "US", "relation": "independent", **match}}


def problem(data, catalogue, name: str = "sheet.json") -> InputError:
    with pytest.raises(InputError) as caught:
        validate_fact_sheet(data, name, catalogue)
    return caught.value


# -- JSON paths ------------------------------------------------------------------------


@pytest.mark.parametrize("loc,text", [
    ((), "(top level)"),
    (("subject",), "subject"),
    (("schema_",), "schema"),
    (("facts", "components", 1, "match", "relation"), "facts.components[1].match.relation"),
    (("facts", "components", 0, "match", "layers", 12, "p_value"), "facts.components[0].match.layers[12].p_value"),
    (("detectors", 3), "detectors[3]"),
    (("facts", "declared", "init", "method"), "facts.declared.init.method"),
])
def test_format_json_path(loc, text):
    assert format_json_path(loc) == text


def test_a_problem_names_the_file_and_the_deep_path(catalogue):
    data = envelope({"components": [component(), component(relation="frozen")]})
    err = problem(data, catalogue, "archive/model-a.json")
    assert err.file == "archive/model-a.json"
    assert err.place == "facts.components[1].match.relation"
    assert "`identical`" in err.problem and '"frozen"' in err.problem
    assert str(err) == f"archive/model-a.json: facts.components[1].match.relation: {err.problem}"
    assert "\n" not in str(err)


# -- the first problem and how many more -------------------------------------------------


def test_one_problem_has_no_count(catalogue):
    err = problem(envelope({"components": [component(relation="frozen")]}), catalogue)
    assert "more problem" not in err.problem


def test_two_problems_say_one_more(catalogue):
    data = envelope({"components": [component(relation="frozen")]}, created="2026-01-01")
    err = problem(data, catalogue)
    assert err.problem.endswith("(and 1 more problem)")


def test_four_problems_say_three_more_and_report_the_first_by_path(catalogue):
    data = envelope({"components": [{"name": "lm", "kind": "decoder"}], "trail": {"present": "yes"},
                     "weights_digest": "x"}, created="2026-01-01")
    err = problem(data, catalogue)
    assert err.problem.endswith("(and 3 more problems)")
    # Problems are ordered by their path; `created` sorts before `facts...`.
    assert err.place == "created"
    assert err.problem.startswith("is not a field of a fact sheet")


def test_a_wrong_number_is_one_problem_at_its_own_path(catalogue):
    err = problem(envelope({"components": [component(similarity="0.9")]}), catalogue)
    assert err.place == "facts.components[0].match.similarity"
    assert err.problem == 'expected a number, got `"0.9"`'


def test_problems_are_ordered_by_list_index_as_numbers(catalogue):
    comps = [component() for _ in range(11)]
    comps[2]["kind"] = "decoder"
    comps[10]["kind"] = "decoder"
    err = problem(envelope({"components": comps}), catalogue)
    assert err.place == "facts.components[2].kind"


# -- unknown is null -------------------------------------------------------------------


def _all_null(t) -> object:
    """A value of catalogue type `t` whose every fact is null (lists hold one such item)."""
    if t.kind == "record":
        return {k: _all_null(sub) if sub.kind in ("record", "list") and _has_records(sub) else None
                for k, sub in t.fields.items()}
    if t.kind == "list" and t.elem is not None and t.elem.kind == "record":
        return [_all_null(t.elem)]
    return None


def _has_records(t) -> bool:
    return t.kind == "record" or (t.kind == "list" and t.elem is not None and t.elem.kind == "record")


def test_every_fact_may_be_null(catalogue):
    facts = _all_null(catalogue.root)
    assert facts["components"][0]["match"]["layers"] == [{"name": None, "similarity": None, "p_value": None,
                                                         "identical_fraction": None}]
    assert facts["declared"]["init"] == {"method": None, "seed": None}
    sheet = validate_fact_sheet(envelope(facts), "nulls", catalogue)
    assert sheet.facts == facts


@pytest.mark.parametrize("key", ["model", "components", "config", "tokenizer", "declared", "trail"])
def test_a_whole_group_may_be_null(catalogue, key):
    validate_fact_sheet(envelope({key: None}), "nulls", catalogue)


@pytest.mark.parametrize("path", [("match",), ("match", "layers"), ("prefixes",)])
def test_nested_groups_and_lists_may_be_null(catalogue, path):
    comp = component()
    node = comp
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = None
    validate_fact_sheet(envelope({"components": [comp], "declared": {"init": None, "components": None}}),
                        "nulls", catalogue)


def test_absent_facts_are_accepted(catalogue):
    sheet = validate_fact_sheet(envelope({}), "empty", catalogue)
    assert sheet.facts == {}
    validate_fact_sheet(envelope({"components": [{}]}), "bare", catalogue)


def test_the_subject_digest_may_be_null_but_the_subject_not(catalogue):
    validate_fact_sheet(envelope({}), "s", catalogue)
    err = problem(envelope({}, subject=None), catalogue)
    assert err.place == "subject"


def test_the_envelope_itself_is_not_optional(catalogue):
    assert problem(envelope(None), catalogue).place == "facts"
    data = envelope({})
    del data["detectors"]
    err = problem(data, catalogue)
    assert (err.place, err.problem) == ("detectors", "is missing")
    err = problem(None, catalogue)
    assert err.place == "(top level)" and "null" in err.problem
    err = problem([envelope({})], catalogue)
    assert err.place == "(top level)" and "a list" in err.problem


# -- strict types ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, 0.5, 1.0, 0.0])
def test_ints_and_floats_are_numbers(catalogue, value):
    sheet = validate_fact_sheet(envelope({"components": [component(similarity=value)],
                                          "tokenizer": {"vocab_overlap": value}}), "n", catalogue)
    assert sheet.facts["components"][0]["match"]["similarity"] == value


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(catalogue, value):
    err = problem(envelope({"components": [component(similarity=value)]}), catalogue)
    assert err.place.startswith("facts.components[0].match.similarity")
    assert f"expected a number, got `{str(value).lower()}`" in err.problem


@pytest.mark.parametrize("value,shown", [("0.9", '`"0.9"`'), ([0.9], "a list"), ({"v": 0.9}, "an object")])
def test_other_values_are_not_numbers(catalogue, value, shown):
    err = problem(envelope({"trail": {"min_link_similarity": value}}), catalogue)
    assert err.place.startswith("facts.trail.min_link_similarity")
    assert f"expected a number, got {shown}" in err.problem


@pytest.mark.parametrize("value", [1, "true", "yes", 0])
def test_booleans_are_strict(catalogue, value):
    err = problem(envelope({"trail": {"present": value}}), catalogue)
    assert err.place == "facts.trail.present"
    assert "expected true or false" in err.problem


@pytest.mark.parametrize("value", [1, True])
def test_texts_are_strict(catalogue, value):
    err = problem(envelope({"declared": {"organisation": value}}), catalogue)
    assert err.place == "facts.declared.organisation"
    assert "expected a text" in err.problem


def test_a_list_of_texts_checks_each_item(catalogue):
    err = problem(envelope({"model": {"weight_files": ["a.safetensors", 3]}}), catalogue)
    assert err.place == "facts.model.weight_files[1]"


def test_a_list_of_records_must_be_a_list(catalogue):
    err = problem(envelope({"components": {"language_model": component()}}), catalogue)
    assert (err.place, err.problem) == ("facts.components", "expected a list, got an object")


@pytest.mark.parametrize("path,value,expected", [
    (("components", 0, "kind"), "decoder", "`language_model`"),
    (("components", 0, "match", "relation"), "frozen", "`identical`, `derived`, `independent` or `unknown`"),
    (("components", 0, "match", "relation"), "Identical", "`identical`"),
    (("declared", "init", "method"), "scratch", "`random`, `pretrained` or `mixed`"),
    (("declared", "components", 0, "source"), "vendor", "`own` or `external`"),
])
def test_enums_are_checked(catalogue, path, value, expected):
    facts = {"components": [component()], "declared": {"init": {"method": "random"},
                                                      "components": [{"name": "language_model", "source": "own"}]}}
    node = facts
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    err = problem(envelope(facts), catalogue)
    assert err.place == "facts." + format_json_path(path)
    assert expected in err.problem and f'`"{value}"`' in err.problem


def test_every_enum_value_is_accepted(catalogue):
    for relation in ("identical", "derived", "independent", "unknown"):
        validate_fact_sheet(envelope({"components": [component(relation=relation)]}), "e", catalogue)
    for kind in ("language_model", "vision_encoder", "audio_encoder", "projector", "embeddings", "head", "other"):
        validate_fact_sheet(envelope({"components": [dict(component(), kind=kind)]}), "e", catalogue)


def test_unknown_fields_are_refused_at_every_depth(catalogue):
    assert problem(envelope({"weights_digest": "x"}), catalogue).place == "facts.weights_digest"
    assert "not a fact any installed detector declares" in problem(envelope({"weights_digest": "x"}),
                                                                  catalogue).problem
    comp = component()
    comp["match"]["confidence"] = 0.9
    assert problem(envelope({"components": [comp]}), catalogue).place == "facts.components[0].match.confidence"
    assert problem(envelope({}, created="today"), catalogue).problem == "is not a field of a fact sheet"
    assert problem(envelope({}, subject={"name": "m", "path": "/abs"}), catalogue).place == "subject.path"


def test_the_schema_id_is_checked(catalogue):
    err = problem(envelope({}, schema="originality.facts/2"), catalogue)
    assert err.place == "schema"
    assert "`originality.facts/1`" in err.problem


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused_at_their_path(catalogue, value):
    err = problem(envelope({"components": [component(similarity=value)]}), catalogue)
    assert err.place.startswith("facts.components[0].match.similarity")


# -- strict JSON -----------------------------------------------------------------------


@pytest.mark.parametrize("text,place", [
    ('{"a": 1,}', "1:9"),
    ('{\n  "a": 1\n', "3:1"),
    ('', "1:1"),
    ('{"a": tru}', "1:7"),
])
def test_json_syntax_errors_have_line_and_column(tmp_path, text, place):
    path = tmp_path / "x.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_json(path)
    assert str(caught.value).startswith(f"{path}:{place}: invalid JSON")


def test_duplicate_keys_are_refused(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"subject": {"name": "a", "name": "b"}}', encoding="utf-8")
    with pytest.raises(InputError, match="key `name` appears twice"):
        read_json(path)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_are_refused(tmp_path, constant):
    path = tmp_path / "x.json"
    path.write_text('{"a": %s}' % constant, encoding="utf-8")
    with pytest.raises(InputError, match="invalid JSON") as caught:
        read_json(path)
    assert str(path) in str(caught.value)


def test_a_json_constant_is_reported_where_it_is(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{\n  "a": 1,\n  "b": NaN\n}\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_json(path)
    assert str(caught.value).startswith(f"{path}:3:8: ")


def test_non_utf8_json_is_refused_with_the_byte(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(InputError) as caught:
        read_json(path)
    assert str(caught.value) == f"{path}: byte 10: is not valid UTF-8"


def test_missing_and_folder_paths(tmp_path, catalogue):
    with pytest.raises(InputError, match="no such fact sheet"):
        load_fact_sheet(tmp_path / "nope.json", catalogue)
    with pytest.raises(InputError, match="is a folder, not a fact sheet"):
        load_fact_sheet(tmp_path, catalogue)


# -- digests ---------------------------------------------------------------------------


def _example() -> dict:
    return json.loads((EXAMPLES / "frozen-vision-encoder.json").read_text(encoding="utf-8"))


def _reorder(value):
    if isinstance(value, dict):
        return {k: _reorder(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(v) for v in value]
    return value


def test_digest_is_stable_under_key_order_and_whitespace(tmp_path, catalogue):
    data = _example()
    variants = {
        "sorted.json": json.dumps(data, sort_keys=True, indent=2),
        "compact.json": json.dumps(data, separators=(",", ":")),
        "reversed.json": json.dumps(_reorder(data), indent=4),
        "crlf.json": json.dumps(_reorder(data), indent="\t").replace("\n", "\r\n") + "\r\n",
        "escaped.json": json.dumps(data, ensure_ascii=True, indent=1),
    }
    digests = set()
    for name, text in variants.items():
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
        digests.add(load_fact_sheet(tmp_path / name, catalogue).digest)
    assert len(digests) == 1
    digest = digests.pop()
    assert digest.startswith("sha256:") and len(digest) == len("sha256:") + 64
    assert parse_fact_sheet(variants["compact.json"].encode(), "bytes", catalogue).digest == digest


def test_digest_changes_with_any_value(catalogue):
    data = _example()
    before = validate_fact_sheet(data, "a", catalogue).digest
    changed = copy.deepcopy(data)
    changed["facts"]["components"][2]["match"]["identical_fraction"] = 0.999
    assert validate_fact_sheet(changed, "a", catalogue).digest != before
    renamed = copy.deepcopy(data)
    renamed["subject"]["name"] = "another-model"
    assert validate_fact_sheet(renamed, "a", catalogue).digest != before


def test_digest_does_not_depend_on_the_file_name(tmp_path, catalogue):
    text = (EXAMPLES / "frozen-vision-encoder.json").read_text(encoding="utf-8")
    (tmp_path / "copy.json").write_text(text, encoding="utf-8")
    a = load_fact_sheet(EXAMPLES / "frozen-vision-encoder.json", catalogue)
    b = load_fact_sheet(tmp_path / "copy.json", catalogue)
    assert a.digest == b.digest and a.name != b.name


def test_validation_keeps_the_facts_as_written(catalogue):
    data = _example()
    sheet = validate_fact_sheet(copy.deepcopy(data), "x", catalogue)
    assert sheet.facts == data["facts"]
    assert sheet.subject == data["subject"]
    assert [d["name"] for d in sheet.detectors] == ["card", "config", "manifest", "tokenizer", "trail", "weights"]


@pytest.mark.parametrize("number,digits", [("9" * 5000, 5000), ("-" + "1" * 41, 41)])
def test_a_number_longer_than_any_fact_is_one_clear_problem(number, digits):
    from engine.facts import parse_json_bytes
    text = '{"facts": {"model": {"parameters": ' + number + "}}}"
    with pytest.raises(InputError) as err:
        parse_json_bytes(text.encode(), "big.json")
    assert str(err.value) == f"big.json:1:36: a whole number of {digits} digits; at most 40 are read"


def test_a_seed_of_128_bits_is_read():
    from engine.facts import parse_json_bytes
    assert parse_json_bytes(b'{"seed": 340282366920938463463374607431768211455}', "s.json") == {"seed": 2**128 - 1}


def test_json_nested_too_deeply_is_one_clear_problem():
    from engine.facts import parse_json_bytes
    with pytest.raises(InputError, match="nests too deeply"):
        parse_json_bytes(b"[" * 100_000 + b"]" * 100_000, "deep.json")
