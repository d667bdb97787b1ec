"""Components of a model: tensor names grouped by the prefixes of common architectures.

Declared prefixes (manifest, catalogue) win; every tensor lands in exactly one component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from detectors.base import COMPONENT_KINDS

__all__ = [
    "Component",
    "PREFIX_RULES",
    "group_components",
    "kind_of",
    "layer_key",
    "role_key",
    "masked_role",
]


@dataclass(frozen=True)
class Component:
    """A named part of a model: its kind, the prefixes that found it, its tensors (sorted)."""

    name: str
    kind: str
    prefixes: tuple[str, ...]
    tensors: tuple[str, ...]

    def role(self, tensor: str) -> str:
        """The tensor's name inside the component: its longest own prefix removed."""
        return role_key(tensor, self.prefixes)


# (prefix pattern, component name, kind). `*` stands for one name segment. The longest
# matched text wins, so `visual.merger.` beats `visual.` and `model.embed_tokens.` beats
# `model.`; ties go to the earlier rule; rules with `*` only where no literal rule fits.
PREFIX_RULES: tuple[tuple[str, str, str], ...] = (
    # LLaMA, Qwen, Mistral, Gemma causal LMs.
    ("model.", "language_model", "language_model"),
    ("model.embed_tokens.", "embeddings", "embeddings"),
    ("lm_head.", "head", "head"),
    # Newer multimodal layouts keep the LM under model.language_model.
    ("model.language_model.", "language_model", "language_model"),
    ("model.language_model.embed_tokens.", "embeddings", "embeddings"),
    # Qwen2-VL / Qwen2.5-VL.
    ("visual.", "vision_encoder", "vision_encoder"),
    ("visual.merger.", "projector", "projector"),
    ("model.visual.", "vision_encoder", "vision_encoder"),
    ("model.visual.merger.", "projector", "projector"),
    # LLaVA and relatives.
    ("vision_tower.", "vision_encoder", "vision_encoder"),
    ("model.vision_tower.", "vision_encoder", "vision_encoder"),
    ("multi_modal_projector.", "projector", "projector"),
    ("model.multi_modal_projector.", "projector", "projector"),
    ("language_model.", "language_model", "language_model"),
    ("language_model.model.embed_tokens.", "embeddings", "embeddings"),
    ("language_model.embed_tokens.", "embeddings", "embeddings"),
    ("language_model.lm_head.", "head", "head"),
    # CLIP / SigLIP style dual towers.
    ("vision_model.", "vision_encoder", "vision_encoder"),
    ("visual_projection.", "projector", "projector"),
    ("text_model.", "language_model", "language_model"),
    ("text_projection.", "projector", "projector"),
    # Audio towers (Qwen2-Audio and others) and Whisper-style encoder-decoders.
    ("audio_tower.", "audio_encoder", "audio_encoder"),
    ("model.audio_tower.", "audio_encoder", "audio_encoder"),
    ("model.encoder.", "audio_encoder", "audio_encoder"),
    ("model.decoder.", "language_model", "language_model"),
    ("model.decoder.embed_tokens.", "embeddings", "embeddings"),
    ("proj_out.", "head", "head"),
    # BERT family, with or without the model's own top-level name.
    ("embeddings.", "embeddings", "embeddings"),
    ("encoder.", "language_model", "language_model"),
    ("pooler.", "head", "head"),
    ("*.embeddings.", "embeddings", "embeddings"),
    ("*.encoder.", "language_model", "language_model"),
    ("*.pooler.", "head", "head"),
    ("cls.", "head", "head"),
    # GPT-2 style.
    ("transformer.", "language_model", "language_model"),
    ("transformer.wte.", "embeddings", "embeddings"),
    ("transformer.wpe.", "embeddings", "embeddings"),
    # Task heads.
    ("classifier.", "head", "head"),
    ("score.", "head", "head"),
)

_COMPILED = tuple(
    (re.compile("^" + r"\.".join("[^.]+" if s == "*" else re.escape(s) for s in p.split("."))), name, kind)
    for p, name, kind in PREFIX_RULES
)
# A text encoder under `model.encoder.` (T5, BART) has token embeddings; Whisper's has convolutions.
_AUDIO_HINT = re.compile(r"(^|\.)conv\d*\.")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.|$)")


