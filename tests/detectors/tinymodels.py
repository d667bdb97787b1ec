"""Tiny torch models for detector tests and demos: LLaMA-style byte LMs, a ViT-like tower, a composite.

Builders, short CPU training loops on synthetic data, variant makers, safetensors writers; all seeded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

__all__ = [
    "LMConfig",
    "VisionConfig",
    "Params",
    "synthetic_text",
    "init_lm",
    "lm_forward",
    "train_lm",
    "init_vision",
    "vision_forward",
    "train_vision",
    "init_composite",
    "train_composite",
    "cast",
    "renamed",
    "moved",
    "permute_units",
    "rescaled",
    "rotated",
    "residual_permuted",
    "prune",
    "save_model",
]

Params = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LMConfig:
    vocab: int = 256
    d: int = 64
    layers: int = 4
    heads: int = 4
    intermediate: int = 192
    rope_theta: float = 10000.0
    prefix: str = "model."
    head_name: str = "lm_head."

    @property
    def head_dim(self) -> int:
        return self.d // self.heads


@dataclass(frozen=True)
class VisionConfig:
    image: int = 16
    patch: int = 4
    channels: int = 3
    d: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    classes: int = 8
    prefix: str = "vision_model."


# --- data ------------------------------------------------------------------------------


def synthetic_text(seed: int, nbytes: int = 60_000) -> torch.Tensor:
    """Byte stream from a seeded toy language: a Zipf-weighted lexicon with word bigrams."""
    g = torch.Generator().manual_seed(seed)
    letters = torch.tensor(list(b"abcdefghijklmnopqrstuvwxyz"))
    words = []
    for _ in range(300):
        n = int(torch.randint(2, 9, (1,), generator=g))
        words.append(bytes(letters[torch.randint(0, 26, (n,), generator=g)].tolist()))
    zipf = 1.0 / torch.arange(1, len(words) + 1, dtype=torch.float64)
    follow = torch.randint(0, len(words), (len(words), 4), generator=g)
    out = bytearray()
    w = 0
    while len(out) < nbytes:
        if float(torch.rand(1, generator=g)) < 0.7:
            w = int(follow[w, int(torch.randint(0, 4, (1,), generator=g))])
        else:
            w = int(torch.multinomial(zipf, 1, generator=g))
        out += words[w]
        out += b". " if float(torch.rand(1, generator=g)) < 0.1 else b" "
    return torch.tensor(list(out[:nbytes]), dtype=torch.long)


def _batches(data: torch.Tensor, seed: int, batch: int, seq: int) -> Callable[[], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def draw() -> torch.Tensor:
        starts = torch.randint(0, data.numel() - seq - 1, (batch,), generator=g)
        return torch.stack([data[s : s + seq + 1] for s in starts.tolist()])

    return draw


# --- the LLaMA-style LM ---------------------------------------------------------------


def _normal(g: torch.Generator, *shape: int, std: float = 0.02) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * std


def init_lm(cfg: LMConfig, seed: int) -> Params:
    """Fresh weights with HF LLaMA names; norm gains 1, rotary `inv_freq` buffer included."""
    g = torch.Generator().manual_seed(seed)
    p, pre = {}, cfg.prefix
    p[f"{pre}embed_tokens.weight"] = _normal(g, cfg.vocab, cfg.d)
    for i in range(cfg.layers):
        lp = f"{pre}layers.{i}."
        for name in ("q", "k", "v", "o"):
            p[f"{lp}self_attn.{name}_proj.weight"] = _normal(g, cfg.d, cfg.d)
        p[f"{lp}mlp.gate_proj.weight"] = _normal(g, cfg.intermediate, cfg.d)
        p[f"{lp}mlp.up_proj.weight"] = _normal(g, cfg.intermediate, cfg.d)
        p[f"{lp}mlp.down_proj.weight"] = _normal(g, cfg.d, cfg.intermediate)
        p[f"{lp}input_layernorm.weight"] = torch.ones(cfg.d)
        p[f"{lp}post_attention_layernorm.weight"] = torch.ones(cfg.d)
    p[f"{pre}norm.weight"] = torch.ones(cfg.d)
    p[f"{cfg.head_name}weight"] = _normal(g, cfg.vocab, cfg.d)
    p[f"{pre}rotary_emb.inv_freq"] = 1.0 / (
        cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    )
    return p


def _rms(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def _rope(x: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    t = torch.arange(x.shape[-2], dtype=torch.float32)
    ang = torch.outer(t, inv_freq)
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def lm_forward(p: Params, tokens: torch.Tensor, cfg: LMConfig, prefix_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of a (possibly pruned: layers and widths read from the weights) LM."""
    pre = cfg.prefix
    x = p[f"{pre}embed_tokens.weight"][tokens]
    if prefix_embeds is not None:
        x = torch.cat([prefix_embeds, x], 1)
    b, t, _ = x.shape
    layers = sorted({int(k[len(pre) + 7 :].split(".")[0]) for k in p if k.startswith(f"{pre}layers.")})
    inv_freq = p[f"{pre}rotary_emb.inv_freq"].float()
    hd = 2 * inv_freq.numel()
    for i in layers:
        lp = f"{pre}layers.{i}."
        h = _rms(x, p[f"{lp}input_layernorm.weight"])
        q, k, v = (h @ p[f"{lp}self_attn.{n}_proj.weight"].T for n in ("q", "k", "v"))
        q, k, v = (z.view(b, t, -1, hd).transpose(1, 2) for z in (q, k, v))
        q, k = _rope(q, inv_freq), _rope(k, inv_freq)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + a.transpose(1, 2).reshape(b, t, -1) @ p[f"{lp}self_attn.o_proj.weight"].T
        h = _rms(x, p[f"{lp}post_attention_layernorm.weight"])
        mlp = F.silu(h @ p[f"{lp}mlp.gate_proj.weight"].T) * (h @ p[f"{lp}mlp.up_proj.weight"].T)
        x = x + mlp @ p[f"{lp}mlp.down_proj.weight"].T
    x = _rms(x, p[f"{pre}norm.weight"])
    return x @ p[f"{cfg.head_name}weight"].T


