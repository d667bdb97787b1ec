"""Diff speed: `originality diff` between 1.0 and 2.0-draft over archived fact sheets.

Writes N generated fact sheets (the generator of bench/eval.py) to a folder, then times
in the same run:
  diff     - the whole command, `originality diff --format json` in a fresh process;
  baseline - reading and parsing the same files with json.load in a fresh process.

    python bench/diff.py [--sheets 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies" / "msit-originality"


def _generator():
    spec = importlib.util.spec_from_file_location("bench_eval", ROOT / "bench" / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_facts


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} … failed: {done.stderr.strip()}")
    return elapsed, done.stdout


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--sheets", type=int, default=10_000)
    args.add_argument("--seed", type=int, default=7)
    opts = args.parse_args()

    generate = _generator()
    rng = random.Random(opts.seed)
    detectors = [{"name": "card", "version": "1.0.0", "emits": ["card"]},
                 {"name": "config", "version": "1.0.0", "emits": ["config"]},
                 {"name": "manifest", "version": "1.0.0", "emits": ["declared"]},
                 {"name": "tokenizer", "version": "1.0.0", "emits": ["tokenizer"]},
                 {"name": "trail", "version": "1.0.0", "emits": ["trail"]},
                 {"name": "weights", "version": "1.0.0", "emits": ["components", "model"]}]
    with tempfile.TemporaryDirectory(prefix="originality-diff-") as tmp:
        folder = Path(tmp)
        for i in range(opts.sheets):
            sheet = {"schema": "originality.facts/1", "subject": {"name": f"model-{i:05d}"},
                     "detectors": detectors, "facts": generate(rng)}
            (folder / f"model-{i:05d}.json").write_text(json.dumps(sheet, sort_keys=True, indent=2))
        python = sys.executable
        read_code = ("import json,sys,pathlib\n"
                     "n=0\n"
                     "for p in sorted(pathlib.Path(sys.argv[1]).glob('*.json')):\n"
                     "    json.loads(p.read_bytes()); n+=1\n"
                     "print(n)")
        base, out = timed([python, "-c", read_code, str(folder)])
        assert int(out) == opts.sheets
        diff, out = timed([python, "-m", "engine", "diff", "--old", str(POLICIES / "1.0.policy"),
                           "--new", str(POLICIES / "2.0-draft.policy"), str(folder), "--format", "json"])
        result = json.loads(out)
    s = result["summary"]
    print(f"{s['sheets']} fact sheets, {s['verdicts_changed']} change verdict from 1.0 to 2.0-draft")
    print(f"{'originality diff (whole command)':36} {diff:6.2f} s   {s['sheets'] / diff:8,.0f} sheets/s")
    print(f"{'json.load of the same files':36} {base:6.2f} s   ratio diff/read {diff / base:5.2f}")


if __name__ == "__main__":
    main()
