"""The model folder: discovery, shard index, malformed corpus, pickles never opened, digest."""

from __future__ import annotations

import json
import os
import pickle
import sys
import threading
from pathlib import Path

import blake3
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

from detectors.base import InputError
from detectors.model import ModelFolder, open_model
from .malformed_cases import CASES

# Paths opened while `_WATCH` is on; an audit hook sees every open() in the process.
_OPENED: list[str] = []
_WATCH = [False]


def _audit(event: str, args: tuple) -> None:
    if _WATCH[0] and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


FIRST = "model-00001-of-00002.safetensors"
SECOND = "model-00002-of-00002.safetensors"


def make_sharded(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    first = {
        "embed.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "layers.0.w": rng.standard_normal((4, 4)).astype(np.float32),
    }
    second = {
        "layers.1.w": rng.standard_normal((4, 4)).astype(np.float32),
        "norm.weight": np.ones(4, dtype=np.float32),
    }
    (root / "shards").mkdir(parents=True)
    np_save(first, str(root / "shards" / FIRST))
    np_save(second, str(root / SECOND))
    weight_map = {name: f"shards/{FIRST}" for name in first}
    weight_map |= {name: f"./{SECOND}" for name in second}
    index = {"metadata": {"total_size": 1}, "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    return first | second


def test_public_api_is_pinned():
    import detectors.model as module

    public = ["INDEX_FILE", "CHECKPOINTS_DIR", "PICKLE_SUFFIXES", "ModelFolder", "open_model"]
    assert sorted(module.__all__) == sorted([*public, "read_json", "weights_digest", "digest_entry"])


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_malformed_folder_raises_one_line_input_error(tmp_path, case):
    _id, build, substring, place = case
    root = tmp_path / "model"
    root.mkdir()
    culprit = build(root)
    with pytest.raises(InputError) as caught:
        open_model(root).close()
    err = caught.value
    message = str(err)
    assert "\n" not in message
    assert err.file == str(root / culprit)
    assert err.place == place
    assert substring in err.problem
    prefix = f"{root / culprit}: {place}: " if place else f"{root / culprit}: "
    assert message.startswith(prefix)
    assert not err.problem[0].isupper()


def test_corpus_is_large_and_ids_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)


def test_sharded_model_through_index(tmp_path):
    root = tmp_path / "my-model"
    arrays = make_sharded(root)
    (root / "config.json").write_text('{"model_type": "tiny", "hidden_size": 4}')
    with open_model(root) as model:
        assert isinstance(model, ModelFolder)
        assert model.name == "my-model"
        assert model.config == {"model_type": "tiny", "hidden_size": 4}
        assert model.weight_files == (SECOND, f"shards/{FIRST}")
        assert list(model.tensors) == sorted(arrays)
        assert model.total_bytes == sum(a.nbytes for a in arrays.values())
        for name, expected in arrays.items():
            assert np.array_equal(model.array(name), expected)
            assert bytes(model.raw(name)) == expected.tobytes()
        seen = [(info.name, info.file.name, info.start) for info, _ in model.iter_tensors()]
        # File order (weight_files order), then offset order inside each file.
        files = [f for _, f, _ in seen]
        assert files == sorted(files, key=[SECOND, FIRST].index)
        for f in set(files):
            starts = [s for _, ff, s in seen if ff == f]
            assert starts == sorted(starts)
        assert sorted(n for n, _, _ in seen) == sorted(arrays)


def test_index_governs_and_checkpoints_are_not_weights(tmp_path):
    root = tmp_path / "m"
    make_sharded(root)
    np_save({"stray": np.zeros(2, dtype=np.float32)}, str(root / "extra.safetensors"))
    (root / "checkpoints" / "step-0").mkdir(parents=True)
    ckpt = root / "checkpoints" / "step-0" / "model.safetensors"
    np_save({"ckpt": np.zeros(2, dtype=np.float32)}, str(ckpt))
    with open_model(root) as model:
        assert "stray" not in model.tensors and "ckpt" not in model.tensors


def test_without_index_every_top_level_safetensors_counts(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    np_save({"b": np.ones(2, dtype=np.float32)}, str(root / "b.safetensors"))
    np_save({"a": np.zeros(3, dtype=np.float16)}, str(root / "model.safetensors"))
    (root / "sub").mkdir()
    np_save({"hidden": np.zeros(1, dtype=np.float32)}, str(root / "sub" / "x.safetensors"))
    (root / "checkpoints").mkdir()
    np_save({"ckpt": np.zeros(1, dtype=np.float32)}, str(root / "checkpoints" / "y.safetensors"))
    with open_model(root) as model:
        assert model.weight_files == ("b.safetensors", "model.safetensors")
        assert list(model.tensors) == ["a", "b"]
        assert model.config is None
        assert model.array("a").dtype == np.float16


def test_symlink_inside_the_folder_is_allowed(tmp_path):
    root = tmp_path / "m"
    (root / "blobs").mkdir(parents=True)
    np_save({"w": np.arange(3, dtype=np.float32)}, str(root / "blobs" / "abc"))
    os.symlink("blobs/abc", root / "model.safetensors")
    with open_model(root) as model:
        assert model.array("w").tolist() == [0.0, 1.0, 2.0]


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_model(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        open_model(tmp_path / "f")


class _WritesMarker:
    """Unpickling this object opens (so creates) the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_files_are_listed_and_never_opened(tmp_path):
    # The payload works: unpickling it elsewhere does create its marker.
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(_WritesMarker(probe))).close()
    assert probe.exists()

    root = tmp_path / "m"
    root.mkdir()
    marker = tmp_path / "marker"
    payload = pickle.dumps(_WritesMarker(marker))
    torch_save({"w": torch.ones(2, 2)}, str(root / "model.safetensors"))
    pickles = (
        "checkpoints/last.ckpt",
        "extra/opt.pt",
        "extra/x.PTH",
        "pytorch_model.bin",
        "state.pkl",
    )
    for rel in pickles:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(payload)
    _OPENED.clear()
    _WATCH[0] = True
    try:
        with open_model(root) as model:
            for _info, raw in model.iter_tensors():
                bytes(raw)
            for name in model.tensors:
                model.array(name)
            listed = model.pickle_files
    finally:
        _WATCH[0] = False
    assert listed == pickles
    assert not marker.exists()
    assert any(p.endswith("model.safetensors") for p in _OPENED)  # the hook does watch
    suffixes = {".bin", ".pt", ".pth", ".pkl", ".ckpt"}
    assert not [p for p in _OPENED if Path(p).suffix.lower() in suffixes]


def test_files_digest_is_deterministic_and_content_sensitive(tmp_path):
    def build(root: Path) -> None:
        root.mkdir()
        np_save({"w": np.arange(4, dtype=np.float32), "v": np.ones(3, np.float32)}, str(root / "model.safetensors"))
        (root / "config.json").write_text("{}")
        (root / "checkpoints" / "step-0").mkdir(parents=True)
        (root / "checkpoints" / "step-0" / "note.txt").write_text("a")

    build(tmp_path / "one")
    build(tmp_path / "two")
    with open_model(tmp_path / "one") as a, open_model(tmp_path / "two") as b:
        first = a.files_digest()
        assert first.startswith("blake3:") and len(first) == len("blake3:") + 64
        assert first == b.files_digest() == a.files_digest()
    # The trail is evidence, not the model: its files do not change the subject digest.
    (tmp_path / "two" / "checkpoints" / "step-0" / "note.txt").write_text("b")
    with open_model(tmp_path / "two") as b:
        assert b.files_digest() == first
    (tmp_path / "two" / "config.json").write_text('{"a": 1}')
    with open_model(tmp_path / "two") as b:
        changed = b.files_digest()
    assert changed != first
    os.rename(tmp_path / "two" / "config.json", tmp_path / "two" / "config2.json")
    with open_model(tmp_path / "two") as b:
        assert b.files_digest() not in (first, changed)
    # One byte of one tensor changes it too.
    data = bytearray((tmp_path / "one" / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "one" / "model.safetensors").write_bytes(bytes(data))
    with open_model(tmp_path / "one") as a:
        assert a.files_digest() != first


def test_background_digests_are_the_ones_computed_in_place(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    rng = np.random.default_rng(0)
    np_save({"a": rng.standard_normal((700, 3000)).astype(np.float32),  # more than one 8 MB block
             "b": np.arange(6, dtype=np.int64), "empty": np.zeros((0, 4), np.float32)},
            str(root / "one.safetensors"))
    np_save({"c": rng.standard_normal((5, 7)).astype(np.float16)}, str(root / "two.safetensors"))
    with open_model(root) as in_place:
        # The tensors' bytes hashed whole, straight from the files: neither path's code.
        expected = {name: "blake3:" + blake3.blake3(info.file.read_bytes()[info.start : info.end]).hexdigest()
                    for name, info in in_place.tensors.items()}
        assert {name: in_place.tensor_digest(name) for name in in_place.tensors} == expected
        subject = in_place.files_digest()
    with open_model(root) as streamed:
        streamed.digest_in_background()
        assert {name: streamed.tensor_digest(name) for name in reversed(list(streamed.tensors))} == expected
        assert streamed.files_digest() == subject


def test_a_weight_file_cut_short_during_the_background_pass_is_named(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    path = root / "model.safetensors"
    np_save({"w": np.ones((512, 512), np.float32)}, str(path))
    with open_model(root) as model:
        os.truncate(path, path.stat().st_size - 1000)
        model.digest_in_background()
        with pytest.raises(InputError) as caught:
            model.tensor_digest("w")
    assert caught.value.file == str(path) and "`w`" in str(caught.value.place)
    assert "changed while reading" in caught.value.problem


def test_closing_stops_the_background_pass(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    np_save({f"t{i}": np.full((256, 1024), i, np.float32) for i in range(40)}, str(root / "model.safetensors"))
    model = open_model(root)
    model.digest_in_background()
    model.close()
    assert not any(t.name == "tensor-digests" for t in threading.enumerate())