def _train(params: Params, trainable: Iterable[str], loss_fn: Callable[[Params], torch.Tensor], steps: int, lr: float) -> Params:
    torch.manual_seed(0)
    p = {k: v.detach().clone().float() for k, v in params.items()}
    names = [k for k in trainable if not k.endswith("inv_freq")]
    for k in names:
        p[k].requires_grad_(True)
    opt = torch.optim.AdamW([p[k] for k in names], lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    # Tiny matrices: one thread is fastest and leaves the other core to whoever needs it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps):
            loss = loss_fn(p)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return {k: v.detach() for k, v in p.items()}


def train_lm(
    params: Params, cfg: LMConfig, data: torch.Tensor, steps: int, lr: float = 3e-3,
    seed: int = 0, batch: int = 8, seq: int = 48, freeze: Iterable[str] = (),
) -> Params:
    """Next-byte training with AdamW; `freeze` lists tensor names kept as they are."""
    draw = _batches(data, seed, batch, seq)
    frozen = set(freeze)

    def loss(p: Params) -> torch.Tensor:
        chunk = draw()
        logits = lm_forward(p, chunk[:, :-1], cfg)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))

    return _train(params, [k for k in params if k not in frozen], loss, steps, lr)


# --- the ViT-like tower ---------------------------------------------------------------


