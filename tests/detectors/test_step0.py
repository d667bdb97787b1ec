"""The `originality/1` step-0 recipe: its bytes, its statistics, and a trail that starts from it."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import load_file

import detectors.step0 as step0_module
from detectors.base import InputError
from detectors.model import open_model, weights_digest
from detectors.safetensors import TensorInfo
from detectors.step0 import RECIPE, regenerates, role, tensor_bytes, write_step0

from .test_trail import EVERY, STEPS, detect, snapshot, train, write_model, write_trail, Tiny

STD = 0.02


def info(shape: tuple[int, ...], dtype: str = "F32") -> TensorInfo:
    n = math.prod(shape)
    size = {"F32": 4, "F64": 8, "F16": 2, "BF16": 2, "I64": 8}[dtype]
    return TensorInfo(name="t", dtype=dtype, shape=shape, file=Path("x"), start=0, end=n * size)


def values(seed: int, name: str, shape: tuple[int, ...], dtype: str = "F32") -> np.ndarray:
    data = b"".join(tensor_bytes(seed, STD, name, info(shape, dtype)))
    return np.frombuffer(data, dtype={"F32": "<f4", "F64": "<f8", "F16": "<f2", "BF16": "<u2"}[dtype])


def test_the_bytes_follow_the_written_recipe():
    # The docstring's formula, in plain Python integers and one float64 product.
    key = np.frombuffer(__import__("blake3").blake3(f"{RECIPE}\0{7}\0w".encode()).digest(16), "<u8")
    raw = np.random.Philox(key=key.astype(np.uint64)).random_raw(50)

    def f32(x: float) -> float:  # round to float32, nearest even
        return struct.unpack("<f", struct.pack("<f", x))[0]

    scale = f32(STD * math.sqrt(3.0) / 65536.0)
    want = []
    for r in raw.tolist():
        total = sum((r >> shift) & 0xFFFF for shift in (0, 16, 32, 48)) - 131070
        # Two float32s multiply exactly in float64; one rounding makes the float32 product.
        want.append(f32(total * scale))
    assert values(7, "w", (5, 10)).tolist() == want


def test_blocks_do_not_change_the_bytes(monkeypatch):
    whole = values(3, "layer.w", (37, 53))
    monkeypatch.setattr(step0_module, "_BLOCK", 7)  # not a multiple of Philox's 4 outputs
    assert np.array_equal(values(3, "layer.w", (37, 53)), whole)


def test_random_tensors_have_the_recipe_statistics():
    x = values(11, "big", (512, 512)).astype(np.float64)
    assert abs(x.mean()) < 2e-4
    assert abs(x.std() / STD - 1) < 0.01
    kurtosis = ((x - x.mean()) ** 4).mean() / x.var() ** 2 - 3
    assert abs(kurtosis - (-0.3)) < 0.03  # four summed uniforms
    assert np.abs(x).max() <= 2 * math.sqrt(3) * STD * (1 + 1e-6)


def test_seeds_and_names_give_unrelated_weights():
    base = values(1, "a", (256, 256))
    for other in (values(2, "a", (256, 256)), values(1, "b", (256, 256))):
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.02


def test_dtypes_round_the_float32_values_to_nearest_even():
    f32 = values(5, "w", (64, 64))
    assert np.array_equal(values(5, "w", (64, 64), "F64"), f32.astype(np.float64))
    assert np.array_equal(values(5, "w", (64, 64), "F16"), f32.astype(np.float16))
    bf16 = torch.from_numpy(f32.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(values(5, "w", (64, 64), "BF16"), bf16)


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "expected"),
    [
        ("model.layers.0.input_layernorm.weight", (8,), "BF16", "ones"),
        ("ln_f.weight", (8,), "F32", "ones"),
        ("encoder.layer.0.LayerNorm.bias", (8,), "F32", "zeros"),
        ("fc1.bias", (8,), "F32", "zeros"),
        ("model.rotary_emb.inv_freq", (4,), "F32", "buffer"),
        ("position_ids", (1, 8), "I64", "buffer"),
        ("model.embed_tokens.weight", (16, 8), "BF16", "random"),
        ("step_count", (1,), "I64", "unsupported"),
    ],
)
def test_roles(name, shape, dtype, expected):
    assert role(name, info(shape, dtype)) == expected


def template(folder: Path, buffer: bool = True) -> Path:
    model = Tiny()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if buffer:
        state["rotary.inv_freq"] = torch.arange(4, dtype=torch.float32)
    write_model(folder, state)
    return folder


def test_write_step0_commits_to_what_it_wrote(tmp_path):
    promise = write_step0(template(tmp_path / "template"), tmp_path / "step-0", seed=9, std=STD)
    assert promise["init"] == RECIPE and promise["seed"] == 9 and promise["std"] == STD
    with open_model(tmp_path / "template") as tpl, open_model(tmp_path / "step-0") as out:
        assert promise["step0_digest"] == weights_digest(out)
        assert {n: (i.dtype, i.shape) for n, i in out.tensors.items()} == {
            n: (i.dtype, i.shape) for n, i in tpl.tensors.items()}
        assert bytes(out.raw("rotary.inv_freq")) == bytes(tpl.raw("rotary.inv_freq"))  # buffers copied
        assert np.all(out.array("ln.weight") == 1) and np.all(out.array("fc1.bias") == 0)
        assert regenerates(out, 9, STD)
        assert not regenerates(out, 10, STD)
        assert not regenerates(out, 9, 0.021)
        assert not regenerates(tpl, 9, STD)
    # Same inputs, same bytes.
    again = write_step0(tmp_path / "template", tmp_path / "again", seed=9, std=STD)
    assert again == promise
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (tmp_path / "step-0" / "model.safetensors").read_bytes()


def test_write_step0_refuses_and_leaves_nothing(tmp_path):
    tpl = template(tmp_path / "template")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(InputError, match="not an empty folder"):
        write_step0(tpl, tmp_path / "taken", seed=1, std=STD)
    for seed, std, problem in ((-1, STD, "seed must be"), (1, 0.0, "std must be"), (1, float("nan"), "std must be")):
        with pytest.raises(InputError, match=problem):
            write_step0(tpl, tmp_path / "out", seed=seed, std=std)
    odd = tmp_path / "odd"
    odd.mkdir()
    np_save({"w": np.zeros((4, 4), np.float32), "step_count": np.zeros(1, np.int64)}, str(odd / "model.safetensors"))
    with pytest.raises(InputError) as caught:
        write_step0(odd, tmp_path / "out", seed=1, std=STD)
    assert caught.value.place == "tensor `step_count`"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd", "taken", "template"]


def recipe_trail(root: Path, seed: int = 4) -> tuple[Path, dict]:
    """A real trail: step 0 from the recipe, then AdamW steps from it."""
    promise = write_step0(template(root / "template", buffer=False), root / "step0", seed=seed, std=STD)
    start = load_file(str(root / "step0" / "model.safetensors"))
    run = train(seed=5, start=start)
    assert all(torch.equal(run[0][k], start[k]) for k in start)
    trail = write_trail(root / "model", run, run[STEPS], commit=False)
    return trail, promise


def commit(trail: Path, promise: dict) -> None:
    (trail / "checkpoints" / "commitment.json").write_text(json.dumps(promise))


def test_a_trail_from_the_recipe_is_regenerated(tmp_path):
    trail, promise = recipe_trail(tmp_path)
    commit(trail, promise)
    facts = detect(trail)
    assert facts["step0_regenerated"] is True
    assert facts["commitment_matches"] is True
    assert facts["initial_random"] is True
    assert facts["continuous"] is True
    assert facts["depends_on_init"] is True
    assert facts["checkpoints"] == STEPS // EVERY + 1


def test_another_seed_or_a_swapped_step0_is_not_regenerated(tmp_path):
    trail, promise = recipe_trail(tmp_path)
    commit(trail, {**promise, "seed": promise["seed"] + 1})
    assert detect(trail)["step0_regenerated"] is False
    # A forger swaps in another start and commits to its digest: the digest matches,
    # the recipe does not.
    foreign = snapshot(Tiny())
    write_model(trail / "checkpoints" / "step-0", foreign)
    with open_model(trail / "checkpoints" / "step-0") as swapped:
        commit(trail, {**promise, "step0_digest": weights_digest(swapped)})
    facts = detect(trail)
    assert facts["commitment_matches"] is True
    assert facts["step0_regenerated"] is False
