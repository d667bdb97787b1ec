"""Every file a submitted model folder brings, filled with arbitrary content: detection
either gives a fact sheet or one clear InputError naming the file. Nothing else escapes."""

from __future__ import annotations

import json
import math
import shutil
import warnings
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


def facts_or_one_clear_error(root: Path, names: str | None = None, **options) -> None:
    """Detection on `root` gives a JSON fact sheet, or one InputError line (naming the file
    `names`, when given); numpy may not warn the user on the way."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sheet = detect_model(root, **options)
    except InputError as error:
        assert names is None or Path(error.file).name == names, error
        assert "\n" not in str(error)
    else:
        json.dumps(sheet, allow_nan=False)


@pytest.mark.parametrize("name", sorted(FILES))
def test_arbitrary_content_gives_facts_or_one_clear_error(base, tmp_path_factory, name):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(FILES[name])
    def run(content: str) -> None:
        root = tmp_path_factory.mktemp("m") / "model"
        shutil.copytree(base, root)
        (root / name).write_bytes(content.encode("utf-8", "surrogatepass"))
        try:
            facts_or_one_clear_error(root, Path(name).name)
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
            facts_or_one_clear_error(base, name, catalog=damaged)
        finally:
            shutil.rmtree(damaged.parent)

    run()


# -- weights: odd shapes, dtypes and values ----------------------------------------------

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
SPECIAL = st.sampled_from([0.0, 1.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-45, 3e38, 0.02])
REF_SHAPES = {"model.embed_tokens.weight": (64, 16), "model.norm.weight": (16,)}
NAMES = sorted(REF_SHAPES) + ["model.layers.0.mlp.up_proj.weight", "visual.blocks.0.attn.qkv.weight", "lm_head.weight",
                              "audio_tower.conv1.weight", "x"]


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    header, offset = {}, 0
    for name, (dtype, shape, data) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(d for _, _, d in
                                                                        (tensors[n] for n in sorted(tensors))))


@st.composite
def odd_tensor(draw, name: str) -> tuple[str, tuple[int, ...], bytes]:
    import torch

    dtype = draw(st.sampled_from(sorted(SIZES)))
    shape = REF_SHAPES[name] if name in REF_SHAPES and draw(st.booleans()) else tuple(
        draw(st.lists(st.integers(0, 24), max_size=3)))
    n = math.prod(shape)
    kind = draw(st.sampled_from(["random", "constant", "special"]))
    if kind == "constant":
        x = np.full(n, draw(SPECIAL))
    elif kind == "special":
        x = np.array([draw(SPECIAL) for _ in range(min(n, 5))] + [0.0] * max(0, n - 5))
    else:
        x = np.random.default_rng(draw(st.integers(0, 99))).standard_normal(n) * 0.02
    with np.errstate(all="ignore"):
        if dtype == "BF16":
            data = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        elif dtype.startswith("F8"):
            data = draw(st.binary(min_size=n, max_size=n))
        elif dtype == "BOOL":
            data = (x != 0).astype(np.uint8).tobytes()
        elif dtype[0] in "IU":
            data = np.nan_to_num(x, nan=0, posinf=0, neginf=0).astype({"I64": "<i8", "I32": "<i4", "U8": "u1"}[dtype]).tobytes()
        else:
            data = x.astype({"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]).tobytes()
    return dtype, shape, data


@st.composite
def odd_weights(draw) -> dict:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    return {name: draw(odd_tensor(name)) for name in names}


def test_odd_weights_give_facts_or_one_clear_error(base, catalogue, tmp_path_factory):
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(odd_weights())
    def run(tensors: dict) -> None:
        root = tmp_path_factory.mktemp("w") / "model"
        root.mkdir()
        _write_safetensors(root / "model.safetensors", tensors)
        try:
            facts_or_one_clear_error(root, catalog=catalogue)
        finally:
            shutil.rmtree(root.parent)

    run()


def test_f64_weights_past_float32_are_read_without_a_warning(base, catalogue, tmp_path):
    root = tmp_path / "big"
    shutil.copytree(base, root)
    for f in root.glob("*.safetensors"):
        f.unlink()
    save_file({"model.embed_tokens.weight": np.full((16, 8), 1e300), "lm_head.weight": np.full((16, 8), -1e300)},
              str(root / "model.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detect_model(root, catalog=catalogue)