def init_vision(cfg: VisionConfig, seed: int, with_head: bool = True) -> Params:
    """A small ViT: conv patch embedding, learned positions, pre-norm blocks, final norm."""
    g = torch.Generator().manual_seed(seed)
    p, pre = {}, cfg.prefix
    n = (cfg.image // cfg.patch) ** 2
    p[f"{pre}embeddings.patch_embedding.weight"] = _normal(g, cfg.d, cfg.channels, cfg.patch, cfg.patch, std=0.1)
    p[f"{pre}embeddings.patch_embedding.bias"] = torch.zeros(cfg.d)
    p[f"{pre}embeddings.position_embedding.weight"] = _normal(g, n, cfg.d)
    for i in range(cfg.layers):
        lp = f"{pre}encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            p[f"{lp}{norm}.weight"] = torch.ones(cfg.d)
            p[f"{lp}{norm}.bias"] = torch.zeros(cfg.d)
        for name in ("q", "k", "v", "out"):
            p[f"{lp}self_attn.{name}_proj.weight"] = _normal(g, cfg.d, cfg.d)
            p[f"{lp}self_attn.{name}_proj.bias"] = torch.zeros(cfg.d)
        p[f"{lp}mlp.fc1.weight"] = _normal(g, cfg.intermediate, cfg.d)
        p[f"{lp}mlp.fc1.bias"] = torch.zeros(cfg.intermediate)
        p[f"{lp}mlp.fc2.weight"] = _normal(g, cfg.d, cfg.intermediate)
        p[f"{lp}mlp.fc2.bias"] = torch.zeros(cfg.d)
    p[f"{pre}post_layernorm.weight"] = torch.ones(cfg.d)
    p[f"{pre}post_layernorm.bias"] = torch.zeros(cfg.d)
    if with_head:
        p["classifier.weight"] = _normal(g, cfg.classes, cfg.d)
        p["classifier.bias"] = torch.zeros(cfg.classes)
    return p


def vision_forward(p: Params, images: torch.Tensor, cfg: VisionConfig, prefix: str | None = None) -> torch.Tensor:
    """Patch features (batch, patches, d) of a tower stored under `prefix`."""
    pre = cfg.prefix if prefix is None else prefix
    x = F.conv2d(images, p[f"{pre}embeddings.patch_embedding.weight"], p[f"{pre}embeddings.patch_embedding.bias"], stride=cfg.patch)
    x = x.flatten(2).transpose(1, 2) + p[f"{pre}embeddings.position_embedding.weight"]
    b, t, d = x.shape
    hd = d // cfg.heads
    for i in range(cfg.layers):
        lp = f"{pre}encoder.layers.{i}."
        h = F.layer_norm(x, (d,), p[f"{lp}layer_norm1.weight"], p[f"{lp}layer_norm1.bias"])
        q, k, v = (
            F.linear(h, p[f"{lp}self_attn.{n}_proj.weight"], p[f"{lp}self_attn.{n}_proj.bias"]).view(b, t, cfg.heads, hd).transpose(1, 2)
            for n in ("q", "k", "v")
        )
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + F.linear(a, p[f"{lp}self_attn.out_proj.weight"], p[f"{lp}self_attn.out_proj.bias"])
        h = F.layer_norm(x, (d,), p[f"{lp}layer_norm2.weight"], p[f"{lp}layer_norm2.bias"])
        x = x + F.linear(F.gelu(F.linear(h, p[f"{lp}mlp.fc1.weight"], p[f"{lp}mlp.fc1.bias"])), p[f"{lp}mlp.fc2.weight"], p[f"{lp}mlp.fc2.bias"])
    return F.layer_norm(x, (d,), p[f"{pre}post_layernorm.weight"], p[f"{pre}post_layernorm.bias"])


def synthetic_images(seed: int, n: int, cfg: VisionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Oriented colour gratings with noise; the label is the orientation bin."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, cfg.classes, (n,), generator=g)
    angle = (labels.float() + torch.rand(n, generator=g) * 0.5) * math.pi / cfg.classes
    freq = 0.5 + torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(cfg.image).float(), torch.arange(cfg.image).float(), indexing="ij")
    phase = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    wave = torch.sin(phase * freq[:, None, None])
    colour = torch.rand(n, cfg.channels, 1, 1, generator=g)
    images = wave[:, None] * colour + 0.3 * torch.randn(n, cfg.channels, cfg.image, cfg.image, generator=g)
    return images, labels


def train_vision(params: Params, cfg: VisionConfig, steps: int, seed: int = 0, lr: float = 3e-3, batch: int = 32) -> Params:
    """Classification of synthetic gratings: mean-pooled tower features -> classifier."""
    images, labels = synthetic_images(seed, 2048, cfg)
    g = torch.Generator().manual_seed(seed + 1)

    def loss(p: Params) -> torch.Tensor:
        idx = torch.randint(0, images.shape[0], (batch,), generator=g)
        feats = vision_forward(p, images[idx], cfg).mean(1)
        return F.cross_entropy(F.linear(feats, p["classifier.weight"], p["classifier.bias"]), labels[idx])

    return _train(params, list(params), loss, steps, lr)


# --- a LLaVA-like composite -----------------------------------------------------------

COMPOSITE_TOWER = "vision_tower."
COMPOSITE_LM = LMConfig(prefix="language_model.model.", head_name="language_model.lm_head.")


def init_composite(tower: Params, tower_cfg: VisionConfig, seed: int, lm_cfg: LMConfig = COMPOSITE_LM) -> Params:
    """A multimodal model: the given tower moved under `vision_tower.`, a fresh projector
    (`multi_modal_projector.`) and a fresh LM under `language_model.`."""
    g = torch.Generator().manual_seed(seed + 7)
    p = {COMPOSITE_TOWER + k[len(tower_cfg.prefix):]: v.clone() for k, v in tower.items() if k.startswith(tower_cfg.prefix)}
    p["multi_modal_projector.linear_1.weight"] = _normal(g, lm_cfg.d, tower_cfg.d)
    p["multi_modal_projector.linear_1.bias"] = torch.zeros(lm_cfg.d)
    p["multi_modal_projector.linear_2.weight"] = _normal(g, lm_cfg.d, lm_cfg.d)
    p["multi_modal_projector.linear_2.bias"] = torch.zeros(lm_cfg.d)
    p.update(init_lm(lm_cfg, seed))
    return p


def train_composite(
    params: Params, tower_cfg: VisionConfig, steps: int, freeze_tower: bool, seed: int = 0,
    lm_cfg: LMConfig = COMPOSITE_LM, lr: float = 3e-3,
) -> Params:
    """Captioning: image patches through tower and projector as a prefix, then the class word."""
    images, labels = synthetic_images(seed, 1024, tower_cfg)
    words = [f"class {w} " .encode() for w in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")]
    captions = torch.tensor([list(words[i][:14].ljust(14)) for i in range(len(words))], dtype=torch.long)
    g = torch.Generator().manual_seed(seed + 3)

    def loss(p: Params) -> torch.Tensor:
        idx = torch.randint(0, images.shape[0], (16,), generator=g)
        feats = vision_forward(p, images[idx], tower_cfg, prefix=COMPOSITE_TOWER)
        h = F.gelu(F.linear(feats, p["multi_modal_projector.linear_1.weight"], p["multi_modal_projector.linear_1.bias"]))
        prefix = F.linear(h, p["multi_modal_projector.linear_2.weight"], p["multi_modal_projector.linear_2.bias"])
        text = captions[labels[idx]]
        logits = lm_forward(p, text[:, :-1], lm_cfg, prefix_embeds=prefix)[:, prefix.shape[1]:]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), text[:, 1:].reshape(-1))

    frozen = {k for k in params if k.startswith(COMPOSITE_TOWER)} if freeze_tower else set()
    return _train(params, [k for k in params if k not in frozen], loss, steps, lr)


