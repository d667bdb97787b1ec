"""Fingerprints: seeded samples, cast- and permutation-robust digests, constant families, storage.

Also the size budget: a fingerprint is at most 5 % of the weights on a model of some size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import detectors.fingerprint as fingerprint_module
from detectors.base import InputError
from detectors.fingerprint import (
    BIN_FILE,
    FEATURES,
    JSON_FILE,
    UNITS,
    Fingerprint,
    canonical_codes,
    cast_tolerance,
    constant_family,
    decode,
    feature_block,
    fingerprint_bytes,
    fingerprint_tensor,
    plan,
    read_fingerprint,
    sample_indices,
    write_fingerprint,
)
from detectors.model import open_model
from detectors.weights import WeightsDetector


def as_dtype(x: np.ndarray, dtype: str) -> tuple[str, bytes]:
    """(safetensors dtype, little-endian bytes) of a float32 array cast like torch does."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if dtype == "BF16":
        return dtype, t.bfloat16().view(torch.int16).numpy().tobytes()
    if dtype == "F16":
        return dtype, t.half().numpy().tobytes()
    return dtype, t.numpy().tobytes()


def print_of(x: np.ndarray, dtype: str = "F32", name: str = "w", gather: bool = False):
    dt, raw = as_dtype(x, dtype)
    return fingerprint_tensor(name, dt, x.shape, memoryview(raw), gather=gather)


def weights(seed: int, shape=(96, 80), scale: float = 0.02) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# --- sampling -------------------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(10, 4), (64, 64), (70_000, 32), (10**9, 128), (5, 9)])
def test_sample_indices_are_deterministic_sorted_unique(n, k):
    idx, half = sample_indices(n, k, 3)
    again, half2 = sample_indices(n, k, 3)
    assert np.array_equal(idx, again) and np.array_equal(half, half2)
    assert idx.size == min(n, k) and np.all(np.diff(idx) > 0) and idx.min() >= 0 and idx.max() < n
    assert half.sum() == min(n, k) // 2
    assert not np.array_equal(sample_indices(n, k, 4)[0], idx) or k >= n


def test_feature_block_is_contiguous_with_random_half():
    block, half = feature_block(2048, FEATURES, 7)
    assert np.array_equal(block, np.arange(block[0], block[0] + FEATURES))
    assert half.sum() == FEATURES // 2 and not np.array_equal(half, np.arange(FEATURES) < FEATURES // 2)
    small, half_small = feature_block(40, FEATURES, 7)
    assert np.array_equal(small, np.arange(40)) and half_small.sum() == 20


def test_plan_orientations():
    p = plan((300, 500))
    units_r, feats_r, _ = p["R"]
    units_c, feats_c, _ = p["C"]
    assert units_r.size == UNITS and units_r.max() < 300 and feats_r.size == FEATURES and feats_r.max() < 500
    assert units_c.max() < 500 and feats_c.max() < 300
    assert plan((300, 500)) is p and plan((7,)) == {}


# --- digests ----------------------------------------------------------------------------


def test_casts_share_the_canonical_digest():
    x = weights(0)
    f32, _ = print_of(x, "F32")
    b16, _ = print_of(x, "BF16")
    back = torch.from_numpy(x).bfloat16().float().numpy()
    f32_of_b16, _ = print_of(back, "F32")
    assert len({f32.raw, b16.raw, f32_of_b16.raw}) == 3
    assert f32.canonical == b16.canonical == f32_of_b16.canonical
    assert f32.rows == b16.rows and f32.cols == b16.cols
    # An fp16 original: its fp32 and bf16 copies agree with it on the bf16 grid.
    h = x.astype(np.float16).astype(np.float32)
    f16, _ = print_of(h, "F16")
    assert f16.canonical == print_of(h, "F32")[0].canonical == print_of(h, "BF16")[0].canonical
    # bf16 -> fp16 loses the tiniest values to fp16 subnormals: digests may differ there,
    # and the cast tolerance (which includes fp16's subnormal step) covers it.
    h_of_b16 = back.astype(np.float16).astype(np.float32)
    assert np.all(np.abs(h_of_b16 - back) <= cast_tolerance("BF16", "F16", back))


