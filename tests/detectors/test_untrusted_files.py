"""Every file a submitted model folder brings, filled with arbitrary content: detection
either gives a fact sheet or one clear InputError naming the file. Nothing else escapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from detectors.base import InputError
from detectors.catalog import add_reference
from detectors.pipeline import detect_model

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["model_type", "hidden_size", "vocab_size", "architectures", "model", "vocab", "merges",
                         "type", "added_tokens", "seed", "init", "step0_digest", "std", "vision_config",
                         "num_hidden_layers", "initializer_range", "x"]) | st.text(max_size=6),
        inner, max_size=5),
    max_leaves=20,
)
YAML_BITS = st.sampled_from(["schema_version", "organisation", "members", "components", "from_scratch", "init",
                             "base_model", "license", ":", " ", "\n", "- ", "[", "]", "{", "}", "'", '"', "1", "true",
                             "null", "&a", "*a", "!!python/name:os.system", "<<", "#", "---", "x", "\t", "ü", "\x00",
                             "\x85", "name", "source", "own", "external"])
# What each file holds: JSON values, JSON-ish text, or YAML-ish text.
JSON_TEXT = JSON_VALUES.map(lambda v: json.dumps(v)) | st.lists(
    st.sampled_from(["{", "}", "[", "]", '"', ":", ",", "1e999", "NaN", "null", '"model"', " ", "\\u", "\ud800"]),
    max_size=30).map("".join)
YAML_TEXT = st.lists(YAML_BITS, max_size=40).map("".join)
CARD_TEXT = YAML_TEXT.map(lambda t: "---\n" + t + "\n---\n")

FILES = {
    "model.safetensors.index.json": JSON_TEXT,
    "config.json": JSON_TEXT,
    "tokenizer.json": JSON_TEXT,
    "originality.yaml": YAML_TEXT,
    "README.md": CARD_TEXT,
    "checkpoints/commitment.json": JSON_TEXT,
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base") / "model"
    root.mkdir()
    rng = np.random.default_rng(0)
    weights = {"model.embed_tokens.weight": rng.standard_normal((64, 16)).astype(np.float32),
               "model.norm.weight": np.ones(16, np.float32)}
    save_file(weights, str(root / "model.safetensors"))
    (root / "checkpoints" / "step-0").mkdir(parents=True)
    save_file(weights, str(root / "checkpoints" / "step-0" / "model.safetensors"))
    return root


@pytest.mark.parametrize("name", sorted(FILES))
def test_arbitrary_content_gives_facts_or_one_clear_error(base, tmp_path_factory, name):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(FILES[name])
    def run(content: str) -> None:
        root = tmp_path_factory.mktemp("m") / "model"
        shutil.copytree(base, root)
        (root / name).write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            sheet = detect_model(root)
        except InputError as error:
            assert Path(error.file).name == Path(name).name, error
            assert "\n" not in str(error)
        else:
            json.dumps(sheet, allow_nan=False)
        finally:
            shutil.rmtree(root.parent)

    run()


# A catalogue is kept by the ministry, but a damaged one must still be named, not crash.
CATALOGUE_FILES = ("reference.json", "weights.json", "weights.bin", "config.json", "tokenizer.json")


@pytest.fixture(scope="module")
def catalogue(base, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalogue") / "cat"
    (base.parent / "tokenizer-ref").mkdir()
    reference = base.parent / "ref"
    shutil.copytree(base, reference, ignore=shutil.ignore_patterns("checkpoints"))
    (reference / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 16}))
    (reference / "tokenizer.json").write_text(json.dumps(
        {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}))
    add_reference(reference, id="ref", origin="US", catalog=folder)
    return folder


@pytest.mark.parametrize("name", CATALOGUE_FILES)
def test_a_damaged_catalogue_gives_facts_or_one_clear_error(base, catalogue, tmp_path_factory, name):
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(JSON_TEXT | st.binary(max_size=64).map(lambda b: b.decode("latin-1")))
    def run(content: str) -> None:
        damaged = tmp_path_factory.mktemp("c") / "cat"
        shutil.copytree(catalogue, damaged)
        (damaged / "ref" / name).write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            sheet = detect_model(base, catalog=damaged)
        except InputError as error:
            assert Path(error.file).name == name, error
            assert "\n" not in str(error)
        else:
            json.dumps(sheet, allow_nan=False)
        finally:
            shutil.rmtree(damaged.parent)

    run()