# --- variants ---------------------------------------------------------------------------


def cast(p: Params, dtype: torch.dtype) -> Params:
    return {k: (v.to(dtype) if v.is_floating_point() and not k.endswith("inv_freq") else v) for k, v in p.items()}


def renamed(p: Params, mapping: Mapping[str, str]) -> Params:
    """Every tensor name with each `old` substring replaced by `new`."""
    out = {}
    for k, v in p.items():
        for old, new in mapping.items():
            k = k.replace(old, new)
        out[k] = v.clone()
    return out


def moved(p: Params, old: str, new: str) -> Params:
    """Tensors under prefix `old` moved under `new`."""
    return {(new + k[len(old):] if k.startswith(old) else k): v.clone() for k, v in p.items()}


def permute_units(p: Params, cfg: LMConfig, seed: int) -> Params:
    """Permute MLP hidden units and attention heads of every layer; the function is unchanged."""
    g = torch.Generator().manual_seed(seed)
    out = {k: v.clone() for k, v in p.items()}
    pre = cfg.prefix
    layers = sorted({int(k[len(pre) + 7 :].split(".")[0]) for k in p if k.startswith(f"{pre}layers.")})
    for i in layers:
        lp = f"{pre}layers.{i}."
        inter = out[f"{lp}mlp.gate_proj.weight"].shape[0]
        perm = torch.randperm(inter, generator=g)
        out[f"{lp}mlp.gate_proj.weight"] = out[f"{lp}mlp.gate_proj.weight"][perm]
        out[f"{lp}mlp.up_proj.weight"] = out[f"{lp}mlp.up_proj.weight"][perm]
        out[f"{lp}mlp.down_proj.weight"] = out[f"{lp}mlp.down_proj.weight"][:, perm]
        heads = torch.randperm(cfg.heads, generator=g)
        rows = torch.cat([torch.arange(h * cfg.head_dim, (h + 1) * cfg.head_dim) for h in heads.tolist()])
        for n in ("q", "k", "v"):
            out[f"{lp}self_attn.{n}_proj.weight"] = out[f"{lp}self_attn.{n}_proj.weight"][rows]
        out[f"{lp}self_attn.o_proj.weight"] = out[f"{lp}self_attn.o_proj.weight"][:, rows]
    return out


