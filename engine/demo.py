"""`originality demo`: the whole job on generated example models, end to end.

It builds a small reference catalogue and five submissions (synthetic weights made with
numpy from fixed seeds: random initialisations and random-walk "training"), detects their
facts, checks them under both policy versions, and diffs the verdicts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["build_examples", "run_demo", "SUBMISSIONS", "REFERENCES"]

ROOT = Path(__file__).resolve().parents[1]
POLICY_DIR = ROOT / "policies" / "msit-originality"
EXAMPLE_FACTS = ROOT / "examples" / "facts"

D, LAYERS, FF, VOCAB = 64, 2, 128, 384
VD, VLAYERS, VFF, PATCH = 48, 2, 96, 3 * 8 * 8
INIT_STD = 0.02

Params = dict[str, np.ndarray]


def _normal(rng: np.random.Generator, *shape: int, std: float = INIT_STD) -> np.ndarray:
    return rng.normal(0.0, std, size=shape).astype(np.float32)


def init_lm(seed: int) -> Params:
    rng = np.random.default_rng(seed)
    p = {"model.embed_tokens.weight": _normal(rng, VOCAB, D), "model.norm.weight": np.ones(D, np.float32),
         "lm_head.weight": _normal(rng, VOCAB, D)}
    for i in range(LAYERS):
        pre = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            p[pre + f"self_attn.{name}.weight"] = _normal(rng, D, D)
        p[pre + "mlp.gate_proj.weight"] = _normal(rng, FF, D)
        p[pre + "mlp.up_proj.weight"] = _normal(rng, FF, D)
        p[pre + "mlp.down_proj.weight"] = _normal(rng, D, FF)
        p[pre + "input_layernorm.weight"] = np.ones(D, np.float32)
        p[pre + "post_attention_layernorm.weight"] = np.ones(D, np.float32)
    return p


def init_vision(seed: int) -> Params:
    rng = np.random.default_rng(seed)
    p = {"visual.patch_embed.proj.weight": _normal(rng, VD, PATCH),
         "visual.merger.ln_q.weight": np.ones(VD, np.float32),
         "visual.merger.mlp.0.weight": _normal(rng, D, VD)}
    for i in range(VLAYERS):
        pre = f"visual.blocks.{i}."
        p[pre + "attn.qkv.weight"] = _normal(rng, 3 * VD, VD)
        p[pre + "attn.proj.weight"] = _normal(rng, VD, VD)
        p[pre + "mlp.fc1.weight"] = _normal(rng, VFF, VD)
        p[pre + "mlp.fc2.weight"] = _normal(rng, VD, VFF)
        p[pre + "norm1.weight"] = np.ones(VD, np.float32)
        p[pre + "norm2.weight"] = np.ones(VD, np.float32)
    return p


def train(p: Params, seed: int, steps: int, size: float = 0.012, only: str = "") -> Params:
    """Synthetic training: a random walk of heavy-tailed updates (norm gains included),
    applied to the tensors whose names start with `only`."""
    rng = np.random.default_rng(seed)
    out = dict(p)
    for _ in range(steps):
        for name in sorted(out):
            if not name.startswith(only):
                continue
            w = out[name]
            step = rng.standard_t(5, size=w.shape).astype(np.float32) * size / np.sqrt(5 / 3)
            out[name] = (w + step).astype(np.float32)
    return out


def lm_config(**extra) -> dict:
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
           "num_hidden_layers": LAYERS, "num_attention_heads": 4, "num_key_value_heads": 4,
           "intermediate_size": FF, "vocab_size": VOCAB, "max_position_embeddings": 512,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
           "initializer_range": INIT_STD}
    cfg.update(extra)
    return cfg


def vlm_config() -> dict:
    return lm_config(architectures=["Qwen2VLForConditionalGeneration"], model_type="qwen2_vl",
                     vision_config={"depth": VLAYERS, "embed_dim": VD, "mlp_ratio": VFF / VD, "patch_size": 8})


def tokenizer(seed: int, shared_with: int | None = None) -> dict:
    """A byte-level BPE tokenizer: 256 bytes plus merges drawn from a seeded stream."""
    rng = np.random.default_rng(seed if shared_with is None else shared_with)
    vocab = {f"<{b:02x}>": b for b in range(256)}
    merges = []
    tokens = list(vocab)
    while len(vocab) < VOCAB:
        a, b = (tokens[int(i)] for i in rng.integers(0, len(tokens), 2))
        merged = a + b
        if merged in vocab or len(merged) > 24:
            continue
        vocab[merged] = len(vocab)
        merges.append(f"{a} {b}")
        tokens.append(merged)
    return {"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": merges}}


def save(folder: Path, params: Params, config: dict | None = None, tok: dict | None = None,
         manifest: str | None = None, dtype: str = "float32") -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: _cast(v, dtype) for k, v in sorted(params.items())}
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "np"})
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tok is not None:
        (folder / "tokenizer.json").write_text(json.dumps(tok, sort_keys=True) + "\n")
    if manifest is not None:
        (folder / "originality.yaml").write_text(manifest, encoding="utf-8")
    return folder


def _cast(w: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float16":
        return w.astype(np.float16)
    return np.ascontiguousarray(w, dtype=np.float32)


def write_trail(folder: Path, steps: list[Params], commitment: dict) -> None:
    """checkpoints/step-<N>/ for each state after step 0 (written already), and the
    commitment to step 0."""
    for i, p in enumerate(steps[1:], 1):
        save(folder / "checkpoints" / f"step-{i * 1000}", p, config=vlm_config())
    (folder / "checkpoints" / "commitment.json").write_text(json.dumps(commitment, indent=2, sort_keys=True) + "\n")


MANIFEST_OWN = """# Declared by the team: every component its own, pre-trained from random initialisation.
schema_version: 1
organisation: Hanbit AI Consortium
members: [Hanbit Labs, Seoul Vision]
base_model: null
from_scratch: true
init: {{method: random, seed: {seed}, recipe: "originality/1, std 0.02"}}
components:
  - {{name: language_model, source: own, member: Hanbit Labs, license: Apache-2.0}}
  - {{name: vision_encoder, source: own, member: Seoul Vision, license: Apache-2.0, reinitialized: true}}