def test_fp16_double_rounding_is_within_cast_tolerance():
    # fp32 -> fp16 rounds at 11 bits, then the bf16 grid again: some codes move by one
    # step, so the digest differs and the sampled comparison takes over.
    x = weights(1, (256, 256))
    codes32 = canonical_codes("F32", x)
    half = x.astype(np.float16)
    codes16 = canonical_codes("F16", half)
    moved = np.mean(codes32 != codes16)
    assert 0 < moved < 0.15
    tol = cast_tolerance("F32", "F16", x)
    assert np.all(np.abs(half.astype(np.float32) - x) <= tol)
    bf = torch.from_numpy(x).bfloat16().float().numpy()
    assert np.all(np.abs(bf - x) <= cast_tolerance("F32", "BF16", x))
    assert not np.any(cast_tolerance("BF16", "BF16", x))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["F32", "BF16", "F16"]), st.integers(2, 140), st.integers(2, 140))
def test_multiset_digests_survive_permutations_and_casts(seed, dtype, r, c):
    x = weights(seed, (r, c))
    rng = np.random.default_rng(seed + 1)
    base, _ = print_of(x, "F32")
    rows, _ = print_of(x[rng.permutation(r)], dtype)
    cols, _ = print_of(x[:, rng.permutation(c)], dtype)
    if dtype != "F16":  # fp16 rounds twice; see the tolerance path
        assert rows.rows == base.rows and cols.cols == base.cols
    other, _ = print_of(weights(seed + 2, (r, c)), "F32")
    assert other.rows != base.rows and other.cols != base.cols and other.canonical != base.canonical


def test_sketches_hold_native_values_at_the_plan():
    x = weights(2, (300, 500))
    tp, gathered = print_of(x, "BF16", gather=True)
    units, feats, _ = plan((300, 500))["R"]
    codes = torch.from_numpy(x).bfloat16().view(torch.int16).numpy().view(np.uint16)
    assert tp.sketches["R"].dtype == np.uint16
    assert np.array_equal(tp.sketches["R"], codes[units][:, feats])
    units_c, feats_c, _ = plan((300, 500))["C"]
    assert np.array_equal(tp.sketches["C"], codes[feats_c][:, units_c].T)
    assert gathered.values("R").shape == (300, FEATURES) and gathered.values("C").shape == (500, FEATURES)
    assert gathered.values("R").dtype == np.float32 and gathered.slabs["R"].dtype == np.uint16
    assert np.array_equal(gathered.values("R", units), decode("BF16", tp.sketches["R"]))


def test_release_covers_every_byte_in_order():
    x = weights(3, (4096, 2100))  # 34 MB: more than one streaming block
    _, raw = as_dtype(x, "F32")
    ranges = []
    tp, _ = fingerprint_tensor("w", "F32", x.shape, memoryview(raw), release=lambda a, b: ranges.append((a, b)))
    assert len(ranges) > 1 and ranges[0][0] == 0 and ranges[-1][1] == len(raw)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    whole, _ = fingerprint_tensor("w", "F32", x.shape, raw)
    assert whole.raw == tp.raw and whole.canonical == tp.canonical


# --- constant families ------------------------------------------------------------------


def rope_inv_freq(dim: int, base: float = 10000.0) -> np.ndarray:
    return (1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))).numpy()


def sinusoid_positions(n: int, d: int) -> np.ndarray:
    pos = np.arange(n)[:, None]
    i = np.arange(d)[None, :]
    angle = pos / 10000 ** ((i - i % 2) / d)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