def rescaled(p: Params, cfg: LMConfig, factor: float = 2.0) -> Params:
    """q scaled up and k down, MLP up scaled and down compensated: same function, new values."""
    out = {k: v.clone() for k, v in p.items()}
    for k in p:
        if k.endswith("q_proj.weight") or k.endswith("up_proj.weight"):
            out[k] = p[k] * factor
        elif k.endswith("k_proj.weight") or k.endswith("down_proj.weight"):
            out[k] = p[k] / factor
    return out


def rotated(p: Params, cfg: LMConfig, seed: int | None) -> Params:
    """The residual stream rotated by an orthogonal matrix, norm gains folded into the
    matrices that read it (gains become 1): the same function, no weight left in place.
    `seed` draws a uniformly random rotation; None takes the normalised Hadamard matrix,
    which spreads every residual dimension evenly over all others (widths of 2^k)."""
    if seed is None:
        q = torch.ones(1, 1)
        while q.shape[0] < cfg.d:
            q = torch.cat([torch.cat([q, q], 1), torch.cat([q, -q], 1)], 0)
        if q.shape[0] != cfg.d:
            raise ValueError(f"no Hadamard matrix of width {cfg.d} here")
        q = q / math.sqrt(cfg.d)
    else:
        g = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(cfg.d, cfg.d, generator=g, dtype=torch.float64))
        q = (q * torch.sign(torch.diagonal(r))).float()
    pre = cfg.prefix
    out = {k: v.clone() for k, v in p.items()}
    ones = torch.ones(cfg.d)
    # Row vectors: x' = x q. RMS norm commutes with q once its gain is folded away.
    out[f"{pre}embed_tokens.weight"] = p[f"{pre}embed_tokens.weight"] @ q
    for i in sorted({int(k[len(pre) + 7 :].split(".")[0]) for k in p if k.startswith(f"{pre}layers.")}):
        lp = f"{pre}layers.{i}."
        gain_in, gain_post = p[f"{lp}input_layernorm.weight"], p[f"{lp}post_attention_layernorm.weight"]
        for n in ("q", "k", "v"):
            out[f"{lp}self_attn.{n}_proj.weight"] = (p[f"{lp}self_attn.{n}_proj.weight"] * gain_in) @ q
        for n in ("gate", "up"):
            out[f"{lp}mlp.{n}_proj.weight"] = (p[f"{lp}mlp.{n}_proj.weight"] * gain_post) @ q
        out[f"{lp}self_attn.o_proj.weight"] = q.T @ p[f"{lp}self_attn.o_proj.weight"]
        out[f"{lp}mlp.down_proj.weight"] = q.T @ p[f"{lp}mlp.down_proj.weight"]
        out[f"{lp}input_layernorm.weight"] = ones.clone()
        out[f"{lp}post_attention_layernorm.weight"] = ones.clone()
    out[f"{cfg.head_name}weight"] = (p[f"{cfg.head_name}weight"] * p[f"{pre}norm.weight"]) @ q
    out[f"{pre}norm.weight"] = ones.clone()
    return out


