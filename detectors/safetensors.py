"""Strict validation and zero-copy, memory-mapped reading of safetensors files.

Every header is checked in full before any tensor is touched; problems raise `InputError`.
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import struct
from dataclasses import dataclass
from math import prod
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from detectors.base import LONE_SURROGATE, InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DTYPE_SIZES",
    "HEADER_CAP",
    "TensorInfo",
    "MappedFiles",
    "read_header",
    "to_array",
    "tensor_place",
    "strict_json",
]

# Bytes per element of each safetensors dtype this reader understands.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}

# The reference reader refuses headers above 100 MB; so do we.
HEADER_CAP = 100_000_000

_NATIVE = {
    "U8": "<u1",
    "I8": "<i1",
    "I16": "<i2",
    "U16": "<u2",
    "F16": "<f2",
    "I32": "<i4",
    "U32": "<u4",
    "F32": "<f4",
    "I64": "<i8",
    "U64": "<u8",
    "F64": "<f8",
}

_ENTRY_FIELDS = ("dtype", "shape", "data_offsets")
_METADATA = "__metadata__"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: `start`/`end` are absolute byte offsets in `file`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return prod(self.shape)


def tensor_place(name: str) -> str:
    """The error place for a tensor, safe to print on one line."""
    return f"tensor `{_printable(name)}`"


def _printable(text: str, limit: int = 200) -> str:
    # Names come from untrusted files: keep messages on one line and short.
    shown = "".join(c if c.isprintable() and c != "`" else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[:limit] + "…"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not allowed")


def strict_json(text: str) -> Any:
    """Parse JSON, rejecting duplicate keys, NaN/Infinity and absurd nesting.

    Raises `json.JSONDecodeError` for syntax errors (it has `lineno`/`colno`), and a
    plain `ValueError` with a short lower-case message for everything else.
    """
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise ValueError(f"duplicate key `{_printable(exc.key)}`") from None
    except RecursionError:
        raise ValueError("json nests too deeply") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:
        # Python's own limits (integer digits and the like).
        text = str(exc)
        if "integer string conversion" in text:
            raise ValueError("not valid json: a number has too many digits") from None
        problem = _printable(text[:1].lower() + text[1:], 120)
        raise ValueError(f"not valid json: {problem}") from None
    if "\\u" in text:  # only an escape can write a lone surrogate, which is no character
        where = _lone_surrogate(data, "")
        if where is not None:
            shown = _printable(where, 120) or "a text"
            raise ValueError(f"{shown} holds half of a UTF-16 surrogate pair, which is no character")
    return data


def _lone_surrogate(value: Any, path: str) -> str | None:
    """The JSON path of the first text (or key) holding a lone surrogate, else None."""
    if isinstance(value, str):
        return path if LONE_SURROGATE.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and LONE_SURROGATE.search(key):
            return here
        found = _lone_surrogate(item, here)
        if found is not None:
            return found
    return None


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        msg = exc.msg[:1].lower() + exc.msg[1:]
        return f"not valid json: {msg} at line {exc.lineno}:{exc.colno}"
    return str(exc)


def read_header(path: str | Path) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    """Validate one safetensors file and describe its tensors.

    Returns (tensors by name, `__metadata__`, absolute offset where the data begins).
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) < 8:
                raise InputError(path, "header", "file is shorter than the 8-byte header length")
            (length,) = struct.unpack("<Q", prefix)
            if length > HEADER_CAP:
                cap = HEADER_CAP // 1_000_000
                raise InputError(path, "header", f"header length {length} exceeds the {cap} MB cap")
            if 8 + length > size:
                problem = f"header length {length} runs past the end of the file ({size} bytes)"
                raise InputError(path, "header", problem)
            raw = f.read(length)
    except OSError as exc:
        reason = _printable(exc.strerror or str(exc))
        raise InputError(path, None, f"cannot read: {reason}") from None
    if len(raw) != length:
        raise InputError(path, None, "file changed while reading")
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InputError(path, "header", f"not valid utf-8 (byte {exc.start})") from None
    try:
        header = strict_json(text)
    except ValueError as exc:
        raise InputError(path, "header", _json_problem(exc)) from None
    if not isinstance(header, dict):
        raise InputError(path, "header", "not a json object")

    data_start = 8 + length
    data_len = size - data_start
    metadata = _metadata(path, header.get(_METADATA, {}))
    entries: list[tuple[int, int, str, str, tuple[int, ...]]] = []
    for name, entry in header.items():
        if name == _METADATA:
            continue
        entries.append(_entry(path, name, entry))

    # Contiguous, non-overlapping, starting at 0 and covering the data exactly.
    entries.sort(key=lambda e: (e[0], e[1]))
    tensors: dict[str, TensorInfo] = {}
    cursor = 0
    previous: str | None = None
    for begin, end, name, dtype, shape in entries:
        place = tensor_place(name)
        if end > data_len:
            problem = f"data offsets [{begin}, {end}] run past the end of the data"
            problem += f" ({data_len} bytes)"
            raise InputError(path, place, problem)
        if begin < cursor:
            raise InputError(path, place, f"data overlaps tensor `{_printable(previous or '')}`")
        if begin > cursor:
            raise InputError(path, place, f"gap of {begin - cursor} bytes before the tensor's data")
        cursor = end
        previous = name
        tensors[name] = TensorInfo(name, dtype, shape, path, data_start + begin, data_start + end)
    if cursor != data_len:
        raise InputError(path, "data", f"{data_len - cursor} trailing bytes after the last tensor")
    return tensors, metadata, data_start