CONSTANTS = [
    ("inv_freq fp32", "F32", rope_inv_freq(64), "geometric"),
    ("inv_freq theta 1e6", "F32", rope_inv_freq(128, 1e6), "geometric"),
    ("position ids", "I64", np.arange(512, dtype=np.int64)[None, :], "arange"),
    ("causal mask", "BOOL", np.tril(np.ones((32, 32), dtype=np.uint8)), "binary"),
    ("additive mask", "F32", np.triu(np.full((16, 16), -np.inf, dtype=np.float32), 1), "binary"),
    ("fresh norm", "F32", np.ones(64, dtype=np.float32), "uniform"),
    ("zero bias", "F32", np.zeros(64, dtype=np.float32), "uniform"),
    ("scalar", "F32", np.array([2.6592], dtype=np.float32), "uniform"),
    ("sinusoidal positions", "F32", sinusoid_positions(100, 64), "sinusoid"),
    ("dft basis", "F32", np.cos(2 * np.pi * np.outer(np.arange(65), np.arange(128)) / 128).astype(np.float32), "sinusoid"),
    ("stft basis as conv", "F32", np.sin(2 * np.pi * np.outer(np.arange(1, 33), np.arange(64)) / 64).astype(np.float32)[:, None, :], "sinusoid"),
    ("mel frequencies", "F32", np.linspace(0, 8000, 81).astype(np.float32), "linear"),
]


@pytest.mark.parametrize("label,dtype,values,family", CONSTANTS, ids=[c[0] for c in CONSTANTS])
def test_deterministic_buffers_are_recognised(label, dtype, values, family):
    if dtype == "BOOL":
        native = values.astype(np.uint8)
    else:
        native = values
    assert constant_family(dtype, native) == family


def test_bf16_inv_freq_is_still_geometric():
    codes = torch.from_numpy(rope_inv_freq(64)).bfloat16().view(torch.int16).numpy().view(np.uint16)
    assert constant_family("BF16", codes) == "geometric"


LEARNED = [
    ("gaussian matrix", weights(4)),
    ("trained-like norm", (1 + 0.01 * np.random.default_rng(5).standard_normal(64)).astype(np.float32)),
    ("embedding", weights(6, (300, 64))),
    ("smooth learned positions", (np.cumsum(weights(7, (50, 32)), axis=0) + weights(8, (50, 32), 0.001)).astype(np.float32)),
    ("sorted values", np.sort(weights(9, (200,)))),
]


@pytest.mark.parametrize("label,values", LEARNED, ids=[c[0] for c in LEARNED])
def test_learned_weights_are_not_constants(label, values):
    assert constant_family("F32", values) is None


# --- storage ----------------------------------------------------------------------------


def small_fingerprint() -> Fingerprint:
    prints = {}
    for name, x in (("a.weight", weights(10, (64, 48))), ("b.weight", weights(11, (40,))), ("c.inv_freq", rope_inv_freq(16))):
        prints[name], _ = print_of(x, "BF16" if name == "a.weight" else "F32", name)
    comps = [{"name": "other", "kind": "other", "prefixes": ["a.", "b.", "c."], "tensors": sorted(prints)}]
    return Fingerprint(components=comps, tensors=prints, parameters=sum(p.numel for p in prints.values()), weight_bytes=1)


def test_write_read_round_trip_without_pickle(tmp_path):
    fp = small_fingerprint()
    json_path, bin_path = write_fingerprint(tmp_path, fp)
    assert json_path.name == JSON_FILE and bin_path.name == BIN_FILE
    doc = json.loads(json_path.read_text())
    assert doc["format"] == "originality.weights/1"
    assert not bin_path.read_bytes().startswith(b"\x80")  # no pickle protocol header
    back = read_fingerprint(tmp_path)
    assert back.components == fp.components and back.parameters == fp.parameters
    for name, tp in fp.tensors.items():
        got = back.tensors[name]
        assert (got.raw, got.canonical, got.rows, got.cols, got.constant, got.shape, got.dtype) == (
            tp.raw, tp.canonical, tp.rows, tp.cols, tp.constant, tp.shape, tp.dtype)
        assert sorted(got.sketches) == sorted(tp.sketches)
        for key in tp.sketches:
            assert got.sketches[key].dtype == tp.sketches[key].dtype
            assert np.array_equal(got.sketches[key], tp.sketches[key])
    assert back.tensors["c.inv_freq"].constant == "geometric" and not back.tensors["c.inv_freq"].sketches
    assert fingerprint_bytes(tmp_path) == json_path.stat().st_size + bin_path.stat().st_size