def residual_permuted(p: Params, cfg: LMConfig, seed: int) -> Params:
    """The residual stream's dimensions permuted through the whole network (every matrix
    that reads or writes it, and the norm gains): the same function."""
    perm = torch.randperm(cfg.d, generator=torch.Generator().manual_seed(seed))
    pre = cfg.prefix
    reads = ("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight")
    out = {}
    for k, v in p.items():
        if k.endswith(reads) or k in (f"{pre}embed_tokens.weight", f"{cfg.head_name}weight"):
            out[k] = v[:, perm].contiguous()
        elif k.endswith(("o_proj.weight", "down_proj.weight")):
            out[k] = v[perm, :].contiguous()
        elif k.endswith("norm.weight"):
            out[k] = v[perm].contiguous()
        else:
            out[k] = v.clone()
    return out


def prune(p: Params, cfg: LMConfig, drop_layers: Iterable[int], keep_units: int) -> Params:
    """Drop layers (renumbering the rest) and keep the `keep_units` MLP units of largest norm."""
    pre = cfg.prefix
    drop = set(drop_layers)
    out: Params = {k: v.clone() for k, v in p.items() if not k.startswith(f"{pre}layers.")}
    kept = [i for i in range(cfg.layers) if i not in drop]
    for new, old in enumerate(kept):
        src, dst = f"{pre}layers.{old}.", f"{pre}layers.{new}."
        for k, v in p.items():
            if k.startswith(src):
                out[dst + k[len(src):]] = v.clone()
        score = out[f"{dst}mlp.gate_proj.weight"].norm(dim=1) * out[f"{dst}mlp.down_proj.weight"].norm(dim=0)
        keep = torch.sort(torch.topk(score, keep_units).indices).values
        out[f"{dst}mlp.gate_proj.weight"] = out[f"{dst}mlp.gate_proj.weight"][keep]
        out[f"{dst}mlp.up_proj.weight"] = out[f"{dst}mlp.up_proj.weight"][keep]
        out[f"{dst}mlp.down_proj.weight"] = out[f"{dst}mlp.down_proj.weight"][:, keep]
    return out


def save_model(folder: str | Path, params: Params, config: Mapping[str, object] | None = None, shards: int = 1) -> Path:
    """Write a Hugging Face style folder: safetensors (sharded with an index if asked), config."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in sorted(params.items())}
    if shards <= 1:
        save_file(tensors, str(folder / "model.safetensors"))
    else:
        names = list(tensors)
        per = math.ceil(len(names) / shards)
        weight_map = {}
        for s in range(shards):
            part = names[s * per : (s + 1) * per]
            if not part:
                continue
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_file({n: tensors[n] for n in part}, str(folder / file))
            weight_map.update({n: file for n in part})
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(dict(config), indent=1, sort_keys=True))
    return folder