def _builtin(name: str) -> tuple[str, str, str] | None:
    """(matched prefix, component name, kind) of the best built-in rule.

    Literal rules come first, longest match winning; a rule with `*` applies only where
    no literal rule does, so `vision_tower.embeddings.` stays in the vision encoder.
    """
    for wildcard in (False, True):
        best: tuple[str, str, str] | None = None
        for (rule, _n, _k), (pattern, comp, kind) in zip(PREFIX_RULES, _COMPILED):
            if ("*" in rule) != wildcard:
                continue
            m = pattern.match(name)
            if m and (best is None or len(m.group(0)) > len(best[0])):
                best = (m.group(0), comp, kind)
        if best is not None:
            return best
    return None


def kind_of(name: str, prefix: str = "") -> str:
    """The kind of a component called `name` covering `prefix`: its name if that is a kind,
    else the kind of the built-in rule the prefix falls under, else `other`."""
    if name in COMPONENT_KINDS:
        return name
    hit = _builtin(prefix) if prefix else None
    return hit[2] if hit else "other"


def _fallback_prefix(name: str) -> str:
    head, dot, _ = name.partition(".")
    return head + dot if dot else name


def group_components(
    names: Iterable[str],
    declared: Mapping[str, str | Sequence[str]] | None = None,
) -> tuple[Component, ...]:
    """Group tensor names into components, sorted by component name.

    `declared` maps component names to a prefix (or several); the longest declared
    prefix covering a tensor wins over every built-in rule. Tensors no rule covers go
    to `other` under their first name segment. Components with no tensor are dropped.
    """
    declared_prefixes: list[tuple[str, str]] = []
    for comp, prefixes in sorted((declared or {}).items()):
        for prefix in [prefixes] if isinstance(prefixes, str) else list(prefixes):
            declared_prefixes.append((prefix, comp))
    # Longest first so the first hit is the winner; ties broken by name for determinism.
    declared_prefixes.sort(key=lambda pc: (-len(pc[0]), pc[0], pc[1]))

    members: dict[str, list[str]] = {}
    used: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    encoder_tensors: list[str] = []
    for tensor in sorted(set(names)):
        hit = next(((p, c) for p, c in declared_prefixes if tensor.startswith(p)), None)
        if hit is not None:
            prefix, comp = hit
            kinds.setdefault(comp, kind_of(comp, prefix))
        else:
            rule = _builtin(tensor)
            if rule is None:
                prefix, comp = _fallback_prefix(tensor), "other"
                kinds.setdefault(comp, "other")
            else:
                prefix, comp, kind = rule
                if prefix == "model.encoder.":
                    encoder_tensors.append(tensor)
                kinds.setdefault(comp, kind)
        members.setdefault(comp, []).append(tensor)
        used.setdefault(comp, set()).add(prefix)

    if encoder_tensors and not any(_AUDIO_HINT.search(t) for t in encoder_tensors):
        # A text encoder (T5, BART): its own group, so it neither poses as audio nor merges.
        moved = set(encoder_tensors)
        members["audio_encoder"] = [t for t in members["audio_encoder"] if t not in moved]
        used["audio_encoder"].discard("model.encoder.")
        members.setdefault("encoder", []).extend(encoder_tensors)
        used.setdefault("encoder", set()).add("model.encoder.")
        kinds.setdefault("encoder", "language_model")
    return tuple(
        Component(name=comp, kind=kinds[comp], prefixes=tuple(sorted(used[comp])), tensors=tuple(sorted(members[comp])))
        for comp in sorted(members)
        if members[comp]
    )


def role_key(tensor: str, prefixes: Iterable[str]) -> str:
    """`tensor` with the longest of `prefixes` it starts with removed."""
    best = max((p for p in prefixes if tensor.startswith(p)), key=len, default="")
    return tensor[len(best):]


def masked_role(role: str) -> tuple[str, tuple[int, ...]]:
    """A role with its integer segments replaced by `*`, and those integers:
    `layers.3.mlp.up.weight` -> (`layers.*.mlp.up.weight`, (3,))."""
    indices = tuple(int(m) for m in _INDEX.findall("." + role))
    return _INDEX.sub("*", "." + role)[1:], indices


def layer_key(tensor: str) -> str:
    """The layer a tensor belongs to: its name up to the first integer segment
    (`model.layers.3`), else its name without the last segment (`model.norm`)."""
    parts = tensor.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:-1]) if len(parts) > 1 else tensor
