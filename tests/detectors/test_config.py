"""The config detector: architecture fields, agreement with references, malformed configs.

Models are generated on the fly; references are written through `fingerprint`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors import config as config_module
from detectors.base import DetectContext, InputError, Reference
from detectors.config import ConfigDetector, architecture_fields, config_agreement
from detectors.model import open_model
from detectors.pipeline import check_output, detect_model

from .test_pipeline import LLAMA_CONFIG, write_model

MULTIMODAL = {
    "architectures": ["Qwen2AudioForConditionalGeneration"],
    "model_type": "qwen2_audio",
    "audio_config": {"model_type": "qwen2_audio_encoder", "num_hidden_layers": 32, "d_model": 1280},
    "text_config": {"model_type": "qwen2", "hidden_size": 4096, "vocab_size": 156032},
    "vision_config": {"hidden_size": 1152, "hidden_act": "gelu_pytorch_tanh"},
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0",
}


def _reference(
    tmp_path: Path, id: str, config: dict[str, Any] | None, origin: str = "US"
) -> Reference:
    folder = tmp_path / "refs" / id
    folder.mkdir(parents=True)
    with open_model(write_model(tmp_path / "src" / id, config=config, manifest=None)) as model:
        ConfigDetector().fingerprint(model, folder, {})
    return Reference(id=id, origin=origin, path=folder)


def _detect(
    tmp_path: Path, config: dict[str, Any] | None, refs: tuple[Reference, ...] = ()
) -> dict[str, Any]:
    root = write_model(tmp_path / "subject", config=config, manifest=None)
    with open_model(root) as model:
        detector = ConfigDetector()
        out = detector.detect(model, DetectContext(references=refs))
    check_output(detector, out)
    return out["config"]


def test_architecture_fields_flatten_nested_configs() -> None:
    fields = architecture_fields(MULTIMODAL)
    assert fields == {
        "architectures": ["Qwen2AudioForConditionalGeneration"],
        "audio_config.d_model": 1280,
        "audio_config.model_type": "qwen2_audio_encoder",
        "audio_config.num_hidden_layers": 32,
        "model_type": "qwen2_audio",
        "text_config.hidden_size": 4096,
        "text_config.model_type": "qwen2",
        "text_config.vocab_size": 156032,
        "vision_config.hidden_act": "gelu_pytorch_tanh",
        "vision_config.hidden_size": 1152,
    }
    assert list(fields) == sorted(fields)


def test_agreement_counts_fields_present_on_either_side() -> None:
    ours = architecture_fields(LLAMA_CONFIG)
    assert config_agreement(ours, dict(ours)) == 1.0
    changed = {**ours, "hidden_size": 17}
    assert config_agreement(ours, changed) == pytest.approx((len(ours) - 1) / len(ours))
    fewer = {k: v for k, v in ours.items() if k != "rope_theta"}
    assert config_agreement(ours, fewer) == pytest.approx((len(ours) - 1) / len(ours))
    assert config_agreement({}, {}) is None


def test_agreement_tells_booleans_from_numbers() -> None:
    assert config_agreement({"tie_word_embeddings": True}, {"tie_word_embeddings": 1}) == 0.0
    assert config_agreement({"rope_theta": 10000}, {"rope_theta": 10000.0}) == 1.0


def test_no_config_is_unknown_not_false(tmp_path: Path) -> None:
    facts = _detect(tmp_path, None)
    assert facts["present"] is False
    assert all(facts[k] is None for k in facts if k != "present")


def test_without_references_only_own_fields(tmp_path: Path) -> None:
    facts = _detect(tmp_path, MULTIMODAL)
    assert facts == {
        "present": True,
        "architecture": "Qwen2AudioForConditionalGeneration",
        "model_type": "qwen2_audio",
        "reference": None,
        "origin": None,
        "agreement": None,
        "identical": None,
    }


def test_best_reference_wins_and_ties_keep_the_first_id(tmp_path: Path) -> None:
    near = {**LLAMA_CONFIG, "num_hidden_layers": 3}
    far = {**LLAMA_CONFIG, "num_hidden_layers": 3, "hidden_size": 64, "model_type": "mistral"}
    refs = (
        _reference(tmp_path, "a-far", far, "FR"),
        _reference(tmp_path, "b-near", near, "CN"),
        _reference(tmp_path, "c-near-too", near, "US"),
        _reference(tmp_path, "d-no-config", None),
    )
    facts = _detect(tmp_path, LLAMA_CONFIG, refs)
    n = len(architecture_fields(LLAMA_CONFIG))
    assert (facts["reference"], facts["origin"]) == ("b-near", "CN")
    assert facts["agreement"] == pytest.approx((n - 1) / n)
    assert facts["identical"] is False


def test_identical_config_is_identical(tmp_path: Path) -> None:
    refs = (_reference(tmp_path, "same", {**LLAMA_CONFIG, "torch_dtype": "bfloat16"}),)
    facts = _detect(tmp_path, LLAMA_CONFIG, refs)  # dtype is not architecture
    assert (facts["reference"], facts["agreement"], facts["identical"]) == ("same", 1.0, True)


def test_fingerprint_keeps_only_architecture_fields(tmp_path: Path) -> None:
    ref = _reference(tmp_path, "mm", MULTIMODAL)
    stored = json.loads((ref.path / "config.json").read_text())
    assert stored["fields"] == architecture_fields(MULTIMODAL)
    assert "transformers_version" not in json.dumps(stored)


def test_model_without_config_writes_no_fingerprint(tmp_path: Path) -> None:
    ref = _reference(tmp_path, "bare", None)
    assert not (ref.path / "config.json").exists()


@pytest.mark.parametrize(
    ("text", "place", "problem"),
    [
        ('{\n  "model_type": "llama",\n  "hidden_size": 16,,\n}', "line 3:", "not valid json"),
        ('{"model_type": "llama", "model_type": "x"}', None, "duplicate key `model_type`"),
        ('{"rope_theta": NaN}', None, "NaN"),
        ('["llama"]', None, "not a json object"),
        (
            '{"architectures": "LlamaForCausalLM"}',
            "field `architectures`",
            "expected a list of strings",
        ),
        ('{"model_type": 7}', "field `model_type`", "expected a string"),
        ('{"vision_config": []}', "field `vision_config`", "expected a json object"),
    ],
)
def test_malformed_config_is_one_line_with_file_and_place(
    tmp_path: Path, text: str, place: str | None, problem: str
) -> None:
    root = write_model(tmp_path / "m", manifest=None)
    (root / "config.json").write_text(text)
    with pytest.raises(InputError) as caught:
        detect_model(root, detectors=[ConfigDetector()])
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.file.endswith("config.json")
    if place:
        assert place in (caught.value.place or "")
    assert problem in message


def test_malformed_reference_fingerprint_names_its_file(tmp_path: Path) -> None:
    ref = _reference(tmp_path, "broken", LLAMA_CONFIG)
    (ref.path / "config.json").write_text('{"schema": "something-else", "fields": {}}')
    with pytest.raises(InputError, match=r"broken/config.json: field `schema`"):
        _detect(tmp_path, LLAMA_CONFIG, (ref,))


def test_public_api_is_pinned() -> None:
    assert sorted(config_module.__all__) == [
        "ARCHITECTURE_FIELDS",
        "ConfigDetector",
        "ENCODER_FIELDS",
        "NESTED_CONFIGS",
        "architecture_fields",
        "config_agreement",
    ]


@pytest.mark.parametrize("names", [
    {"model_type": "gpt2", "n_embd": 768, "n_layer": 48, "n_head": 12, "vocab_size": 50257},
    {"model_type": "t5", "d_model": 512, "num_layers": 24, "num_heads": 8, "d_ff": 2048, "vocab_size": 32128},
])
def test_other_families_shape_fields_count(names):
    """A config that names its shape as GPT-2 or T5 do: a deeper model is not identical."""
    shallow = dict(names, **{k: 2 for k in ("n_layer", "num_layers") if k in names})
    assert config_agreement(architecture_fields(names), architecture_fields(shallow)) < 1.0
    assert config_agreement(architecture_fields(names), architecture_fields(dict(names))) == 1.0
