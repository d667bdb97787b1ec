"""The `config` detector: architecture fields of config.json, compared with the references.

The model reader parses config.json; this module checks the fields it relies on.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from detectors.base import DetectContext, FactDecl, InputError
from detectors.model import read_json

__all__ = [
    "ARCHITECTURE_FIELDS",
    "ENCODER_FIELDS",
    "NESTED_CONFIGS",
    "ConfigDetector",
    "architecture_fields",
    "config_agreement",
]

# Fields that fix a network's shape. Nested sub-configs (multimodal models) use the
# same names, flattened as `vision_config.hidden_size`.
ARCHITECTURE_FIELDS = (
    "model_type",
    "architectures",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "hidden_act",
    "tie_word_embeddings",
    "head_dim",
    # The same shape under other families' names (GPT-2, GPT-J/NeoX, T5, BART, OPT, Falcon).
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    "n_positions",
    "n_ctx",
    "d_model",
    "d_ff",
    "d_kv",
    "num_layers",
    "num_heads",
    "num_decoder_layers",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "ffn_dim",
    "word_embed_proj_dim",
    "rotary_dim",
    "activation_function",
    "layer_norm_epsilon",
)
NESTED_CONFIGS = ("vision_config", "audio_config", "text_config")
# Encoder configs name their shape differently (Whisper's d_model, ViT's patch_size);
# these count inside the nested configs as well.
ENCODER_FIELDS = (
    "d_model",
    "encoder_layers",
    "encoder_attention_heads",
    "encoder_ffn_dim",
    "num_mel_bins",
    "patch_size",
    "temporal_patch_size",
    "image_size",
    "num_channels",
    "depth",
    "embed_dim",
    "num_heads",
    "spatial_merge_size",
    "projection_dim",
    "layer_norm_eps",
)

FINGERPRINT_FILE = "config.json"
_FINGERPRINT_SCHEMA = "originality.config-fingerprint/1"


def _flatten(
    config: Mapping[str, Any], prefix: str, fields: tuple[str, ...], out: dict[str, Any]
) -> None:
    for field in fields:
        value = config.get(field)
        if value is not None:
            out[prefix + field] = value


def architecture_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture fields of a parsed config.json, nested ones flattened with dots."""
    out: dict[str, Any] = {}
    _flatten(config, "", ARCHITECTURE_FIELDS, out)
    for nested in NESTED_CONFIGS:
        sub = config.get(nested)
        if isinstance(sub, Mapping):
            _flatten(sub, nested + ".", ARCHITECTURE_FIELDS + ENCODER_FIELDS, out)
    return dict(sorted(out.items()))


def _same(a: Any, b: Any) -> bool:
    # `True == 1` in Python; in a config they mean different things.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def config_agreement(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> float | None:
    """Share of fields present in either that are equal in both; None when neither has any.

    A field present on one side only counts as a disagreement.
    """
    union = sorted(set(ours) | set(theirs))
    if not union:
        return None
    equal = sum(1 for f in union if f in ours and f in theirs and _same(ours[f], theirs[f]))
    return equal / len(union)


def _validate_config(config: Any, file: Path) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise InputError(file, None, "config is not a json object")
    architectures = config.get("architectures")
    if architectures is not None and not (
        isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)
    ):
        raise InputError(file, "field `architectures`", "expected a list of strings")
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise InputError(file, "field `model_type`", "expected a string")
    for nested in NESTED_CONFIGS:
        sub = config.get(nested)
        if sub is not None and not isinstance(sub, dict):
            raise InputError(file, f"field `{nested}`", "expected a json object")
    return config


def _read_fingerprint(path: Path) -> dict[str, Any] | None:
    file = path / FINGERPRINT_FILE
    if not file.is_file():
        return None
    data = read_json(file)
    if not isinstance(data, dict) or data.get("schema") != _FINGERPRINT_SCHEMA:
        raise InputError(file, "field `schema`", f"expected `{_FINGERPRINT_SCHEMA}`")
    fields = data.get("fields")
    if not isinstance(fields, dict):
        raise InputError(file, "field `fields`", "expected a json object")
    return fields


class ConfigDetector:
    """Reads config.json; reports the reference whose architecture agrees most."""

    name = "config"
    version = "1.1.0"  # 1.1: the shape fields of GPT-2, T5, BART, OPT and others count
    emits = ("config",)
    facts = (
        FactDecl("config.present", "boolean", "config.json exists"),
        FactDecl("config.architecture", "string", "`architectures[0]`"),
        FactDecl("config.model_type", "string", "`model_type`"),
        FactDecl("config.reference", "string", "the reference whose config agrees most"),
        FactDecl("config.origin", "string", "its origin"),
        FactDecl(
            "config.agreement", "number", "share of architecture fields equal to that reference's"
        ),
        FactDecl("config.identical", "boolean", "every architecture field equals the reference's"),
    )

    def read_config(self, model: Any) -> dict[str, Any] | None:
        """The model's config.json as the model reader parsed it (None when absent)."""
        if model.config is None:
            return None
        return _validate_config(model.config, Path(model.root) / "config.json")

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        config = self.read_config(model)
        facts: dict[str, Any] = {
            "present": config is not None,
            "architecture": None,
            "model_type": None,
            "reference": None,
            "origin": None,
            "agreement": None,
            "identical": None,
        }
        if config is None:
            return {"config": facts}
        architectures = config.get("architectures") or []
        facts["architecture"] = architectures[0] if architectures else None
        facts["model_type"] = config.get("model_type")
        ours = architecture_fields(config)
        best: tuple[float, Any] | None = None
        for reference in context.references:  # sorted by id: ties keep the first
            theirs = _read_fingerprint(Path(reference.path))
            if theirs is None:
                continue
            agreement = config_agreement(ours, theirs)
            if agreement is not None and (best is None or agreement > best[0]):
                best = (agreement, reference)
        if best is not None:
            agreement, reference = best
            facts.update(
                reference=reference.id,
                origin=reference.origin,
                agreement=agreement,
                identical=agreement == 1.0,
            )
        return {"config": facts}

    def fingerprint(self, model: Any, directory: Path, components: Mapping[str, str]) -> None:
        """Write the reference's architecture fields to `config.json` in its folder."""
        config = self.read_config(model)
        if config is None:
            return
        payload = {"schema": _FINGERPRINT_SCHEMA, "fields": architecture_fields(config)}
        text = json.dumps(payload, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
        (Path(directory) / FINGERPRINT_FILE).write_text(text, encoding="utf-8")
