"""Evaluation speed: policy 2.0-draft over generated fact sheets, with explanations.

Times, in one run and over the same sheets:
  engine   - the compiled policy, every rule's outcome, message, witnesses and evidence
             (fact paths, values, detector, method) materialised;
  outcomes - the same, reading outcomes and messages only (evidence left unread);
  baseline - a hand-written plain-Python version of the same twelve rules producing the same
             outcomes and the same evidence paths and values;
  tight    - the same rules hand-written for outcomes alone, loops fused: the floor plain
             Python sets for deciding them, without explaining anything;
  floor    - the least any evaluator written in Python pays for these explanations: the
             tight outcomes, plus building the explanation objects alone (each fact read
             as an evidence record, each rule's evidence and result) from parts worked
             out beforehand, with no message and no noting of what each rule read.
The engine's outcomes are checked against both hand-written versions on every sheet.

    python bench/eval.py [--sheets 10000] [--repeat 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.catalogue import load_fact_catalogue  # noqa: E402
from engine.evaluator import Evidence, prepare_policy  # noqa: E402
from engine.facts import FACTS_SCHEMA_ID, validate_fact_sheet  # noqa: E402
from engine.loader import load_policy  # noqa: E402

POLICY = ROOT / "policies" / "msit-originality" / "2.0-draft.policy"
RELATIONS = ["independent"] * 6 + ["identical", "derived", "unknown"]
KINDS = ["language_model", "vision_encoder", "audio_encoder", "projector", "head"]
LICENSES = ["own", "apache-2.0", "mit", "CC-BY-NC-4.0", "llama-3.1-community"]


def generate_facts(rng: random.Random) -> dict:
    """A submission as an evaluation round sees them: most built from scratch with a
    manifest and a trail, about a third with one to three problems."""
    n = rng.randint(1, 4)
    components, declared = [], []
    for i in range(n):
        kind = "language_model" if i == 0 else rng.choice(KINDS[1:])
        name = f"{kind}_{i}"
        components.append({
            "name": name, "kind": kind, "parameters": rng.randint(10**5, 10**9),
            "reinitialized": kind != "language_model" and rng.random() < 0.5,
            "match": {"reference": rng.choice(["llama-3-8b", "siglip-so400m", "whisper-v3", "qwen2-vl-7b"]),
                      "origin": rng.choice(["US", "US", "CN"]), "relation": "independent",
                      "similarity": round(rng.random() * 0.05, 4), "identical_fraction": 0.0,
                      "p_value": round(0.01 + rng.random() * 0.99, 6), "method": "permutation-test"}})
        declared.append({"name": name, "source": "own", "member": rng.choice(["Hanbit Labs", "Seoul Vision"]),
                         "license": rng.choice(["own", "apache-2.0", "mit"]), "reinitialized": True, "frozen": False})
    facts: dict = {
        "components": components,
        "model": {"parameters": sum(c["parameters"] for c in components)},
        "declared": {"present": True, "from_scratch": True, "init": {"method": "random", "seed": rng.randint(0, 10**6)},
                     "components": declared},
        "trail": {"present": True, "checkpoints": rng.randint(2, 9), "committed": rng.random() < 0.8,
                  "commitment_matches": True, "initial_random": True, "continuous": True,
                  "ends_at_release": True, "depends_on_init": True},
        "tokenizer": {"present": True, "vocab_overlap": round(rng.random() * 0.6, 4), "reference": "llama-3-8b",
                      "origin": "US"},
        "card": {"present": True, "metadata": True, "base_model": [], "base_model_relation": None,
                 "license": "apache-2.0"},
    }
    if rng.random() < 0.35:
        for problem in rng.sample(PROBLEMS, rng.randint(1, 3)):
            problem(rng, facts)
    return facts


def _frozen_encoder(rng, facts):
    c = rng.choice(facts["components"])
    c["match"].update(relation="identical", identical_fraction=1.0, similarity=1.0, p_value=0.0, method="digest")
    c["reinitialized"] = False
    if "declared" in facts and rng.random() < 0.7:
        d = next(d for d in facts["declared"]["components"] if d["name"] == c["name"])
        d.update(source="external", reference=c["match"]["reference"], reinitialized=False, frozen=True)


def _fine_tuned(rng, facts):
    c = facts["components"][0]
    c["match"].update(relation="derived", similarity=0.9, p_value=0.0)


def _inconclusive(rng, facts):
    rng.choice(facts["components"])["match"]["relation"] = "unknown"


def _no_manifest(rng, facts):
    del facts["declared"]


def _no_trail(rng, facts):
    facts["trail"] = {"present": False}


def _broken_trail(rng, facts):
    trail = facts["trail"]
    if trail.get("present"):
        trail[rng.choice(["initial_random", "continuous", "depends_on_init"])] = False
        trail.pop(rng.choice(["commitment_matches", "ends_at_release"]), None)


def _licence(rng, facts):
    if "declared" in facts:
        rng.choice(facts["declared"]["components"])["license"] = rng.choice(LICENSES[3:])


def _tokenizer(rng, facts):
    facts["tokenizer"]["vocab_overlap"] = round(0.9 + rng.random() * 0.1, 4)


def _card_names_a_base(rng, facts):
    facts["card"].update(base_model=["meta-llama/Meta-Llama-3-8B"], base_model_relation="finetune")


def _undetected_facts(rng, facts):
    del rng.choice(facts["components"])["match"]["relation"]


PROBLEMS = [_frozen_encoder, _fine_tuned, _inconclusive, _no_manifest, _no_trail, _broken_trail, _licence,
            _tokenizer, _card_names_a_base, _undetected_facts]


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


# -- the same rules, written by hand -------------------------------------------------

DOMESTIC = ("KR",)
BACKBONE = ("language_model", "embeddings", "head")
UNCONSTRAINED = ("own", "apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0")
OWN_REFERENCES: tuple = ()


def _and(*vals):
    return False if False in vals else (None if None in vals else True)


def _or(*vals):
    return True if True in vals else (None if None in vals else False)


def _eq(a, b):
    return None if a is None else a == b


def _in(a, coll):
    return None if a is None else a in coll


def _decided(v):
    return None if v == "unknown" else v


def baseline(facts: dict) -> dict:
    """rule id -> (outcome, [(path, value), ...]) for policy 2.0-draft, by hand."""
    out = {}
    comps = facts.get("components")
    decl = facts.get("declared") or {}
    dcomps = decl.get("components")
    trail = facts.get("trail") or {}
    tok = facts.get("tokenizer") or {}

    def quantify(kind, items, name, item_value, forbid):
        if items is None:
            return "indeterminate", []
        evidence, vals = [], []
        for i, item in enumerate(items):
            ev = []
            vals.append(item_value(item, f"{name}[{i}]", ev))
            evidence.append(ev)
        if kind == "any":
            value = _or(*vals)
        else:
            value = _and(*vals)
        outcome = "indeterminate" if value is None else ("fail" if value is forbid else "pass")
        if outcome == "pass":
            chosen = [e for ev in evidence for e in ev]
        else:
            want = None if outcome == "indeterminate" else (kind == "any")
            chosen = [e for v, ev in zip(vals, evidence) if v is want for e in ev]
        return outcome, chosen

    def read(ev, path, item, *keys):
        v = item
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        ev.append((path + "." + ".".join(keys), v))
        return v

    if comps is None:
        out["backbone_found"] = ("indeterminate", [("components", None)])
    else:
        ev, kinds = [], []
        for i, c in enumerate(comps):
            kind = c.get("kind")
            ev.append((f"components[{i}].kind", kind))
            kinds.append(None if kind is None else kind in BACKBONE)
        found = None if None in kinds else sum(kinds) >= 1
        out["backbone_found"] = ({True: "pass", False: "fail", None: "indeterminate"}[found], ev)

    def overseas(c, p, ev):
        f = _in(read(ev, p, c, "kind"), BACKBONE)
        if f is False:
            return False
        derived = _in(read(ev, p, c, "match", "relation"), ("derived", "identical"))
        if derived is False:
            return False
        origin = read(ev, p, c, "match", "origin")
        return _and(f, derived, None if origin is None else origin not in DOMESTIC)
    out["no_overseas_derivative"] = quantify("any", comps, "components", overseas, True)

    def scratch(c, p, ev):
        f = _in(read(ev, p, c, "kind"), BACKBONE)
        if f is False:
            return True
        return _or(None if f is None else not f, _eq(_decided(read(ev, p, c, "match", "relation")), "independent"))
    out["pretrained_from_scratch"] = quantify("all", comps, "components", scratch, False)

    def external(c, p, ev):
        ref = read(ev, p, c, "match", "reference")
        f = None if ref is None else ref not in OWN_REFERENCES
        if f is False:
            return False
        return _and(f, _in(_decided(read(ev, p, c, "match", "relation")), ("identical", "derived")))
    out["external_weights_reinitialized"] = quantify("any", comps, "components", external, True)

    def agree(c, p, ev):
        if dcomps is None:
            ev.append(("declared.components", None))
            return None
        vals = []
        for j, d in enumerate(dcomps):
            dp = f"declared.components[{j}]"
            f = _eq(read(ev, dp, d, "name"), read(ev, p, c, "name"))
            if f is False:
                vals.append(True)
                continue
            a = _or(_eq(read(ev, dp, d, "source"), "own"), _eq(read(ev, dp, d, "reinitialized"), True))
            b = True if a is False else _eq(_decided(read(ev, p, c, "match", "relation")), "independent")
            imp = _or(None if a is None else not a, b)
            vals.append(_or(None if f is None else not f, imp))
        return _and(*vals)
    out["declared_components_agree"] = quantify("all", comps, "components", agree, False)

    def declared_reuse(c, p, ev):
        f = _in(_decided(read(ev, p, c, "match", "relation")), ("identical", "derived"))
        if f is False:
            return True
        if dcomps is None:
            ev.append(("declared.components", None))
            return _or(None if f is None else not f, None)
        vals = []
        for j, d in enumerate(dcomps):
            dp = f"declared.components[{j}]"
            g = _eq(read(ev, dp, d, "name"), read(ev, p, c, "name"))
            if g is False:
                vals.append(False)
                continue
            ref = read(ev, p, c, "match", "reference")
            body = _and(_eq(read(ev, dp, d, "source"), "external"),
                        None if ref is None else _eq(read(ev, dp, d, "reference"), ref))
            vals.append(_and(g, body))
        return _or(None if f is None else not f, _or(*vals))
    out["detected_reuse_declared"] = quantify("all", comps, "components", declared_reuse, False)

    ev = []
    fs = decl.get("from_scratch")
    ev.append(("declared.from_scratch", fs))
    base = decl.get("base_model")
    ev.append(("declared.base_model", base))
    method = (decl.get("init") or {}).get("method")
    ev.append(("declared.init.method", method))
    value = _and(_eq(fs, True), base is None, (method if method is not None else "random") == "random")
    out["declared_from_scratch"] = ({True: "pass", False: "fail", None: "indeterminate"}[value], ev)

    ev = []
    keys = ["present", "checkpoints", "initial_random", "continuous", "ends_at_release", "depends_on_init"]
    vals = []
    for k in keys:
        v = trail.get(k)
        ev.append((f"trail.{k}", v))
        vals.append(None if v is None else (v >= 2 if k == "checkpoints" else v is True))
        if vals[-1] is False:
            break
    value = _and(*vals)
    out["from_scratch_evidence"] = ({True: "pass", False: "fail", None: "indeterminate"}[value], ev)

    ev = []
    committed, matches = trail.get("committed"), trail.get("commitment_matches")
    ev.append(("trail.committed", committed))
    value = _eq(committed, True)
    if value is not False:
        ev.append(("trail.commitment_matches", matches))
        value = _and(value, _eq(matches, True))
    out["step0_committed"] = ({True: "pass", False: "fail", None: "indeterminate"}[value], ev)

    def licence(d, p, ev):
        lic = read(ev, p, d, "license")
        return (lic if lic is not None else "own").lower() not in UNCONSTRAINED
    out["no_license_constraints"] = quantify("any", dcomps, "declared.components", licence, True)

    ev = []
    overlap, origin = tok.get("vocab_overlap"), tok.get("origin")
    ev.append(("tokenizer.vocab_overlap", overlap))
    a = None if overlap is None else overlap >= 0.9
    value = a
    if a is not False:
        ev.append(("tokenizer.origin", origin))
        value = _and(a, None if origin is None else origin not in DOMESTIC)
    out["tokenizer_reuse"] = ({True: "fail", False: "pass", None: "indeterminate"}[value], ev)

    bases = (facts.get("card") or {}).get("base_model")
    value = None if bases is None else len(bases) > 0
    out["card_names_no_base_model"] = ({True: "fail", False: "pass", None: "indeterminate"}[value],
                                       [("card.base_model", bases)])
    return out


# -- the same rules, tight: outcomes only -------------------------------------------
# No evidence, no messages, loops fused: the floor that plain Python sets for deciding
# these rules, against which the cost of explaining them can be read.

P, F, I = "pass", "fail", "indeterminate"
_BACKBONE, _DOMESTIC, _FREE, _OWN = frozenset(BACKBONE), frozenset(DOMESTIC), frozenset(UNCONSTRAINED), frozenset(
    OWN_REFERENCES)


def _kleene_and(a, b):
    return False if a is False or b is False else (None if a is None or b is None else True)


def _outcome(value, forbid=False):
    if value is None:
        return I
    return F if value is forbid else P


def tight(facts: dict) -> dict:
    """rule id -> outcome for policy 2.0-draft, outcomes only."""
    comps = facts.get("components")
    decl = facts.get("declared")
    dcomps = decl.get("components") if decl is not None else None
    trail = facts.get("trail") or {}
    tok = facts.get("tokenizer") or {}
    out = {}
    if comps is None:
        for rule in ("backbone_found", "no_overseas_derivative", "pretrained_from_scratch",
                     "external_weights_reinitialized", "declared_components_agree", "detected_reuse_declared"):
            out[rule] = I
    else:
        backbones = unknown_kinds = 0
        overseas = scratch = external = agree = reuse = False  # each: a deciding item found
        overseas_u = scratch_u = external_u = agree_u = reuse_u = False  # an undecided item
        for c in comps:
            kind, match, name = c.get("kind"), c.get("match") or {}, c.get("name")
            rel, ref = match.get("relation"), match.get("reference")
            decided = None if rel == "unknown" else rel
            is_backbone = None if kind is None else kind in _BACKBONE
            if is_backbone is None:
                unknown_kinds += 1
            else:
                backbones += is_backbone
            if is_backbone is not False:  # any backbone: reused and overseas
                origin = match.get("origin")
                v = _kleene_and(None if rel is None else rel in ("derived", "identical"),
                                None if origin is None else origin not in _DOMESTIC)
                v = _kleene_and(is_backbone, v)
                overseas, overseas_u = overseas or v is True, overseas_u or v is None
                # all backbones: independent
                v = None if decided is None else decided == "independent"
                v = True if v is True else (None if is_backbone is None or v is None else False)
                scratch, scratch_u = scratch or v is False, scratch_u or v is None
            outside = None if ref is None else ref not in _OWN
            if outside is not False:  # any external: reused
                v = _kleene_and(outside, None if decided is None else decided in ("identical", "derived"))
                external, external_u = external or v is True, external_u or v is None
            if dcomps is None:
                agree_u = True
            else:
                for d in dcomps:  # all declared with this name: own or reset implies independent
                    same = None if d.get("name") is None or name is None else d.get("name") == name
                    if same is False:
                        continue
                    source = d.get("source")
                    own = None if source is None else source == "own"
                    if own is not True:
                        own = True if d.get("reinitialized") is True else own
                    if own is False:
                        v = True
                    else:
                        ind = None if decided is None else decided == "independent"
                        v = True if ind is True else (None if ind is None or own is None else False)
                    v = True if v is True else (None if same is None or v is None else False)
                    agree, agree_u = agree or v is False, agree_u or v is None
            reused = None if decided is None else decided in ("identical", "derived")
            if reused is not False:  # every reuse declared as external, with its reference
                if dcomps is None:
                    found = None
                else:
                    found = False
                    for d in dcomps:
                        same = None if d.get("name") is None or name is None else d.get("name") == name
                        if same is False:
                            continue
                        source, dref = d.get("source"), d.get("reference")
                        v = _kleene_and(None if source is None else source == "external",
                                        None if dref is None or ref is None else dref == ref)
                        v = _kleene_and(same, v)
                        if v is True:
                            found = True
                            break
                        if v is None:
                            found = None
                v = True if found is True else (None if reused is None or found is None else False)
                reuse, reuse_u = reuse or v is False, reuse_u or v is None
        out["backbone_found"] = P if backbones else (I if unknown_kinds else F)
        out["no_overseas_derivative"] = F if overseas else (I if overseas_u else P)
        out["pretrained_from_scratch"] = F if scratch else (I if scratch_u else P)
        out["external_weights_reinitialized"] = F if external else (I if external_u else P)
        out["declared_components_agree"] = F if agree else (I if agree_u else P)
        out["detected_reuse_declared"] = F if reuse else (I if reuse_u else P)
    if decl is None:
        out["declared_from_scratch"] = I
    else:
        scratch_declared = decl.get("from_scratch")
        method = (decl.get("init") or {}).get("method")
        v = _kleene_and(None if scratch_declared is None else scratch_declared is True,
                        decl.get("base_model") is None and (method if method is not None else "random") == "random")
        out["declared_from_scratch"] = _outcome(v)
    v = True
    for key in ("present", "checkpoints", "initial_random", "continuous", "ends_at_release", "depends_on_init"):
        x = trail.get(key)
        v = _kleene_and(v, None if x is None else (x >= 2 if key == "checkpoints" else x is True))
        if v is False:
            break
    out["from_scratch_evidence"] = _outcome(v)
    committed, matches = trail.get("committed"), trail.get("commitment_matches")
    out["step0_committed"] = _outcome(_kleene_and(None if committed is None else committed is True,
                                                  None if matches is None else matches is True))
    if dcomps is None:
        out["no_license_constraints"] = I
    else:
        constrained = any((d.get("license") or "own").lower() not in _FREE for d in dcomps)
        out["no_license_constraints"] = F if constrained else P
    overlap, origin = tok.get("vocab_overlap"), tok.get("origin")
    out["tokenizer_reuse"] = _outcome(_kleene_and(None if overlap is None else overlap >= 0.9,
                                                  None if origin is None else origin not in _DOMESTIC), forbid=True)
    bases = (facts.get("card") or {}).get("base_model")
    out["card_names_no_base_model"] = _outcome(None if bases is None else len(bases) > 0, forbid=True)
    return out


# -- the least the explanations cost ------------------------------------------------


def explanation_parts(program, sheets) -> list:
    """For each sheet, what its explanations are made of, worked out beforehand by the
    engine: every fact read (path, value, detector, method), once, and for each rule
    its outcome, message, witnesses and the paths of its evidence."""
    parts = []
    for s in sheets:
        records: dict = {}
        rules = []
        for r in program.evaluate(s).rules:
            for e in r.evidence:
                records[e.path] = tuple(e)
            rules.append((r.id, r.outcome, r.message, r.witnesses, tuple(e.path for e in r.evidence)))
        parts.append((tuple(records.values()), tuple(rules)))
    return parts


def build_explanations(parts, evidence) -> None:
    """Build the explanation objects from their parts, as leanly as Python allows: an
    evidence record per fact read, and per rule a plain tuple holding its evidence."""
    new = tuple.__new__
    for records, rules in parts:
        shown = {}
        for record in records:
            shown[record[0]] = new(evidence, record)
        get = shown.__getitem__
        tuple([(rule, outcome, message, witnesses, tuple(map(get, paths)))
               for rule, outcome, message, witnesses, paths in rules])


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--sheets", type=int, default=10_000)
    args.add_argument("--repeat", type=int, default=3)
    args.add_argument("--seed", type=int, default=7)
    opts = args.parse_args()

    catalogue = load_fact_catalogue()
    program = prepare_policy(load_policy(POLICY, catalogue))
    rng = random.Random(opts.seed)
    detectors = [{"name": det, "version": "1.0.0", "emits": sorted(k for k, o in catalogue.owners.items() if o == det)}
                 for det in sorted(set(catalogue.owners.values()))]
    sheets = [validate_fact_sheet({"schema": FACTS_SCHEMA_ID, "subject": {"name": f"m{i}"},
                                   "detectors": detectors, "facts": generate_facts(rng)}, f"m{i}", catalogue)
              for i in range(opts.sheets)]

    # Same outcomes, sheet by sheet, before anything is timed.
    mismatches = 0
    verdicts = {"pass": 0, "fail": 0, "indeterminate": 0}
    for s in sheets:
        ev = program.evaluate(s)
        verdicts[ev.verdict] += 1
        want, fast = baseline(s.facts), tight(s.facts)
        for r in ev.rules:
            if r.outcome != want[r.id][0] or r.outcome != fast[r.id]:
                mismatches += 1
    if mismatches:
        raise SystemExit(f"the engine and the hand-written rules disagree on {mismatches} rule outcomes")

    def run_engine():
        for s in sheets:
            for r in program.evaluate(s).rules:
                r.evidence  # noqa: B018 - materialise the explanation
                r.message  # noqa: B018

    def run_outcomes():
        for s in sheets:
            program.evaluate(s)

    def run_baseline():
        for s in sheets:
            baseline(s.facts)

    def run_tight():
        for s in sheets:
            tight(s.facts)

    def best(fn):
        times = []
        for _ in range(opts.repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times) / len(sheets) * 1e6

    parts = explanation_parts(program, sheets)

    def run_build():
        build_explanations(parts, Evidence)

    base = best(run_baseline)
    floor = best(run_tight)
    build = best(run_build)
    engine = best(run_engine)
    outcomes = best(run_outcomes)
    rules = len(program.policy.rules)
    print(f"policy {program.policy.id} {program.policy.version}: {rules} rules, {len(sheets)} generated fact sheets "
          f"(verdicts: {verdicts['pass']} pass, {verdicts['fail']} fail, {verdicts['indeterminate']} indeterminate)")
    print("outcomes agree with both hand-written versions on every sheet")
    print(f"{'engine, with evidence':32} {engine:8.1f} µs/sheet   ratio to hand-written {engine / base:5.2f}")
    print(f"{'engine, outcomes and messages':32} {outcomes:8.1f} µs/sheet   ratio to hand-written {outcomes / base:5.2f}")
    print(f"{'  evidence alone (the difference)':32} {engine - outcomes:8.1f} µs/sheet")
    print(f"{'hand-written plain Python':32} {base:8.1f} µs/sheet")
    print(f"{'  tight, outcomes only':32} {floor:8.1f} µs/sheet   (no evidence, no messages: "
          f"the engine's outcomes take {outcomes / floor:.1f}x)")
    print(f"floor for any evaluator in Python: {floor + build:.1f} µs/sheet = the tight outcomes {floor:.1f} + "
          f"building the explanation objects alone {build:.1f} (before messages, and before noting what each rule read)")
    print(f"throughput: {1e6 / engine:,.0f} sheets/s with evidence (target ≤ 25 µs/sheet"
          + (f": beneath that floor)" if floor + build > 25 else ")"))


if __name__ == "__main__":
    main()
