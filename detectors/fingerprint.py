"""Weights-free tensor fingerprints: digests, deterministic-constant families, sampled sketches.

Stored as JSON plus one little-endian binary file (no pickle); computed one tensor at a time.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import blake3
import numpy as np

from detectors.base import InputError
from detectors.model import read_json
from detectors.safetensors import FP8_LAYOUTS, fp8_table

__all__ = [
    "FORMAT",
    "JSON_FILE",
    "BIN_FILE",
    "UNITS",
    "FEATURES",
    "VECTOR",
    "FLOAT_DTYPES",
    "TensorPrint",
    "Gathered",
    "Fingerprint",
    "sample_indices",
    "native_view",
    "decode",
    "canonical_codes",
    "finite_values",
    "transposed_slab",
    "cast_tolerance",
    "constant_family",
    "fingerprint_tensor",
    "plan",
    "feature_block",
    "vector_indices",
    "write_fingerprint",
    "read_fingerprint",
    "fingerprint_bytes",
    "component_entries",
]

FORMAT = "originality.weights/1"
JSON_FILE = "weights.json"
BIN_FILE = "weights.bin"
# Sample sizes: units (rows or columns treated as hidden units) and features per unit
# for each 2-D sketch, and entries kept of a 1-D tensor. 32 x 128 keeps the sketches of
# a d=4096 model near 0.05 % of its bytes while leaving ample power (see matching.py).
UNITS = 32
FEATURES = 128
VECTOR = 1024

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})
_NATIVE = {
    "BOOL": "<u1", "U8": "<u1", "I8": "<i1", "F8_E4M3": "<u1", "F8_E5M2": "<u1",
    "I16": "<i2", "U16": "<u2", "F16": "<f2", "BF16": "<u2",
    "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8", "U64": "<u8", "F64": "<f8",
}
# Relative half-ulp and absolute (subnormal) rounding of a cast into each float dtype.
_ROUNDING = {
    "F64": (2.0**-53, 0.0),
    "F32": (2.0**-24, 2.0**-150),
    "BF16": (2.0**-8, 2.0**-134),
    "F16": (2.0**-11, 2.0**-25),
    "F8_E4M3": (2.0**-4, 2.0**-10),
    "F8_E5M2": (2.0**-3, 2.0**-17),
}
# Bytes of a tensor handled per block of the streaming pass.
_PASS_BYTES = 32 << 20
# Tensors up to this many elements may get a full pass in the constant check.
_SMALL = 1 << 24

# Ranges up to this size are sampled by a full seeded shuffle.
_SHUFFLE_LIMIT = 1 << 16
# Salts of the seeded samples; changing them changes every fingerprint (bump FORMAT).
_SEED = 0x6F726967696E616C  # "original"
_SALT_UNITS_R, _SALT_FEATURES_R, _SALT_UNITS_C, _SALT_FEATURES_C, _SALT_VECTOR, _SALT_PROBE = range(1, 7)


# --- seeded sampling --------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised; integer-only so every numpy gives the same bits."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _seed(salt: int) -> np.uint64:
    return _mix(np.array([_SEED ^ salt], dtype=np.uint64))[0]


@functools.lru_cache(maxsize=4096)
def sample_indices(n: int, k: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """k of range(n) drawn by a seeded integer hash, ascending, and a mask of the first
    half drawn.

    The mask splits the sample into two disjoint random halves (used to match units on
    one half and test them on the other). Same (n, k, salt), same indices, everywhere.
    Small ranges are shuffled whole; large ones are drawn with rejection of repeats, so
    the cost depends on k, not on n.
    """
    k = min(k, n)
    seed = _seed(salt)
    if n <= _SHUFFLE_LIMIT or 4 * k >= n:
        order = np.argsort(_mix(np.arange(n, dtype=np.uint64) ^ seed), kind="stable")[:k]
    else:
        draws = 2 * k + 16
        while True:
            cand = (_mix(np.arange(draws, dtype=np.uint64) ^ seed) % np.uint64(n)).astype(np.int64)
            _, first = np.unique(cand, return_index=True)
            order = cand[np.sort(first)][:k]
            if order.size == k:
                break
            draws *= 2
    chosen = np.sort(order).astype(np.int64)
    # The first k // 2 drawn form the matching half.
    half = np.zeros(k, dtype=bool)
    half[np.searchsorted(chosen, np.sort(order[: k // 2]))] = True
    chosen.setflags(write=False)  # cached: shared by every caller
    half.setflags(write=False)
    return chosen, half


# --- decoding ---------------------------------------------------------------------


def native_view(dtype: str, raw: memoryview | bytes, shape: Iterable[int]) -> np.ndarray:
    """Zero-copy view of a tensor's bytes: bf16 as uint16 codes, fp8 as uint8 codes."""
    return np.frombuffer(raw, dtype=_NATIVE[dtype]).reshape(tuple(shape))