"""

MANIFEST_FROZEN = """# Declared honestly: the vision encoder is a public release, used as it was.
schema_version: 1
organisation: Example Multimodal Lab
base_model: null
from_scratch: true
init: {method: mixed, seed: 77, recipe: "language model random; vision encoder loaded"}
components:
  - {name: language_model, source: own, license: Apache-2.0}
  - {name: vision_encoder, source: external, reference: lumen-vision, origin: US, license: Apache-2.0,
     frozen: true, reinitialized: false}
"""

MANIFEST_FINETUNE = """# A fine-tune of a published model, declared as such.
schema_version: 1
organisation: Example Fine-Tuning Team
base_model: atlas-lm
from_scratch: false
init: {method: pretrained}
components:
  - {name: language_model, source: external, reference: atlas-lm, origin: US, license: Atlas-Community}
"""

MANIFEST_CLAIMS_OWN = """# Claims an own model; the weights say otherwise.
schema_version: 1
organisation: Example Quiet Team
base_model: null
from_scratch: true
init: {method: random, seed: 5}
components:
  - {name: language_model, source: own, license: Apache-2.0}
"""


def _reference_lm() -> Params:
    return train(init_lm(1001), seed=11, steps=6)


def _reference_vision() -> Params:
    return train(init_vision(2002), seed=22, steps=6)


REFERENCES = {
    # id: (builder, origin, organisation, licence, components)
    "atlas-lm": (lambda d: save(d, _reference_lm(), lm_config(), tokenizer(900)), "US", "Atlas AI",
                 "Atlas-Community", None),
    "lumen-vision": (lambda d: save(d, {**init_lm(3003), **_reference_vision()}, vlm_config(), tokenizer(901)),
                     "US", "Lumen Labs", "Apache-2.0", None),
}


def _scratch(d: Path) -> None:
    """Pre-trained from scratch, its vision encoder reset and trained, with a trail whose
    step 0 anyone can regenerate from the committed seed (`originality init`)."""
    from safetensors.numpy import load_file

    from detectors.step0 import write_step0

    template = save(d / ".template", {**init_lm(42), **init_vision(43)}, vlm_config())  # names and shapes
    step0 = d / "checkpoints" / "step-0"
    commitment = write_step0(template, step0, seed=42, std=INIT_STD)
    shutil.rmtree(template)
    steps = [load_file(str(step0 / "model.safetensors"))]
    for i in range(3):
        steps.append(train(steps[-1], seed=100 + i, steps=1))
    save(d, steps[-1], vlm_config(), tokenizer(44), MANIFEST_OWN.format(seed=42))
    write_trail(d, steps, commitment)


def _frozen(d: Path) -> None:
    """Its own language model, a public vision encoder used as it was (stored as fp16)."""
    params = {**train(init_lm(50), seed=51, steps=4), **_reference_vision()}
    save(d, params, vlm_config(), tokenizer(52), MANIFEST_FROZEN, dtype="float16")


CARD_FINETUNE = """---
license: other
base_model: atlas-ai/atlas-lm
base_model_relation: finetune
library_name: transformers
---

# Hanbit Chat

