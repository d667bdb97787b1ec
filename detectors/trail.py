"""The `trail` detector: evidence of pre-training from scratch in `checkpoints/step-<N>/`.

Judges the step-0 commitment and init statistics, continuity, and the link to the release.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator
from typing import Any

import blake3
import numpy as np

from detectors.base import DetectContext, FactDecl, InputError
from detectors.model import CHECKPOINTS_DIR, ModelFolder, open_model, read_json, weights_digest
from detectors.safetensors import DTYPE_SIZES, TensorInfo, to_array
from detectors.step0 import BUFFER_NAMES, RECIPE, check_std, is_norm, regenerates

__all__ = [
    "TrailDetector",
    "weights_digest",
    "centred_similarity",
    "matrix_statistics",
    "MatrixStatistics",
    "Similarity",
    "LINK_THRESHOLD",
    "INIT_FLOOR",
    "COVERAGE",
]

COMMITMENT_FILE = "commitment.json"
_STEP = re.compile(r"^step-(\d+)$")
_DIGEST = re.compile(r"^blake3:[0-9a-f]{64}$")

# Calibrated on tiny models (see the tests): consecutive checkpoints of one run
# correlate 0.89-0.99 when close, down to ~0.3 when hundreds of fast steps apart; a run's
# final weights with its own step 0 ~0.5-0.75; independent seeds 0.00 +- 0.01. A link
# and the dependence on the init must each clear a floor well above the null yet below
# the weakest honest value.
LINK_THRESHOLD = 0.1
INIT_FLOOR = 0.1
# Similarities must also stand Z_NULL standard errors (1/sqrt(n)) above the null.
Z_NULL = 6.0
# Share of 2-D parameters two models must have in common to be compared at all.
COVERAGE = 0.9
# Distance from step 0 may dip this much between checkpoints (noise), no more.
DRIFT_SLACK = 0.05

_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"})
_CHUNK_ELEMENTS = 1 << 22

# Matrices smaller than this carry too little to judge their distribution.
_MIN_ELEMENTS = 1024
_MIN_DIM = 8
_SPECTRAL_BLOCK = 512
# Excess kurtosis of a uniform distribution: the flattest common initialiser.
_UNIFORM_KURTOSIS = -1.2
# Slack on init std: truncated normals (±3σ) and low-precision storage shift it ~1-2%.
_STD_SLACK = 0.03


def _facts() -> tuple[FactDecl, ...]:
    rows = (
        ("trail.present", "boolean", "a checkpoint trail exists"),
        ("trail.checkpoints", "integer", "number of checkpoints"),
        ("trail.committed", "boolean", "`checkpoints/commitment.json` exists"),
        ("trail.commitment_matches", "boolean", "step-0 weights match the committed digest"),
        (
            "trail.step0_regenerated",
            "boolean",
            "step 0 is exactly what the committed seed generates under the `originality/1` recipe",
        ),
        ("trail.initial_random", "boolean", "step 0 has random-initialisation statistics"),
        ("trail.initial_kurtosis", "number", "mean excess kurtosis of step-0 matrices"),
        ("trail.continuous", "boolean", "each checkpoint continues the one before"),
        (
            "trail.min_link_similarity",
            "number",
            "weakest centred similarity between consecutive checkpoints",
        ),
        (
            "trail.ends_at_release",
            "boolean",
            "the released model equals or continues the last checkpoint",
        ),
        ("trail.init_similarity", "number", "centred similarity of the released model to step 0"),
        (
            "trail.depends_on_init",
            "boolean",
            "the released model depends on its own step 0"
            " (significantly above the null of a foreign seed)",
        ),
    )
    return tuple(FactDecl(path, type_, doc) for path, type_, doc in rows)


# --- digests -----------------------------------------------------------------------


# --- streaming statistics ----------------------------------------------------------


def _is_matrix(info: TensorInfo) -> bool:
    lowered = info.name.lower()
    return (
        len(info.shape) == 2
        and info.dtype in _FLOAT_DTYPES
        and info.numel > 0
        and not any(word in lowered for word in BUFFER_NAMES)
    )


def _row_chunks(
    model: ModelFolder, info: TensorInfo, rows: int | None = None, nonfinite: list[int] | None = None
) -> Iterator[np.ndarray]:
    """A 2-D tensor as float64 blocks of whole rows, decoded a block at a time. NaN and
    ±inf read as 0, so that a few of them cannot turn a statistic into NaN; with
    `nonfinite`, their count is added to its one item."""
    m, n = info.shape
    step = rows or max(1, _CHUNK_ELEMENTS // max(n, 1))
    row_bytes = n * DTYPE_SIZES[info.dtype]
    raw = model.raw(info.name)
    for first in range(0, m, step):
        count = min(step, m - first)
        part = raw[first * row_bytes : (first + count) * row_bytes]
        block = TensorInfo(info.name, info.dtype, (count, n), info.file, 0, len(part))
        values = to_array(block, part).astype(np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            if nonfinite is not None:
                nonfinite[0] += int(values.size - np.count_nonzero(finite))
            values[~finite] = 0.0
        yield values


@dataclass
class _PairMoments:
    """Running centred moments of two aligned streams (Chan et al. pairwise merge)."""

    n: int = 0
    mean_a: float = 0.0
    mean_b: float = 0.0
    m2a: float = 0.0
    m2b: float = 0.0
    cab: float = 0.0
    sq_diff: float = 0.0  # sum (a - b)^2, for drift
    sq_b: float = 0.0  # sum b^2

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        k = a.size
        if k == 0:
            return
        ma, mb = float(a.mean()), float(b.mean())
        da, db = a - ma, b - mb
        m2a, m2b, cab = float(da @ da), float(db @ db), float(da @ db)
        total = self.n + k
        delta_a, delta_b = ma - self.mean_a, mb - self.mean_b
        weight = self.n * k / total
        self.m2a += m2a + delta_a * delta_a * weight
        self.m2b += m2b + delta_b * delta_b * weight
        self.cab += cab + delta_a * delta_b * weight
        self.mean_a += delta_a * k / total
        self.mean_b += delta_b * k / total
        self.n = total
        diff = a - b
        self.sq_diff += float(diff @ diff)
        self.sq_b += float(b @ b)

    def correlation(self) -> float | None:
        if self.n < 2 or self.m2a <= 0 or self.m2b <= 0:
            return None
        return self.cab / math.sqrt(self.m2a * self.m2b)


@dataclass(frozen=True)
class Similarity:
    """Centred similarity of two models over their common matrices."""

    value: float | None  # Pearson correlation; None when nothing is comparable
    elements: int  # parameters compared
    coverage: float  # compared / 2-D float parameters of the larger side
    drift: float | None  # ||a - b|| / ||b||

    @property
    def standard_error(self) -> float:
        return 1.0 / math.sqrt(self.elements) if self.elements else math.inf


def _matrices(model: ModelFolder) -> dict[str, TensorInfo]:
    return {name: info for name, info in model.tensors.items() if _is_matrix(info)}


def centred_similarity(a: ModelFolder, b: ModelFolder, *, roll_b: bool = False) -> Similarity:
    """Pearson correlation of the concatenated same-named, same-shaped 2-D float tensors.

    1-D tensors (norm gains, biases) are left out: their raw values say nothing about
    descent. With `roll_b`, each row of b's matrices is rolled by half its length: for an
    i.i.d. init that is a foreign seed's init, so the result is the comparison's null.
    """
    ma, mb = _matrices(a), _matrices(b)
    common = [name for name in ma if name in mb and ma[name].shape == mb[name].shape]
    moments = _PairMoments()
    for name in common:
        shift = ma[name].shape[1] // 2 + 1 if roll_b else 0
        for x, y in zip(_row_chunks(a, ma[name]), _row_chunks(b, mb[name])):
            if shift:
                y = np.roll(y, shift, axis=1)
            moments.add(x.reshape(-1), y.reshape(-1))
    larger = max(sum(i.numel for i in ma.values()), sum(i.numel for i in mb.values()))
    drift = math.sqrt(moments.sq_diff / moments.sq_b) if moments.sq_b > 0 else None
    return Similarity(
        value=moments.correlation(),
        elements=moments.n,
        coverage=moments.n / larger if larger else 0.0,
        drift=drift,
    )


@dataclass(frozen=True)
class MatrixStatistics:
    """What a freshly initialised matrix looks like: i.i.d. zero-mean entries."""

    name: str
    elements: int
    columns: int
    mean: float
    std: float
    excess_kurtosis: float
    row_dispersion: float  # spread of row energies / the spread i.i.d. entries give (~1)
    column_dispersion: float
    spectral_ratio: float  # top singular value / the Marchenko-Pastur edge (<~1)
    spectral_limit: float  # the ratio an i.i.d. matrix of this size stays under
    nonfinite: int = 0  # NaN or infinite entries (read as 0 above): no initialiser makes them

    def problems(self, init_std: Iterable[float] = ()) -> list[str]:
        """Why the matrix does not look freshly initialised (empty when it does)."""
        n = self.elements
        rows = max(2, n // max(1, self.columns))
        out = [f"{self.nonfinite} NaN or infinite values"] if self.nonfinite else []
        if self.std == 0 and not self.nonfinite:
            return [] if self.mean == 0 else ["constant"]
        kurtosis_se = math.sqrt(24.0 / n)
        if abs(self.mean) > Z_NULL * self.std / math.sqrt(n):
            out.append(f"mean {self.mean:.3g} is not zero")
        if self.excess_kurtosis > 0.1 + Z_NULL * kurtosis_se:
            out.append(f"heavy tails (excess kurtosis {self.excess_kurtosis:.3f})")
        if self.excess_kurtosis < _UNIFORM_KURTOSIS - Z_NULL * kurtosis_se:
            out.append(f"flatter than uniform (excess kurtosis {self.excess_kurtosis:.3f})")
        if self.row_dispersion > 1 + Z_NULL / math.sqrt(2 * rows):
            out.append(f"rows of unequal energy ({self.row_dispersion:.2f})")
        if self.column_dispersion > 1 + Z_NULL / math.sqrt(2 * self.columns):
            out.append(f"columns of unequal energy ({self.column_dispersion:.2f})")
        if self.spectral_ratio > self.spectral_limit:
            out.append(f"spectral outlier ({self.spectral_ratio:.2f} of the random-matrix edge)")
        stds = tuple(init_std)
        if stds:
            tolerance = _STD_SLACK + Z_NULL / math.sqrt(2 * n)
            if not any(abs(self.std / s - 1) <= tolerance for s in stds if s > 0):
                out.append(f"std {self.std:.4g} differs from the declared init std")
        return out


def matrix_statistics(model: ModelFolder, info: TensorInfo) -> MatrixStatistics:
    """Distribution, row/column and spectral statistics of one 2-D tensor, streamed."""
    m, n = info.shape
    count = m * n
    total = 0.0
    nonfinite = [0]
    for block in _row_chunks(model, info, nonfinite=nonfinite):
        total += float(block.sum())
    mean = total / count
    m2 = m4 = 0.0
    row_energy = np.empty(m, dtype=np.float64)
    col_energy = np.zeros(n, dtype=np.float64)
    first = 0
    for block in _row_chunks(model, info):
        centred = block - mean
        squared = centred * centred
        m2 += float(squared.sum())
        m4 += float((squared * squared).sum())
        row_energy[first : first + block.shape[0]] = squared.sum(axis=1)
        col_energy += squared.sum(axis=0)
        first += block.shape[0]
    variance = m2 / count
    if variance <= 0:
        # A constant matrix: zero is a legitimate init (zero-initialised projections).
        return MatrixStatistics(info.name, count, n, mean, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, nonfinite[0])
    kurtosis = (m4 / count) / (variance * variance) - 3.0
    # I.i.d. entries give squared-norm spread sqrt((k + 2) / length); compare to that.
    iid = kurtosis + 2.0
    row_disp = _dispersion(row_energy, n, iid)
    col_disp = _dispersion(col_energy, m, iid)
    # Spectrum of a top-left block: any block of an i.i.d. matrix is i.i.d. too. Few
    # rows of a very wide matrix, so the decoded rows stay small.
    rows = min(m, _SPECTRAL_BLOCK, max(_MIN_DIM, _CHUNK_ELEMENTS // n))
    block = next(_row_chunks(model, info, rows=rows))[:, :_SPECTRAL_BLOCK]
    block = block - block.mean()
    bm, bn = block.shape
    edge_scale = math.sqrt(bm) + math.sqrt(bn)
    edge = block.std() * edge_scale
    ratio = float(np.linalg.norm(block, 2) / edge) if edge > 0 else math.inf
    # Tracy-Widom scale of the largest singular value, relative to the edge.
    tw = (1 / math.sqrt(bm) + 1 / math.sqrt(bn)) ** (1 / 3) / edge_scale ** (2 / 3)
    std = math.sqrt(variance)
    return MatrixStatistics(
        info.name, count, n, mean, std, kurtosis, row_disp, col_disp, ratio, 1.0 + 3.0 * tw, nonfinite[0]
    )


def _dispersion(energy: np.ndarray, length: int, iid: float) -> float:
    if energy.size < 2 or energy.mean() <= 0 or iid <= 0:
        return 1.0
    return float(energy.std() / energy.mean() / math.sqrt(iid / length))


@dataclass(frozen=True)
class InitReport:
    """Step-0 verdict: `random` is None when nothing could be judged."""

    random: bool | None
    kurtosis: float | None
    problems: tuple[str, ...]


def judge_init(model: ModelFolder, init_std: Iterable[float] = ()) -> InitReport:
    """Does this checkpoint look freshly initialised?

    Norm gains must be exactly 1 (or all 0 when stored as 1 + w) and norm biases exactly
    0, as every framework starts them; judged matrices must pass
    `MatrixStatistics.problems`. Other biases are not judged: frameworks start them at
    zero or uniform.
    """
    stds = tuple(init_std)
    problems: list[str] = []
    kurtoses: list[float] = []
    judged = 0
    for name, info in model.tensors.items():
        if info.dtype not in _FLOAT_DTYPES:
            continue
        if len(info.shape) == 1 and is_norm(name):
            last = name.rsplit(".", 1)[-1].lower()
            values = model.array(name)
            if last in ("weight", "gamma", "scale", "g"):
                judged += 1
                # All zeros is the init of gains stored as (1 + w), Gemma-style.
                if not (np.all(values == 1.0) or np.all(values == 0.0)):
                    problems.append(f"`{name}`: norm gain is not 1")
            elif last in ("bias", "beta", "b"):
                judged += 1
                if not np.all(values == 0.0):
                    problems.append(f"`{name}`: norm bias is not 0")
        elif _is_matrix(info) and info.numel >= _MIN_ELEMENTS and min(info.shape) >= _MIN_DIM:
            stats = matrix_statistics(model, info)
            judged += 1
            if stats.std > 0:
                kurtoses.append(stats.excess_kurtosis)
            problems.extend(f"`{name}`: {p}" for p in stats.problems(stds))
    if not judged:
        return InitReport(None, None, ())
    kurtosis = float(np.mean(kurtoses)) if kurtoses else None
    return InitReport(not problems, kurtosis, tuple(problems))


def _declared_init_std(config: dict[str, Any] | None) -> tuple[float, ...]:
    """Init stds a config declares: `initializer_range`, and its GPT-2 residual scaling."""
    if not config:
        return ()
    std = config.get("initializer_range")
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not std > 0:
        return ()
    layers = config.get("num_hidden_layers", config.get("n_layer"))
    if isinstance(layers, int) and not isinstance(layers, bool) and layers > 0:
        return (float(std), float(std) / math.sqrt(2 * layers))
    return (float(std),)


# --- the trail ---------------------------------------------------------------------


@dataclass(frozen=True)
class Commitment:
    seed: int
    init: str
    step0_digest: str
    std: float | None = None  # the recipe's scale, for `originality/1`


def read_commitment(path: Path) -> Commitment:
    """Validate `checkpoints/commitment.json`.

    Its form: `{"seed": int, "init": str, "step0_digest": "blake3:<hex>"}`, and `std`
    (a number above 0) when `init` is the `originality/1` recipe.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(path, None, "commitment is not a json object")
    for key in data:
        if key not in ("seed", "init", "step0_digest", "std"):
            raise InputError(path, f"field `{key}`", "unexpected field")
    for key in ("seed", "init", "step0_digest"):
        if key not in data:
            raise InputError(path, None, f"missing field `{key}`")
    seed, init, digest = data["seed"], data["init"], data["step0_digest"]
    if type(seed) is not int:
        raise InputError(path, "field `seed`", "seed is not an integer")
    if not isinstance(init, str) or not init.strip():
        raise InputError(path, "field `init`", "init is not a non-empty string")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        problem = "step0_digest is not `blake3:` and 64 lower-case hex digits"
        raise InputError(path, "field `step0_digest`", problem)
    std = None
    if "std" in data:
        std = check_std(data["std"], path, "field `std`")
    elif init == RECIPE:
        raise InputError(path, None, f"missing field `std` (the scale of the {RECIPE} recipe)")
    return Commitment(seed, init, digest, std)


