"""The safetensors reader: round trips against the reference writer, strictness, robustness."""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file as torch_save

from detectors.base import InputError
from detectors.safetensors import (
    DTYPE_SIZES,
    HEADER_CAP,
    MappedFiles,
    TensorInfo,
    read_header,
    tensor_place,
    to_array,
)


def decode_all(path: Path) -> dict[str, np.ndarray]:
    tensors, _, _ = read_header(path)
    with MappedFiles() as maps:
        return {name: np.array(to_array(info, maps.raw(info))) for name, info in tensors.items()}


def test_public_api_is_pinned():
    import detectors.safetensors as module

    assert sorted(module.__all__) == sorted(
        [
            "DTYPE_SIZES",
            "HEADER_CAP",
            "TensorInfo",
            "MappedFiles",
            "read_header",
            "to_array",
            "tensor_place",
            "strict_json",
        ]
    )
    assert HEADER_CAP == 100_000_000


def test_numpy_round_trip_every_native_dtype(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f64": rng.standard_normal((3, 5)),
        "f32": rng.standard_normal((4, 2, 3)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "i8": rng.integers(-128, 128, (2, 9), dtype=np.int8),
        "u8": rng.integers(0, 256, 11, dtype=np.uint8),
        "i16": rng.integers(-(2**15), 2**15, 6, dtype=np.int16),
        "u16": rng.integers(0, 2**16, 6, dtype=np.uint16),
        "i32": rng.integers(-(2**31), 2**31, (3, 3), dtype=np.int32),
        "i64": rng.integers(-(2**62), 2**62, 4, dtype=np.int64),
        "bool": rng.integers(0, 2, (2, 2)).astype(bool),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    path = tmp_path / "x.safetensors"
    np_save(arrays, str(path), metadata={"format": "np", "note": "ünïcode"})
    tensors, metadata, data_start = read_header(path)
    assert metadata == {"format": "np", "note": "ünïcode"}
    assert data_start == 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert set(tensors) == set(arrays)
    decoded = decode_all(path)
    for name, expected in arrays.items():
        info = tensors[name]
        assert info.shape == expected.shape
        assert info.nbytes == expected.nbytes
        assert info.file == path
        assert decoded[name].dtype == expected.dtype
        assert np.array_equal(decoded[name], expected), name


def test_torch_round_trip_bf16_fp16_fp8_int_bool(tmp_path):
    gen = torch.Generator().manual_seed(1)
    every_byte = torch.arange(256, dtype=torch.uint8)
    every_bf16 = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    every_bf16 = every_bf16.view(torch.bfloat16)
    tensors = {
        "bf16": torch.randn(5, 7, generator=gen).to(torch.bfloat16),
        # Every bf16 bit pattern, NaNs and infinities included.
        "bf16_all": every_bf16,
        "fp16": torch.randn(3, 3, generator=gen).half(),
        "e4m3": every_byte.view(torch.float8_e4m3fn).reshape(16, 16),
        "e5m2": every_byte.clone().view(torch.float8_e5m2),
        "i32": torch.randint(-1000, 1000, (4, 4), generator=gen, dtype=torch.int32),
        "i64": torch.randint(-1000, 1000, (3,), generator=gen),
        "bool": torch.tensor([[True, False], [False, True]]),
    }
    path = tmp_path / "t.safetensors"
    torch_save(tensors, str(path))
    infos, _, _ = read_header(path)
    assert infos["bf16"].dtype == "BF16"
    assert infos["e4m3"].dtype == "F8_E4M3"
    assert infos["e5m2"].dtype == "F8_E5M2"
    decoded = decode_all(path)
    for name, tensor in tensors.items():
        got = decoded[name]
        if tensor.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            assert got.dtype == np.float32
            expected = tensor.float().numpy()
        else:
            expected = tensor.numpy()
            assert got.dtype == expected.dtype
        assert got.shape == tuple(tensor.shape)
        assert np.array_equal(got, expected, equal_nan=True), name
    # NaN patterns stay NaN and the sign of zero survives.
    e4m3 = decoded["e4m3"].reshape(-1)
    assert np.isnan(e4m3[0x7F]) and np.isnan(e4m3[0xFF])
    assert np.isinf(decoded["e5m2"][0x7C]) and np.signbit(decoded["e5m2"][0x80])


def test_raw_is_zero_copy_read_only_and_offsets_are_absolute(tmp_path):
    path = tmp_path / "m.safetensors"
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    np_save({"a": values, "b": np.ones(3, dtype=np.float64)}, str(path))
    tensors, _, data_start = read_header(path)
    content = path.read_bytes()
    with MappedFiles() as maps:
        for info in tensors.values():
            raw = maps.raw(info)
            assert raw.readonly
            assert bytes(raw) == content[info.start : info.end]
            assert info.start >= data_start
        array = to_array(tensors["a"], maps.raw(tensors["a"]))
        assert not array.flags.writeable and not array.flags.owndata
        assert np.array_equal(array, values)
        with pytest.raises(ValueError):
            array[0, 0] = 1.0
        del array
    with pytest.raises(ValueError, match="closed"):
        maps.raw(tensors["a"])


def test_close_with_a_live_view_does_not_fail(tmp_path):
    path = tmp_path / "m.safetensors"
    np_save({"a": np.arange(4, dtype=np.float32)}, str(path))
    tensors, _, _ = read_header(path)
    maps = MappedFiles()
    view = maps.raw(tensors["a"])
    maps.close()
    assert bytes(view) == np.arange(4, dtype=np.float32).tobytes()


def test_header_only_file_and_empty_tensors(tmp_path):
    path = tmp_path / "e.safetensors"
    np_save({}, str(path))
    assert read_header(path)[0] == {}
    empty = {"z": np.zeros((0,), dtype=np.float32), "y": np.zeros((2, 0), dtype=np.int8)}
    np_save(empty, str(path))
    tensors, _, _ = read_header(path)
    assert decode_all(path)["y"].shape == (2, 0)
    assert all(info.nbytes == 0 for info in tensors.values())


def test_header_padding_spaces_are_accepted(tmp_path):
    header = b'{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}' + b" " * 6
    path = tmp_path / "p.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x01\x02")
    assert decode_all(path)["w"].tolist() == [1, 2]


def test_header_at_exactly_the_cap_is_read(tmp_path):
    path = tmp_path / "cap.safetensors"
    # A header at the cap is allowed (a padded one); just past it is refused.
    header = b"{}" + b" " * (HEADER_CAP - 2)
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    assert read_header(path)[0] == {}
    path.write_bytes(struct.pack("<Q", HEADER_CAP + 1) + header + b"  ")
    with pytest.raises(InputError, match="exceeds the 100 MB cap"):
        read_header(path)


def test_errors_are_one_line_and_name_the_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    header = b'{"a\\nb`c": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}'
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    with pytest.raises(InputError) as caught:
        read_header(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: tensor `a\\nb")
    assert caught.value.file == str(path)
    assert "byte length 8 does not match shape [1] of `F32` (4 bytes)" in message


def test_tensor_place_quotes_and_truncates():
    assert tensor_place("model.layers.0.q_proj.weight") == "tensor `model.layers.0.q_proj.weight`"
    assert len(tensor_place("x" * 5000)) < 260


def test_to_array_refuses_a_wrong_length():
    info = TensorInfo("w", "F32", (2,), Path("f"), 8, 16)
    with pytest.raises(ValueError):
        to_array(info, b"\x00" * 4)


def test_dtype_table_matches_the_reference_writer(tmp_path):
    torch_dtypes = {
        "BOOL": torch.bool,
        "U8": torch.uint8,
        "I8": torch.int8,
        "F8_E4M3": torch.float8_e4m3fn,
        "F8_E5M2": torch.float8_e5m2,
        "I16": torch.int16,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I32": torch.int32,
        "F32": torch.float32,
        "I64": torch.int64,
        "F64": torch.float64,
    }
    path = tmp_path / "d.safetensors"
    torch_save({code: torch.zeros(3, dtype=dt) for code, dt in torch_dtypes.items()}, str(path))
    tensors, _, _ = read_header(path)
    for code, dt in torch_dtypes.items():
        assert tensors[code].dtype == code
        assert DTYPE_SIZES[code] == torch.zeros((), dtype=dt).element_size()


# A valid file for the mutation property: several dtypes, metadata, a padded header.
def _seed_file() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.safetensors"
        torch_save(
            {
                "a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                "b": torch.arange(4, dtype=torch.bfloat16),
                "c": torch.zeros(3, dtype=torch.float8_e4m3fn),
                "d": torch.tensor([1, 2], dtype=torch.int64),
            },
            str(path),
            metadata={"format": "pt"},
        )
        return path.read_bytes()


SEED = _seed_file()
HEADER_END = 8 + struct.unpack("<Q", SEED[:8])[0]

mutation = st.tuples(
    # Mostly the header, where the parsing happens; sometimes the data.
    st.one_of(st.integers(0, HEADER_END - 1), st.integers(0, len(SEED) - 1)),
    st.integers(0, 255),
)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    mutations=st.lists(mutation, min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, len(SEED))),
    extra=st.binary(max_size=8),
)
def test_mutated_files_parse_or_raise_input_error(mutations, cut, extra):
    data = bytearray(SEED)
    for position, value in mutations:
        data[position] = value
    data = bytes(data[:cut]) + extra if cut is not None else bytes(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        path.write_bytes(data)
        try:
            decoded = decode_all(path)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(path))
            return
        assert all(isinstance(a, np.ndarray) for a in decoded.values())