Atlas LM, fine-tuned on Korean instructions.
"""


def _finetune(d: Path) -> None:
    """A published overseas language model, fine-tuned; its model card says so."""
    save(d, train(_reference_lm(), seed=60, steps=2, size=0.004), lm_config(), tokenizer(900), MANIFEST_FINETUNE)
    (d / "README.md").write_text(CARD_FINETUNE, encoding="utf-8")


def _quiet_copy(d: Path) -> None:
    """The overseas model with its MLP units permuted and tensors renamed, declared own."""
    ref = _reference_lm()
    rng = np.random.default_rng(70)
    out = dict(ref)
    for i in range(LAYERS):
        perm = rng.permutation(FF)
        pre = f"model.layers.{i}.mlp."
        out[pre + "gate_proj.weight"] = ref[pre + "gate_proj.weight"][perm]
        out[pre + "up_proj.weight"] = ref[pre + "up_proj.weight"][perm]
        out[pre + "down_proj.weight"] = ref[pre + "down_proj.weight"][:, perm]
    save(d, out, lm_config(), tokenizer(71), MANIFEST_CLAIMS_OWN)


def _no_evidence(d: Path) -> None:
    """Trained from scratch, but handed in without a manifest or a checkpoint trail."""
    save(d, train(init_lm(80), seed=81, steps=4), lm_config(), tokenizer(82))


SUBMISSIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "hanbit-scratch": (_scratch, "pre-trained from scratch, encoder reset and retrained, trail committed"),
    "frozen-vision": (_frozen, "a public vision encoder used frozen (round one's failure), stored as fp16"),
    "atlas-finetune": (_finetune, "an overseas language model fine-tuned"),
    "quiet-copy": (_quiet_copy, "an overseas model, hidden units permuted, declared as own"),
    "no-evidence": (_no_evidence, "built from scratch, no manifest and no trail"),
}


def build_examples(out: Path, log: Callable[[str], None] = print) -> tuple[Path, dict[str, Path]]:
    """Write the references into a catalogue and the submissions as model folders."""
    from detectors.catalog import add_reference

    refs_dir, catalog, models = out / "references", out / "catalog", out / "models"
    for folder in (refs_dir, catalog, models):
        shutil.rmtree(folder, ignore_errors=True)
    for ref_id, (build, origin, org, licence, components) in REFERENCES.items():
        build(refs_dir / ref_id)
        add_reference(refs_dir / ref_id, id=ref_id, origin=origin, organisation=org, license=licence,
                      components=components, catalog=catalog)
        log(f"catalogue: added {ref_id} ({origin}, {org})")
    folders = {}
    for name, (build, _about) in SUBMISSIONS.items():
        build(models / name)
        folders[name] = models / name
    return catalog, folders


def _shown(path: Path) -> Path:
    """A path relative to the working folder when it is inside it (shorter to read)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def run_demo(out: Path, console) -> None:
    """The main job: catalogue, detect, check under 1.0 and 2.0-draft, diff, render."""
    from rich.table import Table

    from detectors.pipeline import detect_model

    from .catalogue import load_fact_catalogue
    from .diff import diff_verdicts, render_diff_markdown, render_diff_table
    from .evaluator import prepare_policy
    from .facts import load_fact_sheet, validate_fact_sheet
    from .loader import load_policy
    from .render import render_policy
    from .report import build_report, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    catalogue = load_fact_catalogue()
    console.print(f"[bold]originality demo[/] — writing to {out}")
    catalog, folders = build_examples(out, log=lambda m: console.print("  " + m))

    facts_dir, reports_dir = out / "facts", out / "reports"
    for folder in (facts_dir, reports_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    old = load_policy(POLICY_DIR / "1.0.policy", catalogue)
    new = load_policy(POLICY_DIR / "2.0-draft.policy", catalogue)
    programs = {"1.0": prepare_policy(old), "2.0-draft": prepare_policy(new)}

    table = Table(title="submissions")
    for col in ("model", "what it is", "1.0", "2.0-draft", "blocking rules not passed under 2.0-draft"):
        table.add_column(col, overflow="fold")
    colour = {"pass": "green", "fail": "red", "indeterminate": "yellow"}
    sheets = []
    for name, folder in folders.items():
        data = detect_model(folder, catalog=catalog)
        path = facts_dir / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        sheet = validate_fact_sheet(data, str(path), catalogue)
        sheets.append(sheet)
        verdicts = {}
        failing = []
        for version, program in programs.items():
            ev = program.evaluate(sheet)
            verdicts[version] = ev.verdict
            report = build_report(ev)
            (reports_dir / f"{name}.{version}.md").write_text(render_markdown(report), encoding="utf-8")
            if version == "2.0-draft":
                failing = [f"{r.id} ({r.outcome})" for r in ev.rules if r.outcome != "pass" and r.level == "blocking"]
        table.add_row(name, SUBMISSIONS[name][1],
                      *(f"[{colour[v]}]{v}[/]" for v in verdicts.values()), ", ".join(failing))
    console.print(table)

    archived = sorted(_shown(p) for p in EXAMPLE_FACTS.glob("*.json"))
    all_sheets = sheets + [load_fact_sheet(p, catalogue) for p in archived]
    diff = diff_verdicts(programs["1.0"], programs["2.0-draft"], all_sheets)
    console.print(f"\n[bold]verdicts from 1.0 to 2.0-draft[/] over {len(all_sheets)} fact sheets "
                  f"({len(sheets)} detected now, {len(archived)} archived in examples/facts)")
    render_diff_table(diff, console)
    (out / "diff-1.0-to-2.0-draft.md").write_text(render_diff_markdown(diff), encoding="utf-8")
    (out / "criteria-2.0-draft.md").write_text(render_policy(new, catalogue), encoding="utf-8")
    console.print(f"\nfact sheets in {facts_dir}, reports in {reports_dir}, the diff and the criteria "
                  f"document of 2.0-draft in {out}")