def test_same_fingerprint_same_bytes(tmp_path):
    write_fingerprint(tmp_path / "one", small_fingerprint())
    write_fingerprint(tmp_path / "two", small_fingerprint())
    for f in (JSON_FILE, BIN_FILE):
        assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes()


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda d: (d / BIN_FILE).write_bytes((d / BIN_FILE).read_bytes()[:-8]), "bytes"),
        (lambda d: (d / BIN_FILE).write_bytes(b"\xff" + (d / BIN_FILE).read_bytes()[1:]), "digest"),
        (lambda d: (d / JSON_FILE).write_text((d / JSON_FILE).read_text().replace("originality.weights/1", "x/9")), "format"),
        (lambda d: (d / JSON_FILE).write_text("{"), "json"),
        (lambda d: (d / JSON_FILE).unlink(), "missing"),
        (lambda d: (d / JSON_FILE).write_text((d / JSON_FILE).read_text().replace('"units":32', '"units":8')), "sampler"),
    ],
    ids=["truncated bin", "altered bin", "format", "not json", "missing", "other sampler"],
)
def test_damaged_fingerprints_are_input_errors(tmp_path, damage, problem):
    write_fingerprint(tmp_path, small_fingerprint())
    damage(tmp_path)
    with pytest.raises(InputError) as err:
        read_fingerprint(tmp_path)
    assert problem in str(err.value).lower()


def test_fingerprint_is_at_most_five_percent_of_a_meaningful_model(tmp_path):
    # LLaMA-like, d=512, 2 layers, vocab 8192, bf16: 29 MB of weights.
    g = torch.Generator().manual_seed(0)
    d, inter, vocab = 512, 1376, 8192
    tensors = {"model.embed_tokens.weight": torch.randn(vocab, d, generator=g), "lm_head.weight": torch.randn(vocab, d, generator=g),
               "model.norm.weight": torch.ones(d)}
    for i in range(2):
        p = f"model.layers.{i}."
        for n in "qkvo":
            tensors[f"{p}self_attn.{n}_proj.weight"] = torch.randn(d, d, generator=g) * 0.02
        tensors[f"{p}mlp.gate_proj.weight"] = torch.randn(inter, d, generator=g) * 0.02
        tensors[f"{p}mlp.up_proj.weight"] = torch.randn(inter, d, generator=g) * 0.02
        tensors[f"{p}mlp.down_proj.weight"] = torch.randn(d, inter, generator=g) * 0.02
        tensors[f"{p}input_layernorm.weight"] = 1 + 0.05 * torch.randn(d, generator=g)
        tensors[f"{p}post_attention_layernorm.weight"] = 1 + 0.05 * torch.randn(d, generator=g)
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({k: v.bfloat16().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"))
    with open_model(folder) as model:
        WeightsDetector().fingerprint(model, tmp_path / "fp", {})
        weight_bytes = model.total_bytes
    ratio = fingerprint_bytes(tmp_path / "fp") / weight_bytes
    assert weight_bytes > 25e6 and ratio <= 0.05, ratio
    fp = read_fingerprint(tmp_path / "fp")
    assert fp.parameters == sum(math.prod(t.shape) for t in tensors.values())
    assert {c["name"] for c in fp.components} == {"embeddings", "head", "language_model"}


def test_public_api_is_pinned():
    assert sorted(fingerprint_module.__all__) == sorted([
        "FORMAT", "JSON_FILE", "BIN_FILE", "UNITS", "FEATURES", "VECTOR", "FLOAT_DTYPES", "TensorPrint", "Gathered",
        "Fingerprint", "sample_indices", "native_view", "decode", "finite_values", "transposed_slab", "canonical_codes", "cast_tolerance",
        "constant_family", "fingerprint_tensor", "plan", "feature_block", "vector_indices", "write_fingerprint",
        "read_fingerprint", "fingerprint_bytes", "component_entries",
    ])


def test_read_fingerprint_needs_no_weights(tmp_path):
    write_fingerprint(tmp_path, small_fingerprint())
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == [BIN_FILE, JSON_FILE]