def find_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """`checkpoints/step-<N>/` folders sorted by N; two folders naming one step are refused."""
    folder = root / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    real_root = root.resolve()
    steps: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        match = _STEP.match(entry.name)
        if not match:
            if entry.name.lower().startswith("step"):  # meant as a checkpoint: never dropped silently
                raise InputError(entry, None, "a checkpoint folder is named `step-<N>`, N a whole number "
                                 "(e.g. `step-1000`)")
            continue
        if not entry.is_dir():
            raise InputError(entry, None, "a checkpoint is a folder holding the weights, not a file")
        if real_root not in entry.resolve().parents:
            raise InputError(entry, None, "checkpoint links outside the model folder")
        step = int(match.group(1))
        if step in steps:
            raise InputError(entry, None, f"`{steps[step].name}` names the same step {step}")
        steps[step] = entry
    return sorted(steps.items())


def _similar(sim: Similarity, threshold: float, null: float = 0.0) -> bool | None:
    if sim.value is None:
        return None
    if sim.coverage < COVERAGE:
        return False
    return sim.value >= max(threshold, abs(null) + Z_NULL * sim.standard_error)


def _identical(a: ModelFolder, b: ModelFolder) -> bool:
    if list(a.tensors) != list(b.tensors):
        return False
    step = 1 << 26
    for name, info in a.tensors.items():
        other = b.tensors[name]
        if (info.dtype, info.shape) != (other.dtype, other.shape):
            return False
        left, right = a.raw(name), b.raw(name)
        for start in range(0, len(left), step):
            if left[start : start + step].tobytes() != right[start : start + step].tobytes():
                return False
    return True


