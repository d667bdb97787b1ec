"""The detection pipeline: fact sheets from generated model folders, typed and deterministic.

Also the model-folder builders the other detector tests share.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from detectors import pipeline
from detectors.base import FACT_TYPES, DetectContext, FactDecl, InputError
from detectors.catalog import add_reference
from detectors.config import ConfigDetector
from detectors.manifest import ManifestDetector
from detectors.pipeline import FACTS_SCHEMA, check_output, detect_model, fact_catalogue
from detectors.registry import DetectorError, load_detectors
from detectors.tokenizer import TokenizerDetector

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "max_position_embeddings": 128,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1e-5,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "float32",
}

MANIFEST = """\
schema_version: 1
organisation: Test Lab
members: [Test Lab, Partner Uni]
base_model: null
from_scratch: true
init: {method: random, seed: 42}
components:
  - name: language_model
    source: own
    member: Test Lab
    frozen: false
"""


def bpe_tokenizer(tokens: list[str], merges: list[tuple[str, str]]) -> dict[str, Any]:
    """A Hugging Face fast-tokenizer document with a BPE model."""
    return {
        "version": "1.0",
        "added_tokens": [{"id": len(tokens), "content": "<|end|>", "special": True}],
        "model": {
            "type": "BPE",
            "vocab": {token: i for i, token in enumerate(tokens)},
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def synthetic_bpe(size: int, seed: int = 0) -> tuple[list[str], list[tuple[str, str]]]:
    """A vocabulary of `size` distinct tokens and a merge list over them, reproducibly."""
    rng = np.random.default_rng(seed)
    alphabet = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = list(alphabet)
    merges: list[tuple[str, str]] = []
    seen = set(tokens)
    while len(tokens) < size:
        a = tokens[int(rng.integers(len(tokens)))]
        b = tokens[int(rng.integers(len(tokens)))]
        if a + b in seen or len(a + b) > 12:
            continue
        seen.add(a + b)
        tokens.append(a + b)
        merges.append((a, b))
    return tokens, merges


def write_model(
    root: Path,
    *,
    seed: int = 0,
    config: dict[str, Any] | None = LLAMA_CONFIG,
    tokenizer: dict[str, Any] | None = None,
    manifest: str | None = MANIFEST,
) -> Path:
    """A small model folder: safetensors weights, config.json, tokenizer.json, manifest."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors = {
        "model.embed_tokens.weight": rng.standard_normal((64, 16)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((16, 16)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((32, 16)).astype(np.float32),
        "model.norm.weight": np.ones(16, dtype=np.float32),
        "lm_head.weight": rng.standard_normal((64, 16)).astype(np.float32),
    }
    save_file(tensors, str(root / "model.safetensors"))
    if config is not None:
        (root / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    if tokenizer is None:
        tokens, merges = synthetic_bpe(60, seed)
        tokenizer = bpe_tokenizer(tokens, merges)
    if tokenizer:
        (root / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    if manifest is not None:
        (root / "originality.yaml").write_text(manifest, encoding="utf-8")
    return root


def own_detectors() -> list[Any]:
    """The detectors built in this module set (no weights reading needed)."""
    return [ConfigDetector(), ManifestDetector(), TokenizerDetector()]


# --- an independent reading of the fact catalogue, to check sheets against -------------


def _leaf_paths(value: Any, path: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _leaf_paths(item, f"{path}.{key}" if path else key, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out.append((path + "[]", value))
        for element in value:
            for key, item in element.items():
                _leaf_paths(item, f"{path}[].{key}", out)
    else:
        out.append((path, value))


def _conforms(decl: FactDecl, value: Any) -> bool:
    if value is None:
        return True
    return {
        "boolean": lambda v: type(v) is bool,
        "integer": lambda v: type(v) is int,
        "number": lambda v: type(v) in (int, float),
        "string": lambda v: type(v) is str,
        "enum": lambda v: v in decl.values,
        "list[string]": lambda v: type(v) is list and all(type(x) is str for x in v),
        "list[object]": lambda v: type(v) is list and all(type(x) is dict for x in v),
    }[decl.type](value)


def assert_sheet_declared(sheet: dict[str, Any], catalogue: list[FactDecl]) -> list[str]:
    """Every fact in the sheet is declared and of its declared type; returns the paths."""
    declared = {d.path: d for d in catalogue}
    leaves: list[tuple[str, Any]] = []
    _leaf_paths(sheet["facts"], "", leaves)
    for path, value in leaves:
        decl = declared.get(path)
        if decl is None and isinstance(value, list) and not value:
            decl = declared.get(path + "[]")  # an empty list of objects
        assert decl is not None, f"undeclared fact {path}"
        assert _conforms(decl, value), f"{path} = {value!r} is not a {decl.type}"
    return [p for p, _ in leaves]


# --- tests ---------------------------------------------------------------------------


def test_sheet_from_generated_folder_is_declared_and_typed(tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny-model")
    detectors = own_detectors()
    sheet = detect_model(model, detectors=detectors)
    assert sheet["schema"] == FACTS_SCHEMA
    assert sheet["subject"]["name"] == "tiny-model"
    assert sheet["subject"]["digest"].startswith("blake3:")
    assert [d["name"] for d in sheet["detectors"]] == ["config", "manifest", "tokenizer"]
    assert sheet["detectors"][1] == {"name": "manifest", "version": "1.0.0", "emits": ["declared"]}
    paths = assert_sheet_declared(sheet, fact_catalogue(detectors))
    assert "declared.components[].source" in paths
    facts = sheet["facts"]
    assert facts["config"]["architecture"] == "LlamaForCausalLM"
    assert facts["config"]["reference"] is None  # no catalogue: unknown, not a guess
    assert facts["tokenizer"]["vocab_size"] == 61  # 60 tokens and one added token
    assert facts["declared"]["init"] == {"method": "random", "seed": 42}
    assert facts["declared"]["components"][0]["name"] == "language_model"


def test_sheet_with_every_registered_detector(tmp_path: Path) -> None:
    model = write_model(tmp_path / "tiny-model")
    sheet = detect_model(model)
    names = [d.name for d in load_detectors()]
    assert [d["name"] for d in sheet["detectors"]] == names
    assert {"config", "declared", "tokenizer"} <= set(sheet["facts"])
    assert_sheet_declared(sheet, fact_catalogue())


def test_sheet_is_deterministic_and_free_of_absolute_paths(tmp_path: Path) -> None:
    first = write_model(tmp_path / "a" / "same-name")
    second = tmp_path / "b" / "same-name"
    shutil.copytree(first, second)
    dumps = [
        json.dumps(detect_model(m, detectors=own_detectors()), sort_keys=True)
        for m in (first, first, second)
    ]
    assert dumps[0] == dumps[1] == dumps[2]
    assert str(tmp_path) not in dumps[0]


def test_changed_file_changes_subject_digest(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    before = detect_model(model, detectors=own_detectors())["subject"]["digest"]
    (model / "originality.yaml").write_text(MANIFEST.replace("seed: 42", "seed: 43"))
    after = detect_model(model, detectors=own_detectors())
    assert after["subject"]["digest"] != before
    assert after["facts"]["declared"]["init"]["seed"] == 43


def test_catalogue_add_list_then_detect_against_references(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    tokens, merges = synthetic_bpe(300, seed=1)
    reference = write_model(tmp_path / "public", tokenizer=bpe_tokenizer(tokens, merges))
    other_tokens, other_merges = synthetic_bpe(300, seed=99)
    other = write_model(
        tmp_path / "other",
        config={**LLAMA_CONFIG, "hidden_size": 32, "model_type": "mistral"},
        tokenizer=bpe_tokenizer(other_tokens, other_merges),
    )
    add_reference(
        reference, id="public-llm", origin="US", catalog=catalog, detectors=own_detectors()
    )
    add_reference(other, id="other-llm", origin="fr", catalog=catalog, detectors=own_detectors())
    # The candidate reuses the public model's config and tokenizer, with a few more merges.
    candidate = write_model(
        tmp_path / "candidate",
        seed=5,
        tokenizer=bpe_tokenizer(tokens + ["zzz"], merges + [("zz", "z")]),
    )
    sheet = detect_model(candidate, catalog=catalog, detectors=own_detectors())
    config, tokenizer = sheet["facts"]["config"], sheet["facts"]["tokenizer"]
    assert (config["reference"], config["origin"], config["identical"]) == (
        "public-llm",
        "US",
        True,
    )
    assert config["agreement"] == 1.0
    assert tokenizer["reference"] == "public-llm" and tokenizer["origin"] == "US"
    assert tokenizer["vocab_overlap"] == pytest.approx(301 / 302)
    assert tokenizer["merge_overlap"] == pytest.approx(len(merges) / (len(merges) + 1))
    assert tokenizer["identical"] is False
    assert_sheet_declared(sheet, fact_catalogue(own_detectors()))


def test_progress_reports_rise_to_the_total(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    calls: list[tuple[int, int]] = []
    detect_model(model, detectors=own_detectors(), progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_missing_manifest_fails_before_reading(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    with pytest.raises(InputError, match="manifest not found"):
        detect_model(model, manifest=tmp_path / "nope.yaml", detectors=own_detectors())


def test_explicit_manifest_overrides_folder_manifest(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    outside = tmp_path / "claims.yaml"
    outside.write_text("schema_version: 1\norganisation: Elsewhere\n")
    sheet = detect_model(model, manifest=outside, detectors=own_detectors())
    assert sheet["facts"]["declared"]["organisation"] == "Elsewhere"


class _Scripted:
    """A detector whose output the test chooses, to check the pipeline's guard."""

    name = "scripted"
    version = "0.1"
    emits = ("scripted",)
    facts = (
        FactDecl("scripted.count", "integer", "a count"),
        FactDecl("scripted.kind", "enum", "a kind", ("a", "b")),
        FactDecl("scripted.items[]", "list[object]", "items"),
        FactDecl("scripted.items[].score", "number", "a score"),
        FactDecl("scripted.group.flag", "boolean", "a grouped flag"),
    )

    def __init__(self, output: Any = None, error: Exception | None = None) -> None:
        self.output, self.error = output, error

    def detect(self, model: Any, context: DetectContext) -> Any:
        if self.error is not None:
            raise self.error
        return self.output


def test_well_formed_output_passes_the_guard() -> None:
    check_output(
        _Scripted(),
        {
            "scripted": {
                "count": 3,
                "kind": None,
                "items": [{"score": 0.5}, {"score": None}],
                "group": {"flag": True},
            }
        },
    )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"other": {}}, "wrote `other`, which is not among its keys"),
        ({"scripted": {"count": 1.5}}, "`scripted.count` = 1.5, which is not of type integer"),
        ({"scripted": {"count": True}}, "which is not of type integer"),
        ({"scripted": {"kind": "c"}}, "which is not one of a, b"),
        ({"scripted": {"extra": 1}}, "undeclared fact `scripted.extra`"),
        ({"scripted": {"items": [{"score": float("nan")}]}}, "not a finite number"),
        ({"scripted": {"items": [{"colour": "red"}]}}, "undeclared fact `scripted.items[].colour`"),
        ({"scripted": {"items": ["x"]}}, "not of type list[object]"),
        ({"scripted": {"group": True}}, "`scripted.group` = True, which is not an object"),
        ({"scripted": 5}, "`scripted` = 5, not an object"),
        (["scripted"], "returned list, not a mapping"),
    ],
)
def test_guard_names_the_detector_and_the_fact(output: Any, message: str) -> None:
    with pytest.raises(DetectorError) as caught:
        check_output(_Scripted(), output)
    assert "detector `scripted`" in str(caught.value)
    assert message in str(caught.value)


def test_a_crashing_detector_is_named(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    with pytest.raises(DetectorError, match=r"detector `scripted` failed: ZeroDivisionError"):
        detect_model(model, detectors=[_Scripted(error=ZeroDivisionError("boom"))])
    with pytest.raises(DetectorError, match="undeclared fact `scripted.bad`"):
        detect_model(model, detectors=[_Scripted(output={"scripted": {"bad": 1}})])


def test_input_errors_pass_through_unchanged(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    error = InputError("x.json", "line 1:1", "broken")
    with pytest.raises(InputError) as caught:
        detect_model(model, detectors=[_Scripted(error=error)])
    assert caught.value is error


def test_fact_catalogue_is_sorted_and_unique() -> None:
    catalogue = fact_catalogue(own_detectors())
    paths = [f.path for f in catalogue]
    assert paths == sorted(paths) and len(paths) == len(set(paths))
    assert all(f.type in FACT_TYPES for f in catalogue)
    own = {f.path for d in own_detectors() for f in d.facts}
    assert set(paths) == own


def test_public_api_is_pinned() -> None:
    assert sorted(pipeline.__all__) == [
        "FACTS_SCHEMA",
        "check_output",
        "detect_model",
        "fact_catalogue",
    ]


def test_detectors_never_import_the_engine() -> None:
    # The fact sheet is the only seam between the two packages.
    package = Path(pipeline.__file__).parent
    for module in sorted(package.glob("*.py")):
        source = module.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(from|import)\s+engine\b", source, re.M), module.name


def test_subject_digest_from_the_weights_pass_equals_a_fresh_one(tmp_path: Path) -> None:
    """Detection hashes the tensors once, in the background, for both the weights
    detector and the subject digest; the result must be what hashing the folder afresh
    gives."""
    from detectors.model import open_model

    root = write_model(tmp_path / "m")
    sheet = detect_model(root)  # every registered detector, weights included
    with open_model(root) as model:
        assert sheet["subject"]["digest"] == model.files_digest()
