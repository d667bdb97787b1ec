"""Relations between a model's components and reference components, from fingerprints alone.

Reuse from digests and sampled units; derivation from a calibrated unit-matching test per layer.
"""

from __future__ import annotations

import ctypes
import math
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from detectors.components import Component, layer_key, masked_role, role_key
from detectors.fingerprint import (
    FLOAT_DTYPES,
    Fingerprint,
    Gathered,
    TensorPrint,
    canonical_codes,
    cast_tolerance,
    finite_values,
    plan,
)

__all__ = [
    "DERIVED_COMBINED",
    "DERIVED_LAYER",
    "INDEPENDENT_LAYER",
    "IDENTICAL_SHARE",
    "MIN_EVIDENCE",
    "ReferenceComponent",
    "TensorEvidence",
    "LayerEvidence",
    "PairResult",
    "ComponentMatch",
    "reference_components",
    "PairMatcher",
    "decide_component",
    "trace_test",
    "aligned_test",
    "matched_test",
    "prepare_candidate",
    "Prepared",
    "prepare_reference",
    "fisher_log",
    "log_normal_sf",
    "log_chi2_sf_even",
    "single_threaded_blas",
]

# Decision margins (provenance notes): derived when the combined p < 1e-12 or one layer's
# p < 1e-6, after Bonferroni over the reference components compared; independent when
# every layer's p >= 1e-3; inconclusive between.
DERIVED_COMBINED = 1e-12
DERIVED_LAYER = 1e-6
INDEPENDENT_LAYER = 1e-3
# Share of a component's (non-constant) parameters reused as they are for `identical`.
IDENTICAL_SHARE = 0.99
# A digest hit on fewer elements than this is not evidence: tiny tensors coincide by chance.
MIN_EVIDENCE = 16
# Candidates kept per reference unit before the assignment (ties beyond are hopeless).
_TOP = 8
_LOG_DERIVED_COMBINED = math.log(DERIVED_COMBINED)
_LOG_DERIVED_LAYER = math.log(DERIVED_LAYER)
_LOG_INDEPENDENT_LAYER = math.log(INDEPENDENT_LAYER)
# Component kinds whose tensors' rows are tokens, positions or classes.
_INDEXED_ROWS = frozenset({"embeddings", "head"})
# Names of 2-D weights whose input axis is pixels (a patch embedding written as Linear).
_PIXEL_INPUT = re.compile(r"patch", re.IGNORECASE)


# --- statistics ---------------------------------------------------------------------
# The two tails needed are computed here in closed form: importing scipy.stats for them
# would cost a third of a second on every run.


def log_normal_sf(z: float) -> float:
    """log P(Z > z) for a standard normal Z, accurate far into the tail."""
    if z < 20.0:
        return math.log(0.5 * math.erfc(z / math.sqrt(2.0)))
    # Asymptotic series of Mills' ratio; its next term is below 1e-9 here.
    return -0.5 * z * z - math.log(z) - 0.5 * math.log(2.0 * math.pi) + math.log1p(-1 / z**2 + 3 / z**4 - 15 / z**6)


