"""The `weights` detector: components, reuse and derivation against the reference catalogue.

One streaming pass over the tensors fingerprints the model and matches it as it goes.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from detectors.base import COMPONENT_KINDS, RELATIONS, DetectContext, FactDecl
from detectors.components import Component, group_components
from detectors.fingerprint import (
    Fingerprint,
    TensorPrint,
    component_entries,
    fingerprint_tensor,
    read_fingerprint,
    transposed_slab,
    write_fingerprint,
)
from detectors.matching import (
    ComponentMatch,
    PairMatcher,
    decide_component,
    reference_components,
    single_threaded_blas,
)
from detectors.safetensors import MappedFiles

__all__ = ["WeightsDetector", "round_sig"]


def round_sig(x: float | None, digits: int = 6) -> float | None:
    """A float rounded to `digits` significant digits, so output bytes are stable."""
    if x is None:
        return None
    if x == 0 or not math.isfinite(x):
        return 0.0 if x == 0 or math.isnan(x) else x
    return float(f"{x:.{digits}g}")


def _declared_prefixes(model: Any, context: DetectContext) -> dict[str, str]:
    """Component prefixes the manifest declares ({name: prefix}); empty without one."""
    from detectors.manifest import find_manifest, load_manifest

    path = find_manifest(Path(model.root), context.manifest)
    if path is None:
        return {}
    manifest = load_manifest(path)
    return {c.name: c.prefix for c in manifest.components or () if c.prefix}


@contextmanager
def _reading(model: Any) -> Iterator[Iterator[tuple[Any, memoryview, Callable[[int, int], None]]]]:
    """Every tensor with its bytes and a page-release callback, in the model's file order.

    The consumer releases each view (`_done_with`) once it has read it; the files stay
    mapped until the `with` block ends, so a worker may still be reading the last one.
    """
    # Maps of their own, whose pages are dropped once a block is done: a mapped page the
    # process has touched counts toward its resident memory until then, so dropping each
    # block keeps the detector's memory flat whatever the model's size.
    maps = MappedFiles()
    try:
        yield ((info, maps.raw(info), functools.partial(maps.drop, info)) for info in model.file_order)
    finally:
        maps.close()


def _done_with(raw: memoryview) -> None:
    try:
        raw.release()
    except BufferError:
        pass  # something still holds a view; the map goes when that does


def _restricted(names: Any, components: Mapping[str, str] | None) -> list[str]:
    if not components:
        return sorted(names)
    prefixes = tuple(components.values())
    return sorted(n for n in names if n.startswith(prefixes))


class WeightsDetector:
    """Groups tensors into components and relates each to the reference catalogue."""

    name = "weights"
    version = "1.2.0"  # 1.1: non-finite weights read as 0; unpaired names give unknown. 1.2: token rows never exchangeable
    emits = ("components", "model")
    facts = (
        FactDecl("model.parameters", "integer", "parameters across all safetensors files"),
        FactDecl("model.weight_files", "list[string]", "safetensors files, relative to the folder"),
        FactDecl("model.pickle_files", "list[string]", "pickle-format files (`.bin .pt .pth .pkl .ckpt`), never opened"),
        FactDecl("components[]", "list[object]", "the model's components"),
        FactDecl("components[].name", "string", "component name (`language_model`, `vision_encoder`, …, or the manifest's)"),
        FactDecl("components[].kind", "enum", "kind of component", COMPONENT_KINDS),
        FactDecl("components[].prefixes", "list[string]", "tensor-name prefixes that make up the component"),
        FactDecl("components[].parameters", "integer", "parameters in the component"),
        FactDecl("components[].tensors", "integer", "tensors in the component"),
        FactDecl(
            "components[].constant_tensors", "integer",
            "deterministic buffers recognised and discounted (rotary `inv_freq`, DFT bases, position ids, masks)",
        ),
        FactDecl("components[].reinitialized", "boolean", "has a reference's architecture but independent weights"),
        FactDecl("components[].match.reference", "string", "nearest reference id (null when the catalogue is empty)"),
        FactDecl("components[].match.origin", "string", "that reference's origin (ISO 3166 alpha-2 country code)"),
        FactDecl("components[].match.organisation", "string", "that reference's organisation"),
        FactDecl("components[].match.license", "string", "that reference's licence"),
        FactDecl("components[].match.relation", "enum", "relation to the nearest reference", RELATIONS),
        FactDecl("components[].match.similarity", "number", "centred similarity to the reference in [0, 1]"),
        FactDecl(
            "components[].match.identical_fraction", "number",
            "share of parameters bit-identical or equal after a dtype cast / permutation",
        ),
        FactDecl(
            "components[].match.p_value", "number",
            "combined p-value of \"independent\" (small = derived), corrected for multiplicity",
        ),
        FactDecl("components[].match.method", "string", "how the relation was decided (`digest`, `permutation-test`, …)"),
        FactDecl("components[].match.layers[]", "list[object]", "per-layer evidence"),
        FactDecl("components[].match.layers[].name", "string", "layer (tensor-name prefix)"),
        FactDecl("components[].match.layers[].similarity", "number", "centred similarity of the layer"),
        FactDecl("components[].match.layers[].p_value", "number", "the layer's p-value"),
        FactDecl(
            "components[].match.layers[].identical_fraction", "number",
            "share of the layer's parameters reused as they are",
        ),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        components = group_components(model.tensors, _declared_prefixes(model, context))
        ref_components = [
            rc for ref in context.references for rc in reference_components(ref, read_fingerprint(ref.path))
        ]
        shapes = {name: tuple(info.shape) for name, info in model.tensors.items()}
        matchers = {c.name: [PairMatcher(c, shapes, rc) for rc in ref_components] for c in components}
        with single_threaded_blas():
            constants = self._match_stream(model, context, components, matchers)
        facts = [
            self._component_facts(
                c, model, constants[c.name],
                decide_component([m.result() for m in matchers[c.name]], len(context.references)),
            )
            for c in components
        ]
        return {
            "model": {
                "parameters": sum(math.prod(info.shape) for info in model.tensors.values()),
                "weight_files": list(model.weight_files),
                "pickle_files": list(model.pickle_files),
            },
            "components": sorted(facts, key=lambda f: f["name"]),
        }

    @staticmethod
    def _match_stream(
        model: Any, context: DetectContext, components: tuple[Component, ...], matchers: dict[str, list[PairMatcher]]
    ) -> dict[str, int]:
        """One pass: fingerprint each tensor and feed it to its component's matchers.
        Returns the count of deterministic (discounted) tensors per component."""
        owner = {t: c.name for c in components for t in c.tensors}
        constants = {c.name: 0 for c in components}
        total, done = model.total_bytes, 0
        # The model hashes every tensor's bytes on its own thread (started already by the
        # pipeline, or here); this pass only samples them, and takes each digest when done.
        model.digest_in_background()

        def read(item: tuple[Any, memoryview, Any]) -> tuple[Any, Any, Any]:
            info, raw, release = item
            mine = matchers[owner[info.name]]
            flipped = any(m.transposed.get(info.name) for m in mine)
            wanted = flipped or any(m.partners.get(info.name) for m in mine)
            try:
                tp, gathered = fingerprint_tensor(
                    info.name, info.dtype, info.shape, raw, gather=wanted, release=release,
                    raw_digest=lambda: model.tensor_digest(info.name),
                )
                if flipped and gathered is not None:
                    gathered.slabs["RT"] = transposed_slab(info.dtype, info.shape, raw)
            finally:
                _done_with(raw)
            return info, tp, gathered

        def take(done: int, item: tuple[Any, Any, Any]) -> int:
            info, tp, gathered = item
            comp = owner[info.name]
            evidence = [m.add(tp, gathered) for m in matchers[comp]]
            if tp.constant is not None or any(e.constant for e in evidence):
                constants[comp] += 1
            if context.progress is not None:
                context.progress(done + info.nbytes, total)
            return done + info.nbytes

        # Two stages: a worker samples the next tensor while this thread matches the last
        # one (beside the model's digest thread); numpy and hashing release the GIL.
        # The pool is left (and its last job finished) before the files are unmapped.
        with _reading(model) as stream, ThreadPoolExecutor(max_workers=1) as pool:
            ahead = None
            for item in stream:
                current = pool.submit(read, item)
                if ahead is not None:
                    done = take(done, ahead.result())
                ahead = current
            if ahead is not None:
                done = take(done, ahead.result())
        return constants

    @staticmethod
    def _component_facts(c: Component, model: Any, constants: int, decision: ComponentMatch) -> dict[str, Any]:
        pair = decision.pair
        ref = pair.ref.reference if pair is not None else None
        searched = decision.method is not None
        match = {
            "reference": ref.id if ref is not None else None,
            "origin": ref.origin if ref is not None else None,
            "organisation": getattr(ref, "organisation", None) if ref is not None else None,
            "license": getattr(ref, "license", None) if ref is not None else None,
            "relation": decision.relation,
            "similarity": round_sig(pair.similarity) if pair is not None else (0.0 if searched else None),
            "identical_fraction": round_sig(pair.identical_fraction) if pair is not None else (0.0 if searched else None),
            "p_value": round_sig(decision.p_value),
            "method": decision.method,
            "layers": [
                {
                    "name": layer.name,
                    "similarity": round_sig(layer.similarity),
                    "p_value": None if layer.log_p is None else round_sig(math.exp(layer.log_p)),
                    "identical_fraction": round_sig(layer.identical_fraction),
                }
                for layer in (pair.layers if pair is not None else [])
            ],
        }
        return {
            "name": c.name,
            "kind": c.kind,
            "prefixes": list(c.prefixes),
            "parameters": sum(math.prod(model.tensors[t].shape) for t in c.tensors),
            "tensors": len(c.tensors),
            "constant_tensors": constants,
            "reinitialized": decision.reinitialized,
            "match": match,
        }

    def fingerprint(self, model: Any, directory: Path, components: Mapping[str, str] | None = None) -> None:
        """Write `weights.json` and `weights.bin` describing the model (or the components
        named in `components`, {name: prefix}) into a reference's catalogue folder."""
        names = _restricted(model.tensors, components)
        groups = group_components(names, components or None)
        wanted = set(names)
        prints: dict[str, TensorPrint] = {}
        with _reading(model) as stream:
            for info, raw, release in stream:
                if info.name in wanted:
                    prints[info.name] = fingerprint_tensor(info.name, info.dtype, info.shape, raw, release=release)[0]
                _done_with(raw)
        fp = Fingerprint(
            components=component_entries(groups),
            tensors=prints,
            parameters=sum(p.numel for p in prints.values()),
            weight_bytes=sum(model.tensors[n].nbytes for n in names),
        )
        write_fingerprint(directory, fp)