class TrailDetector:
    """Facts about the training trail; all unknown (null) when there is no trail."""

    name = "trail"
    version = "1.2.0"  # 1.1: trail.step0_regenerated. 1.2: a link clears 0.1 (honest checkpoints far apart fell below 0.3)
    emits = ("trail",)
    facts = _facts()

    def detect(self, model: ModelFolder, context: DetectContext) -> dict[str, Any]:
        facts: dict[str, Any] = {decl.path.split(".", 1)[1]: None for decl in self.facts}
        steps = find_checkpoints(model.root)
        facts["present"] = bool(steps)
        commitment_path = model.root / CHECKPOINTS_DIR / COMMITMENT_FILE
        committed = commitment_path.exists() or commitment_path.is_symlink()
        if committed and model.root.resolve() not in commitment_path.resolve().parents:
            raise InputError(commitment_path, None, "commitment links outside the model folder")
        commitment = read_commitment(commitment_path) if committed else None
        if not steps:  # a commitment is read and reported even with no checkpoint to hold it to
            facts["committed"] = True if committed else None
            return {"trail": facts}
        facts["checkpoints"] = len(steps)
        facts["committed"] = committed

        opened: list[ModelFolder] = []
        try:
            for _step, path in steps:
                opened.append(open_model(path))
            facts.update(self._evaluate(model, steps, opened, commitment))
        finally:
            for checkpoint in opened:
                checkpoint.close()
        return {"trail": facts}

    def _evaluate(
        self,
        release: ModelFolder,
        steps: list[tuple[int, Path]],
        opened: list[ModelFolder],
        commitment: Commitment | None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        step0 = opened[0] if steps[0][0] == 0 else None

        if step0 is not None:
            if commitment is not None:
                out["commitment_matches"] = weights_digest(step0) == commitment.step0_digest
                if commitment.init == RECIPE and commitment.std is not None:
                    out["step0_regenerated"] = regenerates(step0, commitment.seed, commitment.std)
            stds = _declared_init_std(step0.config) or _declared_init_std(release.config)
            report = judge_init(step0, stds)
            out["initial_random"] = report.random
            out["initial_kurtosis"] = _round(report.kurtosis)

        if len(opened) >= 2:
            out.update(_continuity(opened))

        last = opened[-1]
        if release.tensors:
            if _identical(release, last):
                out["ends_at_release"] = True
            else:
                out["ends_at_release"] = _similar(centred_similarity(release, last), LINK_THRESHOLD)
            if step0 is not None:
                own = centred_similarity(release, step0)
                out["init_similarity"] = _round(own.value)
                if own.value is not None:
                    null = centred_similarity(release, step0, roll_b=True).value or 0.0
                    out["depends_on_init"] = _similar(own, INIT_FLOOR, null)
        return out


def _continuity(opened: list[ModelFolder]) -> dict[str, Any]:
    """`continuous` and `min_link_similarity` over consecutive checkpoints."""
    links = [centred_similarity(later, earlier) for earlier, later in zip(opened, opened[1:])]
    values = [link.value for link in links if link.value is not None]
    out: dict[str, Any] = {"min_link_similarity": _round(min(values)) if values else None}
    verdicts = [_similar(link, LINK_THRESHOLD) for link in links]
    if any(v is False for v in verdicts):
        out["continuous"] = False
        return out
    if any(v is None for v in verdicts):
        return out
    # Training moves the weights: a checkpoint equal to the one before is no step.
    if any(not link.drift for link in links):
        out["continuous"] = False
        return out
    # Distance from the first checkpoint grows along a real trail; a shuffled trail
    # keeps similar neighbours but breaks this order.
    drifts = [centred_similarity(later, opened[0]).drift or 0.0 for later in opened[1:]]
    pairs = zip(drifts, drifts[1:])
    ordered = all(later >= earlier * (1 - DRIFT_SLACK) for earlier, later in pairs)
    out["continuous"] = ordered
    return out


def _round(value: float | None) -> float | None:
    # Stable output across platforms' last-bit differences.
    return None if value is None else round(float(value), 6)
