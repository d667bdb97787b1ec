"""Speed and memory of detection on a generated model of a gigabyte or more, against the read floor.

Run: `.venv/bin/python bench/detect.py [--gib 1] [--gib 4]`; files go to bench/_work/ (git-ignored).
By default two sizes, 1 and 4 GiB: the whole command at each size, and from the two the
steady-state throughput (what each further GiB costs) and the fixed start-up cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"
PY = sys.executable
GIB = 1 << 30

# LLaMA-7B tensor shapes; the layer count is chosen to reach the requested size.
D, INTER, VOCAB, HEADS = 4096, 11008, 32000, 32
SHARD_BYTES = 512 << 20
BLOCK = 1 << 22


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 codes, round to nearest even."""
    u = x.view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")


def layout(gib: float, vocab: int = VOCAB) -> list[tuple[str, tuple[int, ...], str]]:
    per_layer = 2 * (4 * D * D + 3 * D * INTER + 2 * D)
    fixed = 2 * (2 * vocab * D + D)
    layers = max(1, math.ceil((gib * GIB - fixed) / per_layer))
    tensors = [("model.embed_tokens.weight", (vocab, D), "BF16"), ("lm_head.weight", (vocab, D), "BF16")]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors += [(p + f"self_attn.{n}_proj.weight", (D, D), "BF16") for n in "qkvo"]
        tensors += [
            (p + "mlp.gate_proj.weight", (INTER, D), "BF16"),
            (p + "mlp.up_proj.weight", (INTER, D), "BF16"),
            (p + "mlp.down_proj.weight", (D, INTER), "BF16"),
            (p + "input_layernorm.weight", (D,), "BF16"),
            (p + "post_attention_layernorm.weight", (D,), "BF16"),
        ]
    tensors += [("model.norm.weight", (D,), "BF16"), ("model.rotary_emb.inv_freq", (D // HEADS // 2,), "F32")]
    return tensors


def _values(name: str, shape: tuple[int, ...], seed: int, derive_from: int | None) -> Iterator[np.ndarray]:
    """Blocks of float32 values of one tensor; `derive_from` makes it that seed's tensor plus
    a fine-tuning-sized perturbation (same blocks, then noise)."""
    n = math.prod(shape)
    tag = int.from_bytes(name.encode()[-8:].rjust(8, b"\0"), "little")
    if name.endswith("inv_freq"):
        yield (1.0 / 10000 ** (np.arange(0, 2 * n, 2) / (2 * n))).astype(np.float32)
        return
    base_seed = derive_from if derive_from is not None else seed
    rng = np.random.default_rng([base_seed, tag])
    noise = np.random.default_rng([seed, tag, 1]) if derive_from is not None else None
    norm = name.endswith("norm.weight")
    for start in range(0, n, BLOCK):
        k = min(BLOCK, n - start)
        x = rng.standard_normal(k, dtype=np.float32)
        x *= np.float32(0.1 if norm else 0.02)
        if norm:
            x += np.float32(1.0)
        if noise is not None:
            x += noise.standard_normal(k, dtype=np.float32) * np.float32(0.006 if not norm else 0.03)
        yield x


def write_model(folder: Path, gib: float, seed: int, derive_from: int | None = None, vocab: int = VOCAB) -> list[Path]:
    """A sharded bf16 safetensors model, written block by block (memory stays small)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = layout(gib, vocab)
    shards: list[list[tuple[str, tuple[int, ...], str]]] = [[]]
    size = 0
    for t in tensors:
        nbytes = math.prod(t[1]) * (4 if t[2] == "F32" else 2)
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += nbytes
    files, weight_map = [], {}
    for s, part in enumerate(shards):
        fname = f"model-{s + 1:05d}-of-{len(shards):05d}.safetensors"
        header, offset = {}, 0
        for name, shape, dtype in part:
            nbytes = math.prod(shape) * (4 if dtype == "F32" else 2)
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = fname
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        with open(folder / fname, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text)
            for name, shape, dtype in part:
                for block in _values(name, shape, seed, derive_from):
                    f.write((block if dtype == "F32" else _bf16(block)).astype("<f4" if dtype == "F32" else "<u2").tobytes())
        files.append(folder / fname)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": D,
        "intermediate_size": INTER, "num_hidden_layers": sum(1 for n, _, _ in tensors if n.endswith("q_proj.weight")),
        "num_attention_heads": HEADS, "vocab_size": vocab, "torch_dtype": "bfloat16",
    }, indent=1))
    return files


def _compile_bytecode() -> None:
    """Children run from compiled bytecode, as an installed program does, even where
    PYTHONDONTWRITEBYTECODE is set (`__pycache__` is git-ignored)."""
    subprocess.run([PY, "-m", "compileall", "-q", "engine", "detectors"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one child process, from its own rusage."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} … failed ({proc.returncode}): {err.strip()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def best(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, int]:
    results = [timed(cmd, env) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


WEIGHTS_ONLY = """
import sys
from detectors.base import DetectContext
from detectors.catalog import load_references
from detectors.model import open_model
from detectors.weights import WeightsDetector
with open_model(sys.argv[1]) as model:
    facts = WeightsDetector().detect(model, DetectContext(references=load_references(sys.argv[2])))
print(facts["components"][0]["match"]["relation"])
"""


def run(gib: float, runs: int, keep: bool, vocab: int = VOCAB) -> dict[str, float]:
    work = WORK / f"{gib:g}gib-{vocab}"
    shutil.rmtree(work, ignore_errors=True)
    catalog, model = work / "catalog", work / "model"
    t0 = time.perf_counter()
    for rid, seed in (("base", 1), ("other", 2)):
        ref = work / f"ref-{rid}"
        write_model(ref, gib, seed, vocab=vocab)
        subprocess.run([PY, "-m", "engine", "catalog", "add", str(ref), "--id", rid, "--origin", "US",
                        "--catalog", str(catalog)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        shutil.rmtree(ref)
    files = write_model(model, gib, seed=3, derive_from=1, vocab=vocab)
    made = time.perf_counter() - t0
    nbytes = sum(f.stat().st_size for f in files)
    names = [str(f) for f in files]
    subprocess.run(["cat", *names], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    floor, _ = best(["cat", *names], runs)
    sha, _ = best(["sha256sum", *names], runs)
    weights, weights_rss = best([PY, "-c", WEIGHTS_ONLY, str(model), str(catalog)], runs)
    out = work / "facts.json"
    detect, detect_rss = best([PY, "-m", "engine", "detect", str(model), "--catalog", str(catalog), "-o", str(out)],
                              runs)
    facts = json.loads(out.read_text())["facts"]
    relations = {c["name"]: (c["match"]["relation"], c["match"]["reference"]) for c in facts["components"]}
    fp_bytes = sum(p.stat().st_size for p in (catalog / "base").glob("weights.*"))
    gibs = nbytes / GIB
    row = {
        "gib": gibs, "floor": gibs / floor, "sha": gibs / sha, "weights": gibs / weights, "detect": gibs / detect,
        "weights_rss": weights_rss / 2**20, "detect_rss": detect_rss / 2**20, "fp_ratio": fp_bytes / nbytes,
    }
    print(f"\nmodel: {gibs:.2f} GiB in {len(files)} shards, vocabulary {vocab} (generated with references in {made:.0f} s)")
    print(f"relations: {relations}")
    print(f"{'':28s}{'GiB/s':>8s}{'/floor':>9s}{'/sha256':>9s}{'peak RSS':>11s}")
    print(f"{'read floor (cat, best of %d)' % runs:28s}{row['floor']:8.2f}")
    print(f"{'sha256sum':28s}{row['sha']:8.2f}{row['sha'] / row['floor']:9.2f}")
    print(f"{'weights detector alone':28s}{row['weights']:8.2f}{row['weights'] / row['floor']:9.2f}"
          f"{row['weights'] / row['sha']:9.2f}{row['weights_rss']:9.0f} MB")
    print(f"{'originality detect (all)':28s}{row['detect']:8.2f}{row['detect'] / row['floor']:9.2f}"
          f"{row['detect'] / row['sha']:9.2f}{row['detect_rss']:9.0f} MB")
    print(f"fingerprint: {fp_bytes / 2**20:.2f} MiB = {100 * row['fp_ratio']:.3f} % of the weights")
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, action="append", help="model size in GiB (repeatable; default 1 and 4)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each command; the best counts")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--vocab", type=int, default=VOCAB, help="vocabulary size (150k-token ones stress memory)")
    args = parser.parse_args()
    _compile_bytecode()
    rows = [run(g, args.runs, args.keep, args.vocab) for g in (args.gib or [1.0, 4.0])]
    startup, _ = best([PY, "-c", "import engine.cli, detectors.pipeline, detectors.weights"], args.runs)
    print(f"\ninterpreter start and imports alone: {startup:.2f} s")
    if len(rows) >= 2:
        # The fixed start-up cost cancels between two sizes: what each further GiB costs.
        a, b = sorted(rows, key=lambda r: r["gib"])[:: len(rows) - 1]
        floor = (a["floor"] + b["floor"]) / 2
        for key, label in (("weights", "weights detector"), ("detect", "originality detect")):
            rate = (b["gib"] - a["gib"]) / (b["gib"] / b[key] - a["gib"] / a[key])
            print(f"steady state, {label}: {rate:.2f} GiB/s = {rate / floor:.2f} x read floor")
        steady = rate / floor
        # time(size) = fixed + size / rate, so the whole command reaches a quarter of the
        # read floor once size / (fixed + size / rate) >= floor / 4.
        fixed = b["gib"] / b["detect"] - b["gib"] / rate  # `rate`: the whole command's, from the loop
        print(f"fixed cost of the whole command (start-up, exit; from the two sizes): {fixed:.2f} s")
        if rate > floor / 4:
            print(f"the whole command reaches 0.25 x read floor from about "
                  f"{fixed / (4 / floor - 1 / rate):.1f} GiB")
    if len(rows) >= 2:
        print(f"target >= 0.25 x read floor, throughput of `originality detect` (steady state): {steady:.2f} x, "
              f"{'met' if steady >= 0.25 else 'NOT met'}")
    rss = max(max(r["weights_rss"], r["detect_rss"]) for r in rows)
    print(f"peak RSS over all runs: {rss:.0f} MB (target <= 400 MB): {'met' if rss <= 400 else 'NOT met'}")
    for r in sorted(rows, key=lambda r: r["gib"]):
        ratio = r["detect"] / r["floor"]
        print(f"target >= 0.25 x read floor, whole `originality detect` (start-up included) on "
              f"{r['gib']:.2f} GiB: {ratio:.2f} x, {'met' if ratio >= 0.25 else 'NOT met'}")


if __name__ == "__main__":
    main()
