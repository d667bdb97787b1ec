"""Components: tensor names of common architectures grouped by prefix, declared prefixes first.

Every tensor lands in exactly one component, deterministically.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import detectors.components as components_module
from detectors.base import COMPONENT_KINDS
from detectors.components import group_components, kind_of, layer_key, masked_role, role_key


def grouped(names, declared=None):
    return {c.name: (c.kind, c.prefixes, c.tensors) for c in group_components(names, declared)}


LLAMA = [
    "model.embed_tokens.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.mlp.gate_proj.weight",
    "model.layers.1.input_layernorm.weight",
    "model.norm.weight",
    "model.rotary_emb.inv_freq",
    "lm_head.weight",
]


def test_llama_splits_embeddings_body_and_head():
    got = grouped(LLAMA)
    assert got["embeddings"] == ("embeddings", ("model.embed_tokens.",), ("model.embed_tokens.weight",))
    assert got["head"] == ("head", ("lm_head.",), ("lm_head.weight",))
    kind, prefixes, tensors = got["language_model"]
    assert kind == "language_model" and prefixes == ("model.",)
    assert "model.rotary_emb.inv_freq" in tensors and len(tensors) == 5


def test_qwen2_vl_vision_tower_and_merger():
    names = LLAMA + ["visual.patch_embed.proj.weight", "visual.blocks.0.attn.qkv.weight", "visual.merger.mlp.0.weight"]
    got = grouped(names)
    assert got["vision_encoder"][:2] == ("vision_encoder", ("visual.",))
    assert got["projector"] == ("projector", ("visual.merger.",), ("visual.merger.mlp.0.weight",))
    # The newer layout nests everything under model.
    newer = grouped(["model.visual.blocks.0.x", "model.visual.merger.y", "model.language_model.layers.0.z",
                     "model.language_model.embed_tokens.weight", "lm_head.weight"])
    assert newer["vision_encoder"][1] == ("model.visual.",)
    assert newer["projector"][1] == ("model.visual.merger.",)
    assert newer["language_model"][1] == ("model.language_model.",)
    assert newer["embeddings"][1] == ("model.language_model.embed_tokens.",)


def test_llava_layout():
    got = grouped([
        "vision_tower.vision_model.embeddings.patch_embedding.weight",
        "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
        "multi_modal_projector.linear_1.weight",
        "language_model.model.layers.0.mlp.up_proj.weight",
        "language_model.model.embed_tokens.weight",
        "language_model.lm_head.weight",
    ])
    # Wildcard BERT rules never split a tower a literal rule already claims.
    assert got["vision_encoder"][1] == ("vision_tower.",) and len(got["vision_encoder"][2]) == 2
    assert got["projector"][1] == ("multi_modal_projector.",)
    assert got["language_model"][1] == ("language_model.",)
    assert got["embeddings"][1] == ("language_model.model.embed_tokens.",)
    assert got["head"][1] == ("language_model.lm_head.",)


def test_whisper_encoder_is_audio_and_t5_encoder_is_text():
    whisper = grouped(["model.encoder.conv1.weight", "model.encoder.layers.0.fc1.weight",
                       "model.decoder.layers.0.fc1.weight", "model.decoder.embed_tokens.weight", "proj_out.weight"])
    assert whisper["audio_encoder"][:2] == ("audio_encoder", ("model.encoder.",))
    assert whisper["language_model"][1] == ("model.decoder.",)
    assert whisper["embeddings"][1] == ("model.decoder.embed_tokens.",)
    assert whisper["head"][1] == ("proj_out.",)
    t5 = grouped(["model.encoder.layers.0.q.weight", "model.decoder.layers.0.q.weight"])
    assert t5["encoder"][:2] == ("language_model", ("model.encoder.",))
    assert "audio_encoder" not in t5
    qwen_audio = grouped(["audio_tower.layers.0.fc1.weight", "model.layers.0.x"])
    assert qwen_audio["audio_encoder"][1] == ("audio_tower.",)


def test_bert_and_gpt2():
    bert = grouped(["bert.embeddings.word_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
                    "bert.pooler.dense.weight", "cls.predictions.bias"])
    assert bert["embeddings"][1] == ("bert.embeddings.",)
    assert bert["language_model"][1] == ("bert.encoder.",)
    assert bert["head"][1] == ("bert.pooler.", "cls.")
    bare = grouped(["embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight"])
    assert bare["embeddings"][1] == ("embeddings.",) and bare["language_model"][1] == ("encoder.",)
    gpt2 = grouped(["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight", "transformer.ln_f.weight"])
    assert gpt2["embeddings"][1] == ("transformer.wpe.", "transformer.wte.")
    assert gpt2["language_model"][2] == ("transformer.h.0.attn.c_attn.weight", "transformer.ln_f.weight")


def test_unknown_names_go_to_other_by_first_segment():
    got = grouped(["foo.bar.weight", "foo.baz", "scalar"])
    assert got == {"other": ("other", ("foo.", "scalar"), ("foo.bar.weight", "foo.baz", "scalar"))}


def test_declared_prefixes_win_and_name_kinds():
    names = LLAMA + ["visual.blocks.0.x", "visual.merger.y"]
    got = grouped(names, {"vision_encoder": "visual.", "first_block": "model.layers.0."})
    # Declared `visual.` takes the merger too: the declaration says so.
    assert got["vision_encoder"][2] == ("visual.blocks.0.x", "visual.merger.y")
    assert "projector" not in got
    # A declared name that is no kind takes the kind of the built-in rule it falls under.
    assert got["first_block"][0] == "language_model"
    assert got["first_block"][2] == ("model.layers.0.mlp.gate_proj.weight", "model.layers.0.self_attn.q_proj.weight")
    # The longest declared prefix wins among declarations.
    nested = grouped(["a.b.c", "a.d"], {"outer": "a.", "inner": "a.b."})
    assert nested["inner"][2] == ("a.b.c",) and nested["outer"][2] == ("a.d",)
    assert kind_of("custom", "zzz.") == "other" and kind_of("projector") == "projector"


def test_declared_several_prefixes_and_merging_with_builtins():
    got = grouped(LLAMA, {"language_model": ["model.layers.", "model.norm."]})
    # Built-in leftovers of the same name merge into the declared component.
    assert got["language_model"][1] == ("model.", "model.layers.", "model.norm.")
    assert set(got) == {"embeddings", "head", "language_model"}


def test_components_are_sorted_and_prefixes_sorted():
    comps = group_components(reversed(LLAMA))
    assert [c.name for c in comps] == sorted(c.name for c in comps)
    assert all(list(c.tensors) == sorted(c.tensors) for c in comps)


names_strategy = st.lists(
    st.builds(
        lambda head, mid, idx, tail: ".".join(p for p in (head, mid, idx, tail) if p),
        st.sampled_from(["model", "visual", "vision_tower", "language_model", "lm_head", "bert", "audio_tower",
                         "transformer", "multi_modal_projector", "x", "model.encoder", "model.decoder", ""]),
        st.sampled_from(["layers", "embed_tokens", "merger", "embeddings", "encoder", "blocks", "norm", "conv1", ""]),
        st.sampled_from(["0", "1", "12", ""]),
        st.sampled_from(["weight", "bias", "inv_freq"]),
    ),
    min_size=1,
    max_size=30,
    unique=True,
)


@settings(max_examples=80, deadline=None)
@given(names_strategy, st.dictionaries(st.sampled_from(["vision_encoder", "mine", "projector"]),
                                       st.sampled_from(["model.", "visual.", "x.", "model.layers.", "lm_head."]), max_size=2))
def test_every_tensor_in_exactly_one_component(names, declared):
    comps = group_components(names, declared)
    seen = [t for c in comps for t in c.tensors]
    assert sorted(seen) == sorted(set(names)) and len(seen) == len(set(names))
    assert all(c.kind in COMPONENT_KINDS and c.tensors for c in comps)
    assert all(any(t.startswith(p) for p in c.prefixes) for c in comps for t in c.tensors)
    # Deterministic and independent of input order.
    assert group_components(list(reversed(names)), declared) == comps


def test_role_layer_and_masked_role():
    assert role_key("model.layers.3.mlp.up.weight", ["model.", "model.layers."]) == "3.mlp.up.weight"
    assert masked_role("layers.3.mlp.experts.12.w1.weight") == ("layers.*.mlp.experts.*.w1.weight", (3, 12))
    assert masked_role("norm.weight") == ("norm.weight", ())
    assert layer_key("model.layers.3.mlp.up.weight") == "model.layers.3"
    assert layer_key("lm_head.weight") == "lm_head"
    assert layer_key("scalar") == "scalar"


def test_public_api_is_pinned():
    assert sorted(components_module.__all__) == sorted(
        ["Component", "PREFIX_RULES", "group_components", "kind_of", "layer_key", "role_key", "masked_role"]
    )


@pytest.mark.parametrize("rule", components_module.PREFIX_RULES)
def test_rules_name_known_kinds(rule):
    prefix, name, kind = rule
    assert prefix.endswith(".") and kind in COMPONENT_KINDS and name