def decode(dtype: str, native: np.ndarray) -> np.ndarray:
    """float32 values of (part of) a native view; always a new array."""
    if dtype == "BF16":
        return (native.astype(np.uint32) << np.uint32(16)).view(np.float32)
    if dtype in FP8_LAYOUTS:
        return fp8_table(dtype)[native]
    with np.errstate(over="ignore"):  # F64 past float32's range becomes ±inf, read as such
        return native.astype(np.float32)


def finite_values(dtype: str, native: np.ndarray) -> np.ndarray:
    """`decode`, with NaN and ±inf read as 0: for statistics, which a few poisoned
    entries (in rows a model never uses) must not turn into NaN, and so into no evidence."""
    values = decode(dtype, native)
    # One summing pass tells whether any entry is NaN or infinite (an overflowing sum
    # only sends finite values down the exact path, which leaves them as they are).
    if dtype in FLOAT_DTYPES and values.size:
        with np.errstate(over="ignore", invalid="ignore"):
            total = values.sum(dtype=np.float32)
        if not np.isfinite(total):
            np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return values


def canonical_codes(dtype: str, native: np.ndarray) -> np.ndarray:
    """Values rounded to the bfloat16 grid (round to nearest even), as uint16 codes.

    A bf16, fp16 or fp32 copy of the same weights gives the same codes, except where a
    cast into fp16 rounded again (handled by `cast_tolerance`). Non-floats pass through.
    """
    if dtype == "BF16":
        return native
    if dtype not in FLOAT_DTYPES:
        return native
    bits = np.ascontiguousarray(decode(dtype, native)).view(np.uint32)
    with np.errstate(over="ignore"):
        codes = ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
    nan = (bits & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    if nan.any():
        codes[nan] = 0x7FC0
    return codes


def cast_tolerance(dtype_a: str, dtype_b: str, values: np.ndarray) -> np.ndarray:
    """Largest difference a dtype cast can make between copies of `values`.

    Zero for equal dtypes (a copy must then be bit-equal); else the rounding of both
    dtypes, since both may be casts of a common higher-precision original.
    """
    if dtype_a == dtype_b:
        return np.zeros_like(values)
    mag = np.abs(values)
    tol = np.zeros_like(values)
    for dtype in (dtype_a, dtype_b):
        rel, floor = _ROUNDING.get(dtype, (0.0, 0.0))
        tol = tol + mag * rel + floor
    return tol


def _hex(h: Any) -> str:
    return "blake3:" + h.hexdigest()


def _digest(data: Any) -> str:
    size = memoryview(data).nbytes
    # Threads pay off only on large inputs; the result is the same either way.
    threads = blake3.blake3.AUTO if size >= (1 << 22) else 1
    return _hex(blake3.blake3(data, max_threads=threads))


def _multiset_digest(codes: np.ndarray) -> str:
    """Digest of the sorted multiset of rows of a 2-D code array (row-order invariant)."""
    codes = np.ascontiguousarray(codes)
    rows = codes.view(np.dtype((np.void, codes.shape[1] * codes.itemsize))).ravel()
    ordered = np.sort(rows)
    h = blake3.blake3(f"{codes.shape[0]}x{codes.shape[1]}:".encode())
    h.update(ordered.view(np.uint8))
    return _hex(h)


# --- constant families ------------------------------------------------------------


def _sinusoidal(rows: np.ndarray, tol: float) -> bool:
    """Every row a sampled sinusoid: x[t+1] + x[t-1] = 2 cos(w) x[t] (any w, phase, scale)."""
    if rows.shape[1] < 5:
        return False
    seen = 0
    for row in rows.astype(np.float64):
        mid, outer = row[1:-1], row[2:] + row[:-2]
        denom = float(np.dot(mid, mid))
        scale = float(np.dot(outer, outer)) + denom
        if scale == 0.0:
            continue  # an all-zero row says nothing
        if denom == 0.0:
            return False
        resid = outer - (float(np.dot(outer, mid)) / denom) * mid
        if float(np.dot(resid, resid)) > tol * tol * scale:
            return False
        seen += 1
    return seen > 0


def _sequence(lines: np.ndarray, tol: float, integer: bool) -> str | None:
    """`arange`, `linear` or `geometric` when every line steps evenly; else None.

    The step must dwarf the rounding tolerance, so near-constant learned vectors (norm
    gains a few steps into training) never pass as sequences.
    """
    step = np.diff(lines, axis=1)
    span = float(np.abs(lines).max()) or 1.0
    if np.all(np.abs(step - step[:, :1]) <= tol * span) and np.all(np.abs(step[:, 0]) > 4 * tol * span):
        return "arange" if integer and np.all(step == 1) else "linear"
    if np.all(lines > 0):
        ratio = np.diff(np.log(lines), axis=1)
        if np.all(np.abs(ratio - ratio[:, :1]) <= 2 * tol) and np.all(np.abs(ratio[:, 0]) > 8 * tol):
            return "geometric"
    return None


def constant_family(dtype: str, native: np.ndarray) -> str | None:
    """The deterministic family a tensor belongs to, or None for learned-looking weights.

    Families: `uniform` (one value: fresh norm gains, zero biases, scalars), `binary`
    (two values: masks), `arange` (position ids), `linear` and `geometric` sequences
    (rotary `inv_freq`), `sinusoid` (DFT/STFT bases, sinusoidal position tables). Such
    tensors are equal across independently trained models and never count as reuse.
    Large tensors are rejected on a sample before any full pass.
    """
    n = native.size
    if n <= 1:
        return "uniform"
    if dtype == "BOOL":
        return "binary"
    flat = native.reshape(-1)
    probe, _ = sample_indices(n, 64, _SALT_PROBE)
    if np.unique(flat[probe]).size <= 2 and n <= _SMALL:
        distinct = np.unique(flat).size
        if distinct <= 2:
            return "uniform" if distinct == 1 else "binary"
    floating = dtype in FLOAT_DTYPES
    tol = max(4 * _ROUNDING.get(dtype, (0.0, 0.0))[0], 1e-6) if floating else 0.0
    width = native.shape[-1]
    lines = native.reshape(-1, width)
    if width >= 3:
        first = (decode(dtype, lines[:1]) if floating else lines[:1]).astype(np.float64)
        if np.all(np.isfinite(first)) and _sequence(first, tol, not floating) and n <= _SMALL:
            every = (decode(dtype, lines) if floating else lines).astype(np.float64)
            family = _sequence(every, tol, not floating) if np.all(np.isfinite(every)) else None
            if family:
                return family
    # fp8 rounds too coarsely (6-12 %) for the sinusoid test to tell tables from weights.
    if floating and native.ndim >= 2 and tol <= 0.02:
        mat = native.reshape(native.shape[0], -1)
        picks_r, _ = sample_indices(mat.shape[0], 8, _SALT_PROBE)
        picks_c, _ = sample_indices(mat.shape[1], 8, _SALT_PROBE)
        tol_s = max(4 * tol, 1e-5)
        rows = decode(dtype, mat[picks_r])
        if np.all(np.isfinite(rows)) and _sinusoidal(rows, tol_s):
            return "sinusoid"
        # Columns are checked on a window of leading rows: a strided read of the whole
        # tensor would cost as much as hashing it.
        cols = decode(dtype, np.ascontiguousarray(mat[:64, picks_c].T))
        if np.all(np.isfinite(cols)) and _sinusoidal(cols, tol_s):
            return "sinusoid"
    return None


# --- per-tensor fingerprint ---------------------------------------------------------


@dataclass
class TensorPrint:
    """What a fingerprint keeps of one tensor.

    Digests: `raw` (bytes), `canonical` (bf16-grid values: equal for cast copies),
    `rows`/`cols` (sorted multiset of the units' canonical values on the sampled
    features: equal for row- or column-permuted copies). Sketches hold native values:
    `R` rows-as-units (UNITS x FEATURES), `C` columns-as-units, `V` entries of a 1-D
    tensor.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    raw: str
    canonical: str
    rows: str | None = None
    cols: str | None = None
    constant: str | None = None
    sketches: dict[str, np.ndarray] = field(default_factory=dict)
    # Matching's derived arrays, computed once per reference tensor; never stored.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def matrix_shape(self) -> tuple[int, int] | None:
        """(units along axis 0, the rest flattened) for tensors of two or more axes."""
        if len(self.shape) < 2:
            return None
        return self.shape[0], math.prod(self.shape[1:])


@dataclass
class Gathered:
    """A submitted tensor's sampled slices, kept in its own dtype while it is matched.

    `R` is every row on the R features (rows x FEATURES), `C` every column on the C
    features (columns x FEATURES), `V` the sampled entries of a 1-D tensor. Native
    values take half the memory of float32 for bf16; `values` decodes what is asked.
    """

    dtype: str
    slabs: dict[str, np.ndarray] = field(default_factory=dict)
    # Derived arrays that matching computes once per tensor and shares across partners.
    cache: dict[str, Any] = field(default_factory=dict)

    def values(self, key: str, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """float32 values of a slab, or of some of its rows."""
        slab = self.slabs[key]
        return finite_values(self.dtype, slab if rows is None else slab[rows])


def feature_block(n: int, m: int, salt: int) -> tuple[np.ndarray, np.ndarray]:
    """m consecutive indices of range(n) at a seeded offset, and a seeded random half.

    Features are a contiguous block so that gathering every unit on them touches a few
    cache lines per row rather than the whole tensor: the streaming pass then costs
    little beyond hashing. Under independence any fixed feature set is as good as
    another (the test relies on exchangeability, not on randomness of the set).
    """
    m = min(m, n)
    start = int(_seed(salt) % np.uint64(n - m + 1))
    order = np.argsort(_mix(np.arange(m, dtype=np.uint64) ^ _seed(salt + 100)), kind="stable")
    half = np.zeros(m, dtype=bool)
    half[order[: m // 2]] = True
    return np.arange(start, start + m, dtype=np.int64), half


def _plan(shape: tuple[int, ...]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per orientation: (unit indices, feature indices, first-half mask of the features).

    R: units are rows, features a block of columns; C: units are columns, features a
    block of rows.
    """
    if len(shape) < 2:
        return {}
    r, c = shape[0], math.prod(shape[1:])
    units_r, _ = sample_indices(r, UNITS, _SALT_UNITS_R)
    feats_r, half_r = feature_block(c, FEATURES, _SALT_FEATURES_R)
    units_c, _ = sample_indices(c, UNITS, _SALT_UNITS_C)
    feats_c, half_c = feature_block(r, FEATURES, _SALT_FEATURES_C)
    return {"R": (units_r, feats_r, half_r), "C": (units_c, feats_c, half_c)}


_PLANS: dict[tuple[int, ...], Any] = {}


def plan(shape: tuple[int, ...]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Cached sampling plan for a shape (many tensors share one)."""
    key = tuple(shape)
    got = _PLANS.get(key)
    if got is None:
        if len(_PLANS) > 4096:
            _PLANS.clear()
        got = _PLANS[key] = _plan(key)
    return got


def transposed_slab(dtype: str, shape: tuple[int, ...], raw: memoryview | bytes) -> np.ndarray:
    """For a matrix stored the other way round from a reference of shape (shape[1],
    shape[0]): that reference's `R` slab, every one of its units (columns here) on its
    feature block (a block of rows here), in native codes."""
    feats = plan((shape[1], shape[0]))["R"][1]
    native = native_view(dtype, raw, shape)
    return np.ascontiguousarray(native[feats[0]: feats[-1] + 1].T)


def vector_indices(n: int) -> np.ndarray:
    return sample_indices(n, VECTOR, _SALT_VECTOR)[0]


def fingerprint_tensor(
    name: str,
    dtype: str,
    shape: Iterable[int],
    raw: memoryview | bytes,
    gather: bool = False,
    release: Callable[[int, int], None] | None = None,
    raw_digest: Callable[[], str] | None = None,
) -> tuple[TensorPrint, Gathered | None]:
    """Fingerprint one tensor from its bytes; with `gather`, also keep its sampled slices
    (float32) for matching.

    One pass over the bytes in row blocks of about 32 MB: each block is hashed (raw and
    canonical) and its sampled columns and rows copied out, then `release(start, end)`
    is called with the block's byte range so a memory-mapped reader can drop its pages.
    `raw_digest`, when given, supplies the raw bytes' digest (someone else hashes them)
    and is called once the pass is done.
    """
    shape = tuple(int(s) for s in shape)
    native = native_view(dtype, raw, shape)
    view = memoryview(raw).cast("B") if not isinstance(raw, memoryview) or raw.format != "B" else raw
    constant = constant_family(dtype, native)
    sketched = dtype in FLOAT_DTYPES and constant is None and native.size >= 2
    matrix = sketched and native.ndim >= 2
    itemsize = native.itemsize
    if native.ndim >= 2:
        r, c = shape[0], math.prod(shape[1:])
    else:
        r, c = native.size, 1
    mat = native.reshape(r, c)
    threads = blake3.blake3.AUTO if view.nbytes >= (1 << 22) else 1
    raw_hash = blake3.blake3(max_threads=threads) if raw_digest is None else None
    canon_hash = blake3.blake3(max_threads=threads) if dtype in FLOAT_DTYPES and dtype != "BF16" else None
    plans = plan(shape) if matrix else {}
    if matrix:
        feats_r, feats_c = plans["R"][1], plans["C"][1]
        slab_r = np.empty((r, feats_r.size), dtype=native.dtype)
        slab_c = np.empty((feats_c.size, c), dtype=native.dtype)
    rows_per = max(1, _PASS_BYTES // max(1, c * itemsize))
    for r0 in range(0, max(r, 1), rows_per):
        r1 = min(r, r0 + rows_per)
        b0, b1 = r0 * c * itemsize, r1 * c * itemsize
        if raw_hash is not None:
            raw_hash.update(view[b0:b1])
        block = mat[r0:r1]
        if canon_hash is not None:
            canon_hash.update(np.ascontiguousarray(canonical_codes(dtype, block)).view(np.uint8))
        if matrix:
            slab_r[r0:r1] = block[:, feats_r[0] : feats_r[-1] + 1]
            lo, hi = max(r0, feats_c[0]), min(r1, feats_c[-1] + 1)
            if hi > lo:
                slab_c[lo - feats_c[0] : hi - feats_c[0]] = mat[lo:hi]
        if release is not None:
            release(b0, b1)
    raw_hex = _hex(raw_hash) if raw_hash is not None else raw_digest()
    tp = TensorPrint(
        name=name, dtype=dtype, shape=shape, raw=raw_hex,
        canonical=_hex(canon_hash) if canon_hash is not None else raw_hex, constant=constant,
    )
    gathered = Gathered(dtype) if gather else None
    if not sketched:
        return tp, gathered
    if not matrix:
        idx = vector_indices(native.size)
        tp.sketches["V"] = np.ascontiguousarray(native.reshape(-1)[idx])
        if gathered is not None:
            gathered.slabs["V"] = tp.sketches["V"]
        return tp, gathered
    # R: every row on the sampled columns; C: every column on the sampled rows.
    for key, full in (("R", slab_r), ("C", np.ascontiguousarray(slab_c.T))):
        units = plans[key][0]
        tp.sketches[key] = np.ascontiguousarray(full[units])
        digest = _multiset_digest(canonical_codes(dtype, full))
        if key == "R":
            tp.rows = digest
        else:
            tp.cols = digest
        if gathered is not None:
            gathered.slabs[key] = full
    return tp, gathered


# --- the fingerprint of a model -----------------------------------------------------


@dataclass
class Fingerprint:
    """A model's (or reference's) fingerprint: components and tensor prints."""

    components: list[dict[str, Any]]
    tensors: dict[str, TensorPrint]
    parameters: int
    weight_bytes: int


def _tensor_entry(tp: TensorPrint, offsets: dict[str, list[int]]) -> dict[str, Any]:
    return {
        "name": tp.name,
        "dtype": tp.dtype,
        "shape": list(tp.shape),
        "digest": {"raw": tp.raw, "canonical": tp.canonical, "rows": tp.rows, "cols": tp.cols},
        "constant": tp.constant,
        "sketch": offsets,
    }


def write_fingerprint(directory: str | Path, fp: Fingerprint) -> tuple[Path, Path]:
    """Write `weights.json` and `weights.bin` into `directory`, each whole or not at all."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = bytearray()
    entries = []
    for name in sorted(fp.tensors):
        tp = fp.tensors[name]
        offsets: dict[str, list[int]] = {}
        for key in sorted(tp.sketches):
            arr = np.ascontiguousarray(tp.sketches[key])
            blob.extend(b"\0" * (-len(blob) % 8))
            offsets[key] = [len(blob), *arr.shape]
            blob.extend(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
        entries.append(_tensor_entry(tp, offsets))
    doc = {
        "format": FORMAT,
        "sampler": {"name": "splitmix64", "units": UNITS, "features": FEATURES, "vector": VECTOR},
        "parameters": fp.parameters,
        "weight_bytes": fp.weight_bytes,
        "components": fp.components,
        "tensors": entries,
        "bin": {"file": BIN_FILE, "bytes": len(blob), "digest": _digest(bytes(blob))},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    json_path, bin_path = directory / JSON_FILE, directory / BIN_FILE
    for path, data in ((bin_path, bytes(blob)), (json_path, text.encode("utf-8"))):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return json_path, bin_path


def _need(cond: bool, file: Path, place: str | None, problem: str) -> None:
    if not cond:
        raise InputError(file, place, problem)


def _shape_ok(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def read_fingerprint(directory: str | Path) -> Fingerprint:
    """Load and validate a fingerprint; any malformed part is an `InputError`."""
    directory = Path(directory)
    json_path = directory / JSON_FILE
    if not json_path.is_file():
        raise InputError(json_path, None, "missing: the reference has no weights fingerprint")
    doc = read_json(json_path)
    _need(isinstance(doc, dict), json_path, None, "expected a json object")
    _need(doc.get("format") == FORMAT, json_path, "field `format`", f"expected `{FORMAT}`")
    sampler = doc.get("sampler")
    _need(
        sampler == {"name": "splitmix64", "units": UNITS, "features": FEATURES, "vector": VECTOR},
        json_path, "field `sampler`", "was made with other sample sizes; fingerprint the reference again",
    )
    bin_info = doc.get("bin")
    _need(isinstance(bin_info, dict) and bin_info.get("file") == BIN_FILE, json_path, "field `bin`", f"expected file `{BIN_FILE}`")
    bin_path = directory / BIN_FILE
    try:
        blob = bin_path.read_bytes()
    except OSError as exc:
        raise InputError(bin_path, None, f"cannot read: {exc.strerror or exc}") from None
    _need(len(blob) == bin_info.get("bytes"), bin_path, None, f"has {len(blob)} bytes, the fingerprint says {bin_info.get('bytes')}")
    _need(_digest(blob) == bin_info.get("digest"), bin_path, None, "content does not match its digest")
    components = doc.get("components")
    _need(isinstance(components, list) and all(isinstance(c, dict) for c in components), json_path, "field `components`", "expected a list of objects")
    for i, comp in enumerate(components):
        _need(
            isinstance(comp.get("name"), str) and isinstance(comp.get("kind"), str)
            and isinstance(comp.get("prefixes"), list) and isinstance(comp.get("tensors"), list),
            json_path, f"components[{i}]", "needs `name`, `kind`, `prefixes` and `tensors`",
        )
    tensors: dict[str, TensorPrint] = {}
    entries = doc.get("tensors")
    _need(isinstance(entries, list), json_path, "field `tensors`", "expected a list")
    for i, e in enumerate(entries):
        place = f"tensors[{i}]"
        _need(isinstance(e, dict) and isinstance(e.get("name"), str), json_path, place, "needs a `name`")
        _need(e.get("dtype") in _NATIVE, json_path, place, f"unknown dtype `{e.get('dtype')}`")
        _need(_shape_ok(e.get("shape")), json_path, place, "`shape` is not a list of sizes")
        digest = e.get("digest")
        _need(isinstance(digest, dict) and isinstance(digest.get("raw"), str) and isinstance(digest.get("canonical"), str),
              json_path, place, "needs `digest.raw` and `digest.canonical`")
        sketches: dict[str, np.ndarray] = {}
        sk = e.get("sketch")
        _need(isinstance(sk, dict), json_path, place, "`sketch` is not an object")
        item = np.dtype(_NATIVE[e["dtype"]])
        for key, spec in sk.items():
            _need(key in ("R", "C", "V") and _shape_ok(spec) and len(spec) >= 2, json_path, f"{place}.sketch.{key}", "malformed sketch")
            offset, dims = spec[0], tuple(spec[1:])
            count = math.prod(dims)
            _need(offset % 8 == 0 and offset + count * item.itemsize <= len(blob), json_path, f"{place}.sketch.{key}", "points outside the binary file")
            sketches[key] = np.frombuffer(blob, dtype=item, count=count, offset=offset).reshape(dims)
        tp = TensorPrint(
            name=e["name"], dtype=e["dtype"], shape=tuple(e["shape"]), raw=digest["raw"],
            canonical=digest["canonical"], rows=digest.get("rows"), cols=digest.get("cols"),
            constant=e.get("constant"), sketches=sketches,
        )
        tensors[tp.name] = tp
    parameters = doc.get("parameters")
    _need(isinstance(parameters, int), json_path, "field `parameters`", "expected an integer")
    return Fingerprint(components=components, tensors=tensors, parameters=parameters,
                       weight_bytes=int(doc.get("weight_bytes") or 0))


def fingerprint_bytes(directory: str | Path) -> int:
    """Bytes a stored fingerprint takes (both files)."""
    directory = Path(directory)
    return sum((directory / f).stat().st_size for f in (JSON_FILE, BIN_FILE))


def component_entries(components: Iterable[Any]) -> list[dict[str, Any]]:
    """JSON-ready component records from `detectors.components.Component` values."""
    return [
        {"name": c.name, "kind": c.kind, "prefixes": list(c.prefixes), "tensors": list(c.tensors)}
        for c in components
    ]
