"""Malformed model folders, built in code: each must make `open_model` raise `InputError`.

A case is (id, build, message substring, place); `build(root)` writes the folder and
returns the path, relative to `root`, of the file the error must name.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Callable

Build = Callable[[Path], str]

ST = "model.safetensors"
INDEX = "model.safetensors.index.json"


def raw_file(path: Path, header: bytes, data: bytes = b"", length: int | None = None) -> None:
    """Write a safetensors file byte by byte; `length` overrides the header length."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = len(header) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + header + data)


def st_file(path: Path, header: dict | str, data: bytes) -> None:
    text = header if isinstance(header, str) else json.dumps(header)
    raw_file(path, text.encode("utf-8"), data)


def f32(begin: int, end: int, shape: list[int], dtype: str = "F32") -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def valid(path: Path, names: tuple[str, ...] = ("w",)) -> None:
    """A well-formed file with one 2x2 float32 tensor per name."""
    header = {name: f32(16 * i, 16 * i + 16, [2, 2]) for i, name in enumerate(names)}
    st_file(path, header, bytes(16 * len(names)))


def index(root: Path, weight_map: dict, text: str | None = None) -> None:
    body = text if text is not None else json.dumps({"metadata": {}, "weight_map": weight_map})
    (root / INDEX).write_text(body, encoding="utf-8")


def _st(header: dict | str, data: bytes) -> Build:
    def build(root: Path) -> str:
        st_file(root / ST, header, data)
        return ST

    return build


def _raw(header: bytes, data: bytes = b"", length: int | None = None) -> Build:
    def build(root: Path) -> str:
        raw_file(root / ST, header, data, length)
        return ST

    return build


def _truncated_prefix(root: Path) -> str:
    (root / ST).write_bytes(b"\x10\x00\x00\x00\x00")
    return ST


def _index_with(weight_map: dict, shards: dict[str, tuple[str, ...]]) -> Build:
    def build(root: Path) -> str:
        for name, tensors in shards.items():
            valid(root / name, tensors)
        index(root, weight_map)
        return INDEX

    return build


def _index_text(text: str) -> Build:
    def build(root: Path) -> str:
        valid(root / "a.safetensors")
        index(root, {}, text=text)
        return INDEX

    return build


def _shard_not_in_index(root: Path) -> str:
    valid(root / "a.safetensors", ("v", "w"))
    index(root, {"w": "a.safetensors"})
    return "a.safetensors"


def _shard_placed_elsewhere(root: Path) -> str:
    valid(root / "a.safetensors", ("v",))
    valid(root / "b.safetensors", ("v", "w"))
    index(root, {"v": "a.safetensors", "w": "b.safetensors"})
    return "b.safetensors"


def _symlink_escape(root: Path) -> str:
    valid(root.parent / "outside.safetensors")
    os.symlink(root.parent / "outside.safetensors", root / ST)
    return ST


def _index_symlink_escape(root: Path) -> str:
    valid(root.parent / "outside.safetensors")
    os.symlink(root.parent / "outside.safetensors", root / "a.safetensors")
    index(root, {"w": "a.safetensors"})
    return INDEX


def _index_into_checkpoints(root: Path) -> str:
    valid(root / "checkpoints" / "step-0" / ST)
    index(root, {"w": "checkpoints/step-0/model.safetensors"})
    return INDEX


def _two_shards_no_index(root: Path) -> str:
    valid(root / "a.safetensors")
    valid(root / "b.safetensors")
    return "b.safetensors"


def _config(text: str) -> Build:
    def build(root: Path) -> str:
        valid(root / ST)
        (root / "config.json").write_text(text, encoding="utf-8")
        return "config.json"

    return build


def _config_bytes(root: Path) -> str:
    valid(root / ST)
    (root / "config.json").write_bytes(b'{"model_type": "\xff"}')
    return "config.json"


W = "tensor `w`"
HEADER = "header"
META = "header field `__metadata__`"
WM = "weight_map tensor `w`"