def _metadata(path: Path, value: Any) -> dict[str, str]:
    place = f"header field `{_METADATA}`"
    if not isinstance(value, dict):
        raise InputError(path, place, "metadata is not a json object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InputError(path, place, f"value of `{_printable(key)}` is not a string")
    return dict(value)


def _entry(path: Path, name: str, entry: Any) -> tuple[int, int, str, str, tuple[int, ...]]:
    if not name:
        raise InputError(path, "header", "tensor name is empty")
    place = tensor_place(name)
    if not isinstance(entry, dict):
        raise InputError(path, place, "entry is not a json object")
    for key in _ENTRY_FIELDS:
        if key not in entry:
            raise InputError(path, place, f"missing field `{key}`")
    for key in entry:
        if key not in _ENTRY_FIELDS:
            raise InputError(path, place, f"unexpected field `{_printable(key)}`")
    dtype = entry["dtype"]
    if not isinstance(dtype, str):
        raise InputError(path, place, "dtype is not a string")
    if dtype not in DTYPE_SIZES:
        raise InputError(path, place, f"unknown dtype `{_printable(dtype)}`")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(type(d) is int for d in shape):
        raise InputError(path, place, "shape is not a list of integers")
    if any(d < 0 for d in shape):
        raise InputError(path, place, "shape has a negative dimension")
    offsets = entry["data_offsets"]
    pair = isinstance(offsets, list) and len(offsets) == 2
    if not pair or not all(type(o) is int for o in offsets):
        raise InputError(path, place, "data_offsets is not a pair of integers")
    begin, end = offsets
    if begin < 0 or end < begin:
        problem = f"data offsets [{begin}, {end}] are not an increasing pair of non-negative"
        problem += " integers"
        raise InputError(path, place, problem)
    expected = prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        problem = (
            f"byte length {end - begin} does not match shape {list(shape)} of `{dtype}`"
            f" ({expected} bytes)"
        )
        raise InputError(path, place, problem)
    return begin, end, name, dtype, tuple(shape)


# Bit layouts of the fp8 dtypes: exponent bits, mantissa bits, IEEE specials (e5m2 has
# infinities and many NaNs; e4m3fn only S.1111.111 as NaN and no infinities).
FP8_LAYOUTS = {"F8_E4M3": (4, 3, False), "F8_E5M2": (5, 2, True)}


@functools.cache
def fp8_table(dtype: str) -> np.ndarray:
    """float32 value of each of the 256 codes of an fp8 dtype, built from its bit layout
    (so no float8 support is needed); read-only, shared by every caller."""
    import numpy as np

    exp_bits, man_bits, ieee = FP8_LAYOUTS[dtype]
    bias = (1 << (exp_bits - 1)) - 1
    code = np.arange(256)
    sign = np.where(code & 0x80, -1.0, 1.0)
    exp = (code >> man_bits) & ((1 << exp_bits) - 1)
    man = code & ((1 << man_bits) - 1)
    frac = man / (1 << man_bits)
    value = np.where(exp == 0, frac * 2.0 ** (1 - bias), (1 + frac) * 2.0 ** (exp - bias))
    top = (1 << exp_bits) - 1
    if ieee:
        value = np.where(exp == top, np.where(man == 0, np.inf, np.nan), value)
    else:
        value = np.where((exp == top) & (man == (1 << man_bits) - 1), np.nan, value)
    table = (sign * value).astype(np.float32)
    table.setflags(write=False)
    return table


def to_array(info: TensorInfo, raw: memoryview | bytes) -> np.ndarray:
    """Decode a tensor's bytes: float32 for BF16 and FP8, native little-endian otherwise.

    Native dtypes are zero-copy read-only views of `raw`; the others are new arrays.
    """
    # numpy loads on first use: opening a model and hashing its weights need none of it.
    import numpy as np

    if len(raw) != info.nbytes:
        raise ValueError(f"tensor `{info.name}`: got {len(raw)} bytes, expected {info.nbytes}")
    if info.dtype == "BF16":
        # bfloat16 is the upper half of a float32.
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        out = bits.view(np.float32)
    elif info.dtype in FP8_LAYOUTS:
        out = fp8_table(info.dtype)[np.frombuffer(raw, dtype=np.uint8)]
    elif info.dtype == "BOOL":
        out = np.frombuffer(raw, dtype=np.uint8) != 0
    else:
        out = np.frombuffer(raw, dtype=_NATIVE[info.dtype])
    return out.reshape(info.shape)


class MappedFiles:
    """Read-only memory maps of safetensors files, opened on first use and kept open.

    `raw(info)` is a zero-copy view. `close()` unmaps every file whose views are no
    longer in use; a map still referenced by a view is released when the view goes.
    """

    def __init__(self) -> None:
        self._maps: dict[Path, mmap.mmap] = {}
        self._closed = False

    def raw(self, info: TensorInfo) -> memoryview:
        if self._closed:
            raise ValueError("the model's files are closed")
        mm = self._maps.get(info.file)
        if mm is None:
            mm = self._open(info.file)
        if info.end > len(mm):
            raise InputError(info.file, tensor_place(info.name), "file changed while reading")
        return memoryview(mm)[info.start : info.end]

    def drop(self, info: TensorInfo, start: int, end: int) -> None:
        """Let go of the pages of bytes [start, end) of the tensor: they stop counting
        toward this process's memory, the page cache keeps them, a later read maps them
        again."""
        mm = self._maps.get(info.file)
        if mm is None or not hasattr(mm, "madvise"):
            return
        lo = (info.start + start) // mmap.PAGESIZE * mmap.PAGESIZE
        hi = min(len(mm), -(-(info.start + end) // mmap.PAGESIZE) * mmap.PAGESIZE)
        if hi > lo:
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def _open(self, path: Path) -> mmap.mmap:
        try:
            with open(path, "rb") as f:
                # A file holding only a header still has at least 8 bytes: never empty.
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise InputError(path, None, f"cannot map: {_printable(str(exc))}") from None
        self._maps[path] = mm
        return mm

    def close(self) -> None:
        self._closed = True
        maps, self._maps = self._maps, {}
        for mm in maps.values():
            try:
                mm.close()
            except BufferError:
                pass  # a caller still holds a view; the map goes with it

    def __enter__(self) -> MappedFiles:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