def log_chi2_sf_even(x: float, df: int) -> float:
    """log P(X > x) for X ~ chi-square with an even number of degrees of freedom:
    exp(-x/2) * sum_{j < df/2} (x/2)^j / j!, summed in logs."""
    half = x / 2.0
    if half <= 0.0:
        return 0.0
    logs = [j * math.log(half) - math.lgamma(j + 1) for j in range(df // 2)]
    top = max(logs)
    return min(0.0, -half + top + math.log(sum(math.exp(t - top) for t in logs)))


_BLAS_CALLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def _blas_libraries() -> list[tuple[Any, Any]]:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process."""
    found = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return found
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, put in _BLAS_CALLS:
            if hasattr(lib, get) and hasattr(lib, put):
                found.append((getattr(lib, get), getattr(lib, put)))
                break
    return found


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread: the products here are small (32 units x 64 features x n),
    and waking a thread pool for each costs ten times the product on a busy machine.
    Restores the previous counts; a no-op where OpenBLAS cannot be found."""
    libs = _blas_libraries()
    saved = []
    for get, put in libs:
        saved.append(int(get()))
        put(1)
    try:
        yield
    finally:
        for (_get, put), count in zip(libs, saved):
            put(count)



def _standardize_features(x: np.ndarray) -> np.ndarray:
    """Each feature (column) centred and scaled over units, so a feature-wise scale
    profile shared by unrelated models (token frequency, rotary band) carries no weight.
    float32, as candidates can have 100k units."""
    x = np.array(x, dtype=np.float32)
    if x.shape[0] < 2:
        return x
    x -= x.mean(axis=0)
    sd = np.sqrt(np.einsum("ij,ij->j", x, x) / np.float32(x.shape[0]))
    sd[sd == 0] = 1.0
    x /= sd
    return x


def _unit_normalize(x: np.ndarray) -> np.ndarray:
    """Each unit (row) centred and scaled to length one: dot products are Pearson r."""
    x = x.astype(np.float64) - x.mean(axis=1, keepdims=True, dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    norm[norm == 0] = np.inf
    return x / norm


def trace_test(xn: np.ndarray, yn: np.ndarray) -> tuple[float, float]:
    """(log p, mean r) of paired unit rows (K x q, each centred and of length one) under
    exchangeable features.

    T = sum_i r_i = trace(M) with M = xn' yn. If the candidate's features were
    exchangeable with respect to the reference's (true for independent models: hidden
    units and residual dimensions carry arbitrary labels), T is one draw of
    sum_k M[k, pi(k)] over a uniform permutation pi. Hoeffding's combinatorial CLT gives
    its exact moments and an asymptotically normal tail; with centred rows, M has zero
    row and column sums, so the mean is 0 and the variance ||M||^2 / (q - 1), where
    ||M||^2 = sum((xn xn') * (yn yn')) needs only K x K products. One-sided.
    """
    k, q = xn.shape
    if k == 0 or q < 3:
        return 0.0, 0.0
    t = float(np.einsum("ij,ij->", xn, yn))
    var = float(np.einsum("ij,ij->", xn @ xn.T, yn @ yn.T)) / (q - 1)
    if var <= 0.0:
        return 0.0, t / k
    return log_normal_sf(t / math.sqrt(var)), t / k


def aligned_test(ref: np.ndarray, cand: np.ndarray, standardize: bool = True) -> tuple[float, float]:
    """Same units, same features (the same-name centred correlation, calibrated).
    `cand` is expected already standardised (see `prepare_candidate`)."""
    x = _standardize_features(ref) if standardize else ref
    return trace_test(_unit_normalize(x), _unit_normalize(cand))


def _assign(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one assignment of reference units (rows) to candidate units maximising score.

    Rectangular: works when the candidate has more units (or, pruned, fewer) than sampled.
    When every row's best column is distinct that is the optimum; otherwise the Hungarian
    method runs on each row's best few columns, which keeps 100k-unit axes cheap.
    """
    k, n = score.shape
    best = np.argmax(score, axis=1)
    if np.unique(best).size == k:
        return np.arange(k), best
    top = min(_TOP, n)
    if n > top:
        cols = np.unique(np.argpartition(-score, top - 1, axis=1)[:, :top])
    else:
        cols = np.arange(n)
    from scipy.optimize import linear_sum_assignment  # only when best columns collide

    rows, picked = linear_sum_assignment(-score[:, cols])
    return rows, cols[picked]


@dataclass
class Prepared:
    """A candidate's units on the sampled features, ready for matching.

    `y1`: every unit standardised per feature and unit-normalised on the matching half
    (float32, units x half); other rows are standardised on demand from the native
    slab, so a 150k-unit embedding never holds a second full float copy.
    """

    native: np.ndarray
    dtype: str
    mean: np.ndarray
    scale: np.ndarray
    y1: np.ndarray

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Standardised float32 values of some units on every sampled feature."""
        return (finite_values(self.dtype, self.native[idx]) - self.mean) / self.scale


_PREP_ROWS = 16384


def prepare_candidate(native: np.ndarray, first: np.ndarray, dtype: str = "F32") -> Prepared:
    """Per-feature mean and scale over every unit, and the matching-half unit vectors.
    Two passes over the slab in blocks of rows; computed once per tensor, shared by partners."""
    n, m = native.shape
    total = np.zeros(m, dtype=np.float64)
    squares = np.zeros(m, dtype=np.float64)
    for r0 in range(0, n, _PREP_ROWS):
        x = finite_values(dtype, native[r0 : r0 + _PREP_ROWS])
        total += x.sum(axis=0)
        squares += np.einsum("ij,ij->j", x, x)
    mean = total / max(n, 1)
    var = np.maximum(squares / max(n, 1) - mean * mean, 0.0)
    scale = np.sqrt(var)
    scale[scale == 0] = 1.0
    mean32, scale32 = mean.astype(np.float32), scale.astype(np.float32)
    if n < 2:  # one unit: nothing to standardise against
        mean32, scale32 = np.zeros(m, np.float32), np.ones(m, np.float32)
    y1 = np.empty((n, int(first.sum())), dtype=np.float32)
    for r0 in range(0, n, _PREP_ROWS):
        y = (finite_values(dtype, native[r0 : r0 + _PREP_ROWS][:, first]) - mean32[first]) / scale32[first]
        y -= y.mean(axis=1, keepdims=True)
        norm = np.sqrt(np.einsum("ij,ij->i", y, y))[:, None]
        norm[norm == 0] = np.inf
        y1[r0 : r0 + y.shape[0]] = y / norm
    return Prepared(native=native, dtype=dtype, mean=mean32, scale=scale32, y1=y1)


def prepare_reference(ref: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A reference sketch standardised per feature (float64), and its units
    unit-normalised on the matching half (float32, for the product with candidates)."""
    x = _standardize_features(ref).astype(np.float64)
    return x, _unit_normalize(x[:, first]).astype(np.float32)


def matched_test(
    ref: np.ndarray | tuple[np.ndarray, np.ndarray],
    prepared: Prepared,
    first: np.ndarray,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Hidden units matched on one half of the features, tested on the other half.

    ref: K x m reference units (or its `prepare_reference`); prepared:
    `prepare_candidate` of every candidate unit on the same features; first: mask of the
    half used for matching. The test half never informed the assignment, so
    `trace_test` stays exact under the null whatever the matching did. Signs come from
    the matching half (a unit may be negated). Returns (log p, mean r, reference rows,
    matched candidate rows).
    """
    s2 = ~first
    if first.sum() < 3 or s2.sum() < 3:
        return 0.0, 0.0, np.zeros(0, int), np.zeros(0, int)
    x, x1 = ref if isinstance(ref, tuple) else prepare_reference(ref, first)
    corr = x1 @ prepared.y1.T
    rows, cols = _assign(np.abs(corr))
    sign = np.sign(corr[rows, cols]).astype(np.float64)
    sign[sign == 0] = 1.0
    x2 = _unit_normalize(x[rows][:, s2]) * sign[:, None]
    y2 = _unit_normalize(prepared.rows(cols)[:, s2])
    logp, r = trace_test(x2, y2)
    return logp, r, rows, cols


def fisher_log(log_ps: Iterable[float]) -> float:
    """Fisher's combination of p-values given as logs; returns the log of the combined p."""
    logs = list(log_ps)
    if not logs:
        return 0.0
    if any(lp == -math.inf for lp in logs):
        return -math.inf
    return log_chi2_sf_even(-2.0 * sum(logs), 2 * len(logs))


def _bonferroni(log_p: float, count: int) -> float:
    return min(0.0, log_p + math.log(max(count, 1)))


# --- the reference side ---------------------------------------------------------------


@dataclass
class ReferenceComponent:
    """One component of a catalogued reference, indexed for matching."""

    reference: Any  # detectors.base.Reference (id, origin, organisation, license)
    name: str
    kind: str
    prefixes: tuple[str, ...]
    tensors: dict[str, TensorPrint]
    by_role: dict[str, list[tuple[TensorPrint, tuple[int, ...]]]] = field(default_factory=dict)
    by_digest: dict[str, list[TensorPrint]] = field(default_factory=dict)
    layer_counts: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> tuple[tuple[int, ...], ...]:
        return tuple(sorted(t.shape for t in self.tensors.values() if t.constant is None))


def reference_components(reference: Any, fp: Fingerprint) -> list[ReferenceComponent]:
    """Index each component of a reference fingerprint by role, shape and digest."""
    out = []
    for comp in fp.components:
        names = [n for n in comp["tensors"] if n in fp.tensors]
        rc = ReferenceComponent(
            reference=reference, name=comp["name"], kind=comp["kind"],
            prefixes=tuple(comp["prefixes"]), tensors={n: fp.tensors[n] for n in names},
        )
        seen: dict[str, set[tuple[int, ...]]] = {}
        for n in sorted(names):
            tp = fp.tensors[n]
            masked, idx = masked_role(role_key(n, rc.prefixes))
            rc.by_role.setdefault(masked, []).append((tp, idx))
            seen.setdefault(masked, set()).add(idx)
            for kind, digest in (("raw", tp.raw), ("canonical", tp.canonical), ("rows", tp.rows), ("cols", tp.cols)):
                if digest is not None:
                    rc.by_digest.setdefault(f"{kind}:{digest}", []).append(tp)
        rc.layer_counts = {k: len(v) for k, v in seen.items()}
        out.append(rc)
    return out


# --- per-tensor evidence --------------------------------------------------------------


@dataclass
class TensorEvidence:
    """What one submitted tensor shows against one reference component."""

    name: str
    parameters: int
    constant: bool = False
    # How reuse was established: `digest` (bytes), `cast` (bf16-grid digest), `permuted`
    # (multiset digest of units on the sampled features), `sampled-cast`,
    # `sampled-cast+permuted` (sampled units equal within cast rounding).
    identical: str | None = None
    log_p: float | None = None  # tested: log p of independence (Bonferroni within)
    similarity: float | None = None
    partner: str | None = None


def _compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) != len(b) or not a:
        return False
    if len(a) == 1:
        return a == b
    return a[0] == b[0] or math.prod(a[1:]) == math.prod(b[1:])


def _orientations(name: str, shape: tuple[int, ...]) -> tuple[str, str]:
    """(primary, fallback) orientation of the statistical test.

    The test needs the feature axis to be exchangeable under independence. For a Linear
    weight (out, in) that is the input axis (residual or hidden units): rows are units
    (R). For convolutions and patch embeddings the input axis is pixels, which are not
    exchangeable (unrelated vision models learn alike edge filters), so output channels
    become the features (C).
    """
    if len(shape) >= 3 or _PIXEL_INPUT.search(name):
        return "C", "R"
    return "R", "C"


def _tolerant_units(ref: TensorPrint, key: str, gathered: Gathered, cand_dtype: str) -> str | None:
    """Whether the reference's sampled units reappear in the candidate within cast rounding:
    `sampled-cast` at the same positions, `sampled-cast+permuted` at other unit positions."""
    x = finite_values(ref.dtype, ref.sketches[key])
    units, _feats, first = plan(ref.shape)[key]
    tol = cast_tolerance(ref.dtype, cand_dtype, x)
    if np.all(np.abs(gathered.values(key, units) - x) <= tol):
        return "sampled-cast"
    if first.sum() < 3:
        return None
    prepared = _prepared(gathered, key, first)
    x1 = _reference_prepared(ref, key, first)[1]
    best = np.argmax(x1 @ prepared.y1.T, axis=1)
    if np.all(np.abs(gathered.values(key, best) - x) <= tol):
        return "sampled-cast+permuted"
    return None


def _prepared(gathered: Gathered, key: str, first: np.ndarray) -> Prepared:
    got = gathered.cache.get(key)
    if got is None:
        got = gathered.cache[key] = prepare_candidate(gathered.slabs[key], first, gathered.dtype)
    return got


def _reference_prepared(ref: TensorPrint, key: str, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    got = ref.cache.get(key)
    if got is None:
        got = ref.cache[key] = prepare_reference(finite_values(ref.dtype, ref.sketches[key]), first)
    return got


def _same_codes(a: TensorPrint, b: TensorPrint, key: str) -> bool:
    """Whether two prints' sketches hold the same values, on the bf16 grid."""
    if key not in a.sketches or key not in b.sketches or a.sketches[key].shape != b.sketches[key].shape:
        return False
    return bool(np.array_equal(canonical_codes(a.dtype, a.sketches[key]), canonical_codes(b.dtype, b.sketches[key])))


class PairMatcher:
    """One submitted component against one reference component, fed tensor by tensor."""

    def __init__(self, component: Component, shapes: Mapping[str, tuple[int, ...]], ref: ReferenceComponent) -> None:
        self.component = component
        self.ref = ref
        self.shapes = shapes
        # Rows that are tokens, positions or classes (an embedding, a head): their order
        # is not exchangeable between unrelated models (both learn the token frequencies),
        # so they are never the features of a test, nor is a vector over them.
        self.indexed_rows = component.kind in _INDEXED_ROWS
        self.evidence: dict[str, TensorEvidence] = {}
        self.partners: dict[str, list[TensorPrint]] = {}
        # Reference matrices of the same role stored the other way round: tested on the
        # submitted tensor's rows at the reference's feature columns (slab `RT`).
        self.transposed: dict[str, list[TensorPrint]] = {}
        own_counts: dict[str, set[tuple[int, ...]]] = {}
        roles = {}
        for name in component.tensors:
            masked, idx = masked_role(role_key(name, component.prefixes))
            roles[name] = (masked, idx)
            own_counts.setdefault(masked, set()).add(idx)
        for name, (masked, idx) in roles.items():
            shape = shapes[name]
            found = [(tp, i) for tp, i in ref.by_role.get(masked, []) if _compatible(tp.shape, shape)]
            if found:
                same = [tp for tp, i in found if i == idx]
                # Same depth: layer i answers to layer i. Otherwise (layers dropped or
                # added) every layer of the role is a candidate, paid for by Bonferroni.
                if same and len(own_counts[masked]) == ref.layer_counts.get(masked):
                    partners = same
                else:
                    partners = [tp for tp, _ in found]
            elif component.kind == ref.kind:
                # Renamed inside a component of the same kind (Meta vs Hugging Face names):
                # every tensor of the same shape at the same layer index is a partner.
                partners = [
                    tp for lst in ref.by_role.values() for tp, i in lst
                    if tp.shape == shape and i == idx
                ]
            else:
                partners = []
            self.partners[name] = [tp for tp in partners if tp.constant is None]
            if not partners and len(shape) == 2:
                flipped = [tp for tp, i in ref.by_role.get(masked, [])
                           if tuple(tp.shape) == (shape[1], shape[0]) and tp.constant is None]
                if flipped:
                    self.transposed[name] = flipped

    def add(self, tp: TensorPrint, gathered: Gathered | None) -> TensorEvidence:
        """Evidence of one submitted tensor (its print and sampled slices) against the reference."""
        ev = TensorEvidence(name=tp.name, parameters=tp.numel)
        self.evidence[tp.name] = ev
        if tp.constant is not None:
            ev.constant = True
            return ev
        hits = self._digest_hits(tp)
        if any(h.constant is not None for _, h in hits):
            ev.constant = True  # equal to a reference tensor that is itself deterministic
            return ev
        if hits and tp.numel >= MIN_EVIDENCE:
            ev.identical, partner = hits[0]
            ev.partner = partner.name
            ev.similarity = 1.0
            ev.log_p = -math.inf
            return ev
        partners = self.partners.get(tp.name, []) or self.transposed.get(tp.name, [])
        if not partners or gathered is None or tp.dtype not in FLOAT_DTYPES:
            return ev
        try:
            if tp.name in self.transposed:
                self._compare_transposed(tp, gathered, partners, ev)
            else:
                self._compare(tp, gathered, partners, ev)
        finally:
            # Prepared reference sketches are kept only while one tensor is compared:
            # a catalogue of many models would otherwise hold them all at once.
            for partner in partners:
                partner.cache.clear()
        return ev

    def _compare(self, tp: TensorPrint, gathered: Gathered, partners: list[TensorPrint], ev: TensorEvidence) -> None:
        if tp.numel >= MIN_EVIDENCE:
            for partner in partners:
                how = self._tolerant(tp, gathered, partner)
                if how:
                    ev.identical, ev.partner, ev.similarity, ev.log_p = how, partner.name, 1.0, -math.inf
                    return
        best: tuple[float, float, str] | None = None
        for partner in partners:
            log_p, sim = self._test(tp, gathered, partner, self.indexed_rows)
            if best is None or log_p < best[0]:
                best = (log_p, sim, partner.name)
        if best is not None:
            ev.log_p = _bonferroni(best[0], len(partners))
            ev.similarity = best[1]
            ev.partner = best[2]

    @staticmethod
    def _compare_transposed(tp: TensorPrint, gathered: Gathered, partners: list[TensorPrint],
                            ev: TensorEvidence) -> None:
        """Against reference matrices stored the other way round: the reference's units
        (rows) are the submitted tensor's columns, on the reference's feature block."""
        if "RT" not in gathered.slabs:
            return
        best: tuple[float, float, str] | None = None
        for partner in partners:
            if "R" not in partner.sketches or partner.sketches["R"].shape[0] < 3:
                continue
            log_p, sim = _settle(*_unit_tests(partner, "R", gathered, "RT", in_place=True))
            if best is None or log_p < best[0]:
                best = (log_p, sim, partner.name)
        if best is not None:
            ev.log_p = _bonferroni(best[0], len(partners))
            ev.similarity, ev.partner = best[1], best[2]

    def _digest_hits(self, tp: TensorPrint) -> list[tuple[str, TensorPrint]]:
        hits: list[tuple[str, TensorPrint]] = []
        for kind, how, digest in (
            ("raw", "digest", tp.raw),
            ("canonical", "cast", tp.canonical),
            ("rows", "permuted", tp.rows),
            ("cols", "permuted", tp.cols),
        ):
            if digest is None:
                continue
            for other in self.ref.by_digest.get(f"{kind}:{digest}", []):
                if other.shape != tp.shape:
                    continue
                key = "R" if kind == "rows" else "C"
                if how == "permuted" and _same_codes(tp, other, key):
                    # The units on the sampled features sit where they were, yet the bytes
                    # differ: modified in place outside the sample, not a permuted copy.
                    continue
                hits.append((how, other))
            if hits:
                break
        return hits

    @staticmethod
    def _tolerant(tp: TensorPrint, gathered: Gathered, partner: TensorPrint) -> str | None:
        # Same dtype: a copy is bit-equal and the digests above would have found it.
        if partner.shape != tp.shape or partner.dtype == tp.dtype:
            return None
        for key in ("V",) if len(tp.shape) == 1 else ("R", "C"):
            if key not in partner.sketches or key not in gathered.slabs:
                continue
            if key == "V":
                x = finite_values(partner.dtype, partner.sketches["V"])
                if np.all(np.abs(gathered.values("V") - x) <= cast_tolerance(partner.dtype, tp.dtype, x)):
                    return "sampled-cast"
                continue
            how = _tolerant_units(partner, key, gathered, tp.dtype)
            if how:
                return how
        return None

    @staticmethod
    def _test(tp: TensorPrint, gathered: Gathered, partner: TensorPrint,
              indexed_rows: bool = False) -> tuple[float, float]:
        """(log p, similarity) of one tensor against one partner, Bonferroni over the tests run.
        With `indexed_rows`, a vector and a test whose features are the rows are not run."""
        results: list[tuple[float, float]] = []
        planned = 1
        if len(tp.shape) == 1:
            if "V" in partner.sketches and "V" in gathered.slabs and partner.shape == tp.shape and not indexed_rows:
                x = finite_values(partner.dtype, partner.sketches["V"])[None, :]
                results.append(aligned_test(x.astype(np.float64), gathered.values("V")[None, :], standardize=False))
        else:
            primary, fallback = _orientations(tp.name, tp.shape)
            r, c = tp.shape[0], math.prod(tp.shape[1:])
            pr, pc = partner.shape[0], math.prod(partner.shape[1:])
            usable = {"R": c == pc, "C": r == pr and not indexed_rows}
            key = primary if usable[primary] else fallback if usable[fallback] else None
            if key is not None and key in partner.sketches and key in gathered.slabs \
                    and partner.sketches[key].shape[0] >= 3:
                results, planned = _unit_tests(partner, key, gathered, key, in_place=(r, c) == (pr, pc))
        return _settle(results, planned)

    def result(self) -> PairResult:
        return _pair_result(self)


def _unit_tests(partner: TensorPrint, key: str, gathered: Gathered, slab: str,
                in_place: bool) -> tuple[list[tuple[float, float]], int]:
    """The partner's sampled units (orientation `key`) against the submitted slab `slab`:
    where they stand (when the shapes allow), then wherever they moved. Returns the
    (log p, similarity) of the tests run and the number of tests planned."""
    units, _feats, first = plan(partner.shape)[key]
    ref_prep = _reference_prepared(partner, key, first)
    prepared = _prepared(gathered, slab, first)
    results: list[tuple[float, float]] = []
    if in_place:
        results.append(trace_test(_unit_normalize(ref_prep[0]), _unit_normalize(prepared.rows(units))))
    # A same-position tie already beyond doubt needs no search for moved units (the
    # Bonferroni count still includes the test skipped).
    if not results or results[0][0] >= _LOG_DERIVED_COMBINED:
        lp, sim, _, _ = matched_test(ref_prep, prepared, first)
        results.append((lp, sim))
    return results, 2 if in_place else 1


def _settle(results: list[tuple[float, float]], planned: int) -> tuple[float, float]:
    """(log p, similarity) of the strongest test, Bonferroni over the tests planned."""
    if not results:
        return 0.0, 0.0
    log_p, sim = min(results, key=lambda ls: ls[0])
    if log_p > _LOG_INDEPENDENT_LAYER:
        # Nothing significant: report the plain same-position similarity if there is one.
        sim = results[0][1]
    return _bonferroni(log_p, max(planned, len(results))), min(1.0, max(0.0, sim))


# --- per-layer and per-component decisions ----------------------------------------------


@dataclass
class LayerEvidence:
    name: str
    log_p: float | None
    similarity: float | None
    identical_fraction: float


@dataclass
class PairResult:
    """A submitted component against one reference component, before multiplicity."""

    ref: ReferenceComponent
    comparable: bool
    identical_fraction: float
    similarity: float
    log_p: float | None  # Fisher-combined over layers, uncorrected
    layers: list[LayerEvidence]
    same_architecture: bool
    holds_architecture: bool  # has (at least) every tensor shape of the reference component
    identical_methods: tuple[str, ...]


def _natural(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _pair_result(m: PairMatcher) -> PairResult:
    live = [e for e in m.evidence.values() if not e.constant]
    total = sum(e.parameters for e in live)
    same_ident = sum(e.parameters for e in live if e.identical)
    groups: dict[str, list[TensorEvidence]] = {}
    for e in live:
        groups.setdefault(layer_key(e.name), []).append(e)
    layers = []
    for name in sorted(groups, key=_natural):
        evs = groups[name]
        params = sum(e.parameters for e in evs)
        tested = [e for e in evs if e.log_p is not None]
        log_p = _bonferroni(min(e.log_p for e in tested), len(tested)) if tested else None  # type: ignore[type-var]
        scored = [e for e in evs if e.similarity is not None]
        sim = (
            sum(e.similarity * e.parameters for e in scored) / sum(e.parameters for e in scored)  # type: ignore[operator]
            if scored else None
        )
        ident = sum(e.parameters for e in evs if e.identical) / params if params else 0.0
        layers.append(LayerEvidence(name=name, log_p=log_p, similarity=sim, identical_fraction=ident))
    tested_layers = [layer.log_p for layer in layers if layer.log_p is not None]
    similarity = sum((e.similarity or 0.0) * e.parameters for e in live) / total if total else 0.0
    own_arch = tuple(sorted(m.shapes[e.name] for e in live))
    own_counts, ref_counts = Counter(own_arch), Counter(m.ref.architecture)
    return PairResult(
        ref=m.ref,
        # Comparable only if something was actually measured: a test or a reuse hit.
        comparable=any(e.log_p is not None or e.identical for e in live),
        identical_fraction=same_ident / total if total else 0.0,
        similarity=similarity,
        log_p=fisher_log(tested_layers) if tested_layers else None,  # type: ignore[arg-type]
        layers=layers,
        same_architecture=bool(live) and own_arch == m.ref.architecture,
        holds_architecture=bool(ref_counts) and all(own_counts[s] >= k for s, k in ref_counts.items()),
        identical_methods=tuple(sorted({e.identical for e in live if e.identical})),
    )


@dataclass
class ComponentMatch:
    """The decision for one submitted component against the whole catalogue."""

    relation: str
    pair: PairResult | None
    p_value: float | None
    method: str | None
    reinitialized: bool | None


_RANK = {"identical": 0, "derived": 1, "unknown": 2, "independent": 3}


def _relation(pair: PairResult, multiplicity: int) -> tuple[str, str]:
    if pair.identical_fraction >= IDENTICAL_SHARE:
        exact = set(pair.identical_methods) <= {"digest", "cast"}
        return "identical", "digest" if exact else "digest+units"
    logs = [layer.log_p for layer in pair.layers if layer.log_p is not None]
    if not logs or pair.log_p is None:
        return "unknown", "permutation-test"
    corrected = _bonferroni(pair.log_p, multiplicity)
    if pair.identical_fraction > 0 and any(lp == -math.inf for lp in logs):
        return "derived", "digest"
    if corrected < _LOG_DERIVED_COMBINED or min(_bonferroni(lp, multiplicity) for lp in logs) < _LOG_DERIVED_LAYER:
        return "derived", "permutation-test"
    if all(lp >= _LOG_INDEPENDENT_LAYER for lp in logs):
        return "independent", "permutation-test"
    return "unknown", "permutation-test"


def decide_component(pairs: list[PairResult], catalogue_size: int) -> ComponentMatch:
    """Relation of a component to the catalogue: the nearest comparable reference component.

    Bonferroni runs over the reference components actually compared. With an empty
    catalogue the relation is unknown. When nothing could be compared: a component with
    every tensor shape of a reference component could hold its weights under other names,
    so the relation is unknown (`unpaired-names`); otherwise it cannot hold any
    reference's weights: independent, by `architecture`.
    """
    if catalogue_size == 0:
        return ComponentMatch("unknown", None, None, None, None)
    comparable = [p for p in pairs if p.comparable]
    if not comparable:
        if any(p.holds_architecture for p in pairs):
            return ComponentMatch("unknown", None, None, "unpaired-names", None)
        return ComponentMatch("independent", None, None, "architecture", False)
    multiplicity = len(comparable)
    decided = []
    for pair in comparable:
        relation, method = _relation(pair, multiplicity)
        p = None if pair.log_p is None else math.exp(_bonferroni(pair.log_p, multiplicity))
        if relation == "identical":
            p = 0.0
        decided.append((relation, method, p, pair))
    # Nearest: the strongest relation, then most reuse, then (for independent ones) a
    # reference of the same architecture, then the smallest p and the largest similarity.
    decided.sort(
        key=lambda d: (
            _RANK[d[0]],
            -d[3].identical_fraction,
            not d[3].same_architecture,
            d[2] if d[2] is not None else 2.0,
            -d[3].similarity,
            d[3].ref.reference.id,
            d[3].ref.name,
        )
    )
    relation, method, p, pair = decided[0]
    reinit = relation == "independent" and any(d[3].same_architecture for d in decided)
    if relation in ("identical", "derived"):
        reinit = False
    return ComponentMatch(relation, pair, p, method, reinit if relation != "unknown" else None)