CASES: list[tuple[str, Build, str, str | None]] = [
    ("truncated-length-prefix", _truncated_prefix, "shorter than the 8-byte header length", HEADER),
    (
        "header-length-beyond-file",
        _raw(b"{}", length=1000),
        "runs past the end of the file",
        HEADER,
    ),
    ("header-length-over-cap", _raw(b"{}", length=200_000_000), "exceeds the 100 MB cap", HEADER),
    ("header-not-utf8", _raw(b'{"\xff": 1}'), "not valid utf-8", HEADER),
    ("header-not-json", _raw(b'{"w": '), "not valid json", HEADER),
    ("header-json-array", _raw(b"[1, 2]"), "not a json object", HEADER),
    ("header-nan", _raw(b'{"w": NaN}'), "not valid json", HEADER),
    ("header-huge-integer", _raw(b'{"w": ' + b"9" * 5000 + b"}"), "too many digits", HEADER),
    ("header-deep-nesting", _raw(b"[" * 100_000 + b"]" * 100_000), "nests too deeply", HEADER),
    (
        "duplicate-key",
        _st('{"w": %s, "w": %s}' % ((json.dumps(f32(0, 16, [2, 2])),) * 2), bytes(16)),
        "duplicate key `w`",
        HEADER,
    ),
    ("empty-tensor-name", _st({"": f32(0, 16, [2, 2])}, bytes(16)), "tensor name is empty", HEADER),
    ("entry-not-object", _st({"w": 5}, b""), "entry is not a json object", W),
    (
        "missing-data-offsets",
        _st({"w": {"dtype": "F32", "shape": [2, 2]}}, bytes(16)),
        "missing field `data_offsets`",
        W,
    ),
    (
        "unexpected-field",
        _st({"w": {**f32(0, 16, [2, 2]), "extra": 1}}, bytes(16)),
        "unexpected field `extra`",
        W,
    ),
    (
        "unknown-dtype",
        _st({"w": f32(0, 16, [2, 2], dtype="F12")}, bytes(16)),
        "unknown dtype `F12`",
        W,
    ),
    (
        "dtype-not-string",
        _st({"w": f32(0, 16, [2, 2], dtype=4)}, bytes(16)),
        "dtype is not a string",
        W,
    ),
    ("negative-shape", _st({"w": f32(0, 16, [-2, 2])}, bytes(16)), "negative dimension", W),
    (
        "float-shape",
        _st({"w": f32(0, 16, [2.0, 2])}, bytes(16)),
        "shape is not a list of integers",
        W,
    ),
    (
        "boolean-shape",
        _st({"w": f32(0, 4, [True])}, bytes(4)),
        "shape is not a list of integers",
        W,
    ),
    (
        "offsets-not-pair",
        _st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}, bytes(4)),
        "not a pair",
        W,
    ),
    ("offsets-decreasing", _st({"w": f32(16, 0, [2, 2])}, bytes(16)), "not an increasing pair", W),
    (
        "byte-length-mismatch",
        _st({"w": f32(0, 16, [2, 3])}, bytes(16)),
        "byte length 16 does not match",
        W,
    ),
    (
        "overlapping-offsets",
        _st({"v": f32(0, 16, [4]), "w": f32(8, 24, [4])}, bytes(24)),
        "overlaps tensor `v`",
        W,
    ),
    (
        "gap-between-tensors",
        _st({"v": f32(0, 16, [4]), "w": f32(20, 36, [4])}, bytes(36)),
        "gap of 4 bytes",
        W,
    ),
    ("not-starting-at-zero", _st({"w": f32(8, 24, [4])}, bytes(24)), "gap of 8 bytes", W),
    ("trailing-bytes", _st({"w": f32(0, 16, [4])}, bytes(20)), "4 trailing bytes", "data"),
    ("offsets-past-end", _st({"w": f32(0, 16, [4])}, bytes(8)), "run past the end of the data", W),
    (
        "metadata-value-not-string",
        _st({"__metadata__": {"format": 1}, "w": f32(0, 16, [4])}, bytes(16)),
        "value of `format` is not a string",
        META,
    ),
    (
        "metadata-not-object",
        _st({"__metadata__": "pt", "w": f32(0, 16, [4])}, bytes(16)),
        "metadata is not a json object",
        META,
    ),
    ("index-absolute-path", _index_with({"w": "/etc/passwd"}, {}), "is not a relative path", WM),
    (
        "index-backslash-path",
        _index_with({"w": "..\\a.safetensors"}, {}),
        "is not a relative path",
        WM,
    ),
    (
        "index-dotdot-path",
        _index_with({"w": "../a.safetensors"}, {}),
        "leaves the model folder",
        WM,
    ),
    (
        "index-dotdot-inside",
        _index_with({"w": "sub/../a.safetensors"}, {"a.safetensors": ("w",)}),
        "leaves the model folder",
        WM,
    ),
    (
        "index-missing-shard",
        _index_with({"w": "model-00002.safetensors"}, {}),
        "does not exist",
        WM,
    ),
    ("index-shard-not-a-string", _index_with({"w": 3}, {}), "shard path is not a string", WM),
    (
        "index-tensor-not-in-shard",
        _index_with({"v": "a.safetensors", "w": "a.safetensors"}, {"a.safetensors": ("v",)}),
        "tensor is not in shard `a.safetensors`",
        WM,
    ),
    (
        "tensor-in-shard-not-in-index",
        _shard_not_in_index,
        "not listed in `model.safetensors.index.json`",
        "tensor `v`",
    ),
    (
        "tensor-in-two-shards",
        _shard_placed_elsewhere,
        "tensor is also in `a.safetensors`",
        "tensor `v`",
    ),
    (
        "index-not-json",
        _index_text('{"weight_map": {"w": "a.safetensors",}}'),
        "not valid json",
        "line 1:38",
    ),
    (
        "index-duplicate-key",
        _index_text('{"weight_map": {"w": "a.safetensors"}, "weight_map": {}}'),
        "duplicate key `weight_map`",
        None,
    ),
    (
        "index-weight-map-not-object",
        _index_text('{"weight_map": ["a.safetensors"]}'),
        "weight_map is not a json object",
        "field `weight_map`",
    ),
    ("index-missing-weight-map", _index_text("{}"), "missing field `weight_map`", None),
    ("index-into-checkpoints", _index_into_checkpoints, "lies in `checkpoints/`", WM),
    ("symlink-escaping-folder", _symlink_escape, "links outside the model folder", None),
    ("index-symlink-escaping-folder", _index_symlink_escape, "links outside the model folder", WM),
    ("same-tensor-two-files", _two_shards_no_index, "tensor is also in `a.safetensors`", W),
    ("config-malformed", _config('{\n  "model_type": "llama",\n}'), "not valid json", "line 3:1"),
    ("config-not-object", _config("[1, 2]"), "config is not a json object", None),
    ("config-duplicate-key", _config('{"a": 1, "a": 2}'), "duplicate key `a`", None),
    ("config-lone-surrogate", _config('{"model_type": "\\ud800x"}'),
     "model_type holds half of a UTF-16 surrogate pair", None),
    ("config-not-utf8", _config_bytes, "not valid utf-8", "byte 16"),
]
