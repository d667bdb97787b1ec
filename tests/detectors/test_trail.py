"""The trail detector on genuine and forged checkpoint trails of a tiny trained model."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as np_save
from safetensors.torch import save_file
from torch import nn

from detectors.base import DetectContext, InputError
from detectors.model import open_model
from detectors.trail import (
    INIT_FLOOR,
    LINK_THRESHOLD,
    TrailDetector,
    centred_similarity,
    judge_init,
    matrix_statistics,
    weights_digest,
)

VOCAB, WIDTH, INIT_STD = 64, 64, 0.02
STEPS, EVERY, BATCH = 200, 50, 32
CONFIG = {"model_type": "tiny", "initializer_range": INIT_STD, "num_hidden_layers": 1}
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

State = dict[str, torch.Tensor]


class Tiny(nn.Module):
    """Embedding, one pre-norm MLP block, final norm and head: enough to learn a bigram."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.ln = nn.LayerNorm(WIDTH)
        self.fc1 = nn.Linear(WIDTH, 4 * WIDTH)
        self.fc2 = nn.Linear(4 * WIDTH, WIDTH)
        self.ln_f = nn.LayerNorm(WIDTH)
        self.head = nn.Linear(WIDTH, VOCAB, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        h = h + self.fc2(torch.relu(self.fc1(self.ln(h))))
        return self.head(self.ln_f(h))


def initialise(model: nn.Module, seed: int) -> None:
    # The usual LM recipe: normal(0, initializer_range) matrices, unit gains, zero biases.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 2:
                param.copy_(torch.randn(param.shape, generator=gen) * INIT_STD)
            elif name.startswith("ln") and name.endswith("weight"):
                param.fill_(1.0)
            else:
                param.zero_()


def snapshot(model: nn.Module) -> State:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def train(
    seed: int, start: State | None = None, steps: int = STEPS, shift: int = 1
) -> dict[int, State]:
    """Real AdamW steps on noisy `y = 3x + shift mod V`; a snapshot every EVERY steps."""
    torch.manual_seed(seed)
    model = Tiny()
    initialise(model, seed)
    if start is not None:
        model.load_state_dict(start)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed + 1000)
    x = torch.randint(0, VOCAB, (steps * BATCH,), generator=gen)
    y = (3 * x + shift) % VOCAB
    noisy = torch.rand(x.shape, generator=gen) < 0.1
    y = torch.where(noisy, torch.randint(0, VOCAB, x.shape, generator=gen), y)
    out = {0: snapshot(model)}
    for step in range(1, steps + 1):
        batch = slice((step - 1) * BATCH, step * BATCH)
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % EVERY == 0:
            out[step] = snapshot(model)
    return out


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[int, State]]:
    torch.set_num_threads(2)
    own = train(seed=0)
    foreign = train(seed=1)
    return {
        "own": own,
        "foreign": foreign,
        # Continued training of the own run, as a release after the last checkpoint.
        "continued": train(seed=2, start=own[STEPS], steps=EVERY),
        # A fine-tune of the foreign model on another task: what a forger would ship.
        "finetune": train(seed=3, start=foreign[STEPS], shift=5),
    }


def write_model(folder: Path, state: State, config: dict | None = CONFIG) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))


def write_trail(
    root: Path, steps: dict[int, State], release: State, *, commit: bool = True
) -> Path:
    write_model(root, release)
    for step, state in steps.items():
        write_model(root / "checkpoints" / f"step-{step}", state)
    if commit and 0 in steps:
        with open_model(root / "checkpoints" / "step-0") as step0:
            digest = weights_digest(step0)
        commitment = {"seed": 0, "init": "normal(0, 0.02)", "step0_digest": digest}
        (root / "checkpoints" / "commitment.json").write_text(json.dumps(commitment))
    return root


def detect(root: Path) -> dict:
    with open_model(root) as model:
        facts = TrailDetector().detect(model, DetectContext())
    assert set(facts) == {"trail"}
    json.dumps(facts, allow_nan=False)  # the fact sheet is plain JSON
    return facts["trail"]


def test_declared_facts_are_the_architecture_table():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("`trail` emits `trail`", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(trail\.[a-z0-9_]+)` \| ([a-z\[\]]+) \| (.+?) \|$", section, re.MULTILINE)
    assert len(rows) == 12
    declared = [(d.path, d.type, d.doc) for d in TrailDetector.facts]
    assert declared == rows
    detector = TrailDetector()
    assert (detector.name, detector.version, detector.emits) == ("trail", "1.2.0", ("trail",))


def test_registered_as_entry_point():
    found = [ep for ep in entry_points(group="originality.detectors") if ep.name == "trail"]
    assert found and found[0].load() is TrailDetector


def test_genuine_trail(tmp_path, runs):
    own = runs["own"]
    root = write_trail(tmp_path / "genuine", own, own[STEPS])
    facts = detect(root)
    assert facts["present"] is True
    assert facts["checkpoints"] == STEPS // EVERY + 1
    assert facts["committed"] is True
    assert facts["commitment_matches"] is True
    assert facts["initial_random"] is True
    assert abs(facts["initial_kurtosis"]) < 0.2
    assert facts["continuous"] is True
    assert facts["min_link_similarity"] > 0.8
    assert facts["ends_at_release"] is True
    assert facts["init_similarity"] > 0.4
    assert facts["depends_on_init"] is True
    assert facts["step0_regenerated"] is None  # committed to an init of its own, not the recipe


def test_release_trained_past_the_last_checkpoint_continues_it(tmp_path, runs):
    root = write_trail(tmp_path / "continued", runs["own"], runs["continued"][EVERY])
    facts = detect(root)
    assert facts["ends_at_release"] is True
    assert facts["depends_on_init"] is True


def test_forged_trail_starting_from_a_trained_foreign_model(tmp_path, runs):
    # Step 0 is the foreign model; the trail is an honest record of fine-tuning it.
    finetune = runs["finetune"]
    root = write_trail(tmp_path / "forged", finetune, finetune[STEPS])
    facts = detect(root)
    assert facts["commitment_matches"] is True  # committing to a foreign step 0 is easy
    assert facts["initial_random"] is False
    assert facts["initial_kurtosis"] is not None


def test_forged_step0_with_reset_norms_is_still_not_random(tmp_path, runs):
    # Resetting gains and biases does not restore the declared init std of trained matrices.
    forged = {k: v.clone() for k, v in runs["finetune"][0].items()}
    for name, value in forged.items():
        if name.startswith("ln"):
            value.fill_(1.0 if name.endswith("weight") else 0.0)
    write_model(tmp_path / "step0", forged)
    with open_model(tmp_path / "step0") as model:
        report = judge_init(model, [INIT_STD])
    assert report.random is False
    assert any("declared init std" in p for p in report.problems)
    assert not any("norm" in p for p in report.problems)


def test_fresh_step0_grafted_onto_a_foreign_finetune(tmp_path, runs):
    # A real random step 0, then the checkpoints of a foreign model's fine-tune.
    finetune = runs["finetune"]
    steps = {0: runs["own"][0]} | {s: state for s, state in finetune.items() if s > 0}
    root = write_trail(tmp_path / "grafted", steps, finetune[STEPS])
    facts = detect(root)
    assert facts["initial_random"] is True
    assert facts["continuous"] is False
    assert facts["min_link_similarity"] < LINK_THRESHOLD
    assert facts["ends_at_release"] is True
    assert abs(facts["init_similarity"]) < 0.05
    assert facts["depends_on_init"] is False


def test_trail_interpolated_from_a_fresh_step0_to_a_foreign_model(tmp_path, runs):
    # The forger's smooth path: a real random step 0, then checkpoints that blend it into
    # a foreign model (trained, or a rotated copy: the weights need not resemble it). Each
    # link looks like training; the release does not depend on the start.
    start, target = runs["own"][0], runs["foreign"][STEPS]
    steps = {0: start} | {
        s: {k: (1 - s / STEPS) * start[k] + (s / STEPS) * target[k] for k in start}
        for s in range(EVERY, STEPS + 1, EVERY)
    }
    facts = detect(write_trail(tmp_path / "blend", steps, target))
    assert facts["initial_random"] is True
    assert facts["commitment_matches"] is True
    assert facts["ends_at_release"] is True
    assert facts["depends_on_init"] is False


def test_nan_and_infinite_weights_are_judged_not_fatal(tmp_path, runs):
    # No initialiser makes NaN; elsewhere a few of them must not turn a similarity into
    # NaN (a fact sheet JSON cannot hold) nor make numpy warn the user.
    own = runs["own"]
    steps = {k: {n: v.clone() for n, v in state.items()} for k, state in own.items()}
    release = {n: v.clone() for n, v in own[STEPS].items()}
    steps[0]["fc1.weight"][0, 0] = float("nan")
    steps[50]["fc2.weight"][:, 3] = float("inf")
    release["head.weight"][2] = -float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        facts = detect(write_trail(tmp_path / "nan", steps, release))
    assert facts["initial_random"] is False
    assert (facts["continuous"], facts["ends_at_release"], facts["depends_on_init"]) == (True, True, True)
    with open_model(tmp_path / "nan" / "checkpoints" / "step-0") as step0:
        assert any("1 NaN or infinite values" in p for p in judge_init(step0, [INIT_STD]).problems)


def test_commitment_to_another_step0_does_not_match(tmp_path, runs):
    root = write_trail(tmp_path / "m", runs["own"], runs["own"][STEPS])
    with open_model(root / "checkpoints" / "step-50") as other:
        digest = weights_digest(other)
    path = root / "checkpoints" / "commitment.json"
    path.write_text(json.dumps({"seed": 0, "init": "normal", "step0_digest": digest}))
    assert detect(root)["commitment_matches"] is False


def test_checkpoint_from_another_run_breaks_the_trail(tmp_path, runs):
    steps = dict(runs["own"])
    steps[100] = runs["foreign"][100]
    facts = detect(write_trail(tmp_path / "gap", steps, runs["own"][STEPS]))
    assert facts["continuous"] is False
    assert facts["min_link_similarity"] < 0.05
    assert facts["ends_at_release"] is True


def test_shuffled_checkpoints_break_the_trail(tmp_path, runs):
    steps = dict(runs["own"])
    steps[50], steps[150] = steps[150], steps[50]
    facts = detect(write_trail(tmp_path / "shuffled", steps, runs["own"][STEPS]))
    # Neighbours stay similar; the order of drift from step 0 gives it away.
    assert facts["min_link_similarity"] > LINK_THRESHOLD
    assert facts["continuous"] is False


def test_repeated_checkpoint_is_no_training_step(tmp_path, runs):
    steps = dict(runs["own"])
    steps[50] = steps[0]
    assert detect(write_trail(tmp_path / "copy", steps, runs["own"][STEPS]))["continuous"] is False


def test_release_not_continuing_the_trail(tmp_path, runs):
    facts = detect(write_trail(tmp_path / "other", runs["own"], runs["foreign"][STEPS]))
    assert facts["continuous"] is True
    assert facts["ends_at_release"] is False
    assert abs(facts["init_similarity"]) < 0.05
    assert facts["depends_on_init"] is False


def test_thresholds_separate_own_from_independent(tmp_path, runs):
    # The calibration, measured: own links and own init sit far above the thresholds,
    # independent seeds far below.
    own, foreign = runs["own"], runs["foreign"]
    states = {
        "a0": own[0],
        "a50": own[EVERY],
        "aN": own[STEPS],
        "b0": foreign[0],
        "bN": foreign[STEPS],
    }
    for name, state in states.items():
        write_model(tmp_path / name, state)
    with (
        open_model(tmp_path / "a0") as a0,
        open_model(tmp_path / "a50") as a50,
        open_model(tmp_path / "aN") as an,
        open_model(tmp_path / "b0") as b0,
        open_model(tmp_path / "bN") as bn,
    ):
        first_link = centred_similarity(a50, a0).value
        own_init = centred_similarity(an, a0).value
        foreign_init = centred_similarity(an, b0).value
        independent = centred_similarity(an, bn).value
        rolled_null = centred_similarity(an, a0, roll_b=True).value
    assert first_link > LINK_THRESHOLD + 0.4
    assert own_init > INIT_FLOOR + 0.3
    for null in (foreign_init, independent, rolled_null):
        assert abs(null) < INIT_FLOOR / 3


def test_absent_trail_is_unknown(tmp_path, runs):
    write_model(tmp_path / "m", runs["own"][STEPS])
    facts = detect(tmp_path / "m")
    assert facts["present"] is False
    assert set(facts) == {d.path.split(".", 1)[1] for d in TrailDetector.facts}
    assert all(value is None for key, value in facts.items() if key != "present")


def test_single_checkpoint_without_step0(tmp_path, runs):
    own = runs["own"]
    facts = detect(write_trail(tmp_path / "m", {STEPS: own[STEPS]}, own[STEPS]))
    assert facts["present"] is True and facts["checkpoints"] == 1
    assert facts["committed"] is False and facts["commitment_matches"] is None
    assert facts["initial_random"] is None and facts["continuous"] is None
    assert facts["ends_at_release"] is True
    assert facts["init_similarity"] is None and facts["depends_on_init"] is None


def test_checkpoints_sort_numerically_and_other_entries_are_ignored(tmp_path, runs):
    own = runs["own"]
    root = write_trail(tmp_path / "m", {0: own[0], 50: own[50], 100: own[100]}, own[100])
    # Lexical order would put step-100 before step-50.
    (root / "checkpoints" / "notes").mkdir()
    (root / "checkpoints" / "readme.txt").write_text("x")
    facts = detect(root)
    assert facts["checkpoints"] == 3
    assert facts["continuous"] is True


def test_two_folders_for_one_step_are_refused(tmp_path, runs):
    own = runs["own"]
    root = write_trail(tmp_path / "m", {1: own[50]}, own[50], commit=False)
    shutil.copytree(root / "checkpoints" / "step-1", root / "checkpoints" / "step-01")
    with pytest.raises(InputError, match="same step 1"):
        detect(root)


@pytest.mark.parametrize(
    ("content", "place", "problem"),
    [
        ("[]", None, "commitment is not a json object"),
        ('{"seed": 1, "init": "x"}', None, "missing field `step0_digest`"),
        (
            '{"seed": "1", "init": "x", "step0_digest": "blake3:' + "0" * 64 + '"}',
            "field `seed`",
            "not an integer",
        ),
        (
            '{"seed": true, "init": "x", "step0_digest": "blake3:' + "0" * 64 + '"}',
            "field `seed`",
            "not an integer",
        ),
        (
            '{"seed": 1, "init": "", "step0_digest": "blake3:' + "0" * 64 + '"}',
            "field `init`",
            "non-empty string",
        ),
        (
            '{"seed": 1, "init": "x", "step0_digest": "sha256:00"}',
            "field `step0_digest`",
            "64 lower-case hex",
        ),
        (
            '{"seed": 1, "init": "x", "step0_digest": "blake3:' + "0" * 64 + '", "when": 1}',
            "field `when`",
            "unexpected",
        ),
        ('{"seed": 1,', "line 1:12", "not valid json"),
        (
            '{"seed": 1, "init": "originality/1", "step0_digest": "blake3:' + "0" * 64 + '"}',
            None,
            "missing field `std`",
        ),
        (
            '{"seed": 1, "init": "originality/1", "std": -0.02, "step0_digest": "blake3:' + "0" * 64 + '"}',
            "field `std`",
            "std must be a number above 0",
        ),
        (
            '{"seed": 1, "init": "x", "std": true, "step0_digest": "blake3:' + "0" * 64 + '"}',
            "field `std`",
            "std must be a number above 0",
        ),
    ],
)
def test_malformed_commitment(tmp_path, runs, content, place, problem):
    own = runs["own"]
    root = write_trail(tmp_path / "m", {0: own[0]}, own[0], commit=False)
    path = root / "checkpoints" / "commitment.json"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        detect(root)
    assert caught.value.file == str(path)
    assert caught.value.place == place
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_weights_digest_ignores_layout_and_sees_every_byte(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "a": rng.standard_normal((4, 4)).astype(np.float32),
        "b": np.arange(3, dtype=np.int64),
    }
    (tmp_path / "one").mkdir()
    np_save(arrays, str(tmp_path / "one" / "model.safetensors"))
    (tmp_path / "two").mkdir()
    np_save({"b": arrays["b"]}, str(tmp_path / "two" / "x.safetensors"), metadata={"k": "v"})
    np_save({"a": arrays["a"]}, str(tmp_path / "two" / "y.safetensors"))
    changed = dict(arrays, b=np.array([0, 1, 3], dtype=np.int64))
    (tmp_path / "three").mkdir()
    np_save(changed, str(tmp_path / "three" / "model.safetensors"))
    recast = dict(arrays, b=arrays["b"].astype(np.int32))
    (tmp_path / "four").mkdir()
    np_save(recast, str(tmp_path / "four" / "model.safetensors"))
    digests = []
    for name in ("one", "two", "three", "four"):
        with open_model(tmp_path / name) as model:
            digests.append(weights_digest(model))
    assert digests[0] == digests[1]
    assert len(set(digests)) == 3
    assert re.fullmatch(r"blake3:[0-9a-f]{64}", digests[0])


def _stats(tmp_path: Path, matrix: np.ndarray):
    folder = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    np_save({"w": matrix.astype(np.float32)}, str(folder / "model.safetensors"))
    with open_model(folder) as model:
        return matrix_statistics(model, model.tensors["w"])


def test_matrix_statistics_accept_common_inits(tmp_path):
    rng = np.random.default_rng(7)
    for matrix in (
        rng.normal(0, 0.02, (256, 128)),
        rng.uniform(-0.1, 0.1, (128, 256)),
        np.clip(rng.normal(0, 1.0, (256, 256)), -3, 3),
        rng.normal(0, 1.0, (16, 512)),
    ):
        stats = _stats(tmp_path, matrix)
        assert stats.problems() == [], stats
    stats = _stats(tmp_path, rng.normal(0, 0.02, (256, 128)))
    assert stats.problems([0.02]) == []
    assert any("init std" in p for p in stats.problems([0.05]))
    assert _stats(tmp_path, np.zeros((64, 64))).problems() == []


def test_matrix_statistics_reject_trained_structure(tmp_path):
    rng = np.random.default_rng(8)
    base = rng.normal(0, 1.0, (256, 256))
    heavy = rng.standard_t(4, (256, 256))
    spike = base + 3.0 * np.outer(rng.normal(size=256), rng.normal(size=256)) / 16
    rows = base * rng.uniform(0.2, 2.0, (256, 1))
    shifted = base + 0.5
    expectations = {
        "heavy tails": heavy,
        "spectral outlier": spike,
        "rows of unequal energy": rows,
        "is not zero": shifted,
    }
    for word, matrix in expectations.items():
        problems = _stats(tmp_path, matrix).problems()
        assert any(word in p for p in problems), (word, problems)
    assert _stats(tmp_path, np.full((64, 64), 0.5)).problems() == ["constant"]


def test_bf16_checkpoints_are_compared_like_fp32(tmp_path, runs):
    own = runs["own"]
    half = {s: {k: v.to(torch.bfloat16) for k, v in state.items()} for s, state in own.items()}
    root = write_trail(tmp_path / "bf16", half, own[STEPS])
    facts = detect(root)
    assert facts["continuous"] is True
    assert facts["ends_at_release"] is True  # fp32 release continues the bf16 trail
    assert facts["initial_random"] is True


def test_checkpoints_far_apart_still_make_a_continuous_trail(tmp_path, runs):
    # Checkpoints of a fast-moving run kept hundreds of steps apart: each keeps a
    # correlation of about 0.25 with the one before, far above unrelated weights (~0).
    g = torch.Generator().manual_seed(5)
    state = runs["own"][0]
    steps = {0: state}
    for k in (1, 2, 3):
        state = {n: v + 3.9 * v.std() * torch.randn(v.shape, generator=g) if v.ndim == 2 else v
                 for n, v in state.items()}
        steps[500 * k] = state
    facts = detect(write_trail(tmp_path / "sparse", steps, state, commit=False))
    assert 0.1 < facts["min_link_similarity"] < 0.3
    assert facts["continuous"] is True


@pytest.mark.parametrize("name,file,problem", [
    ("step-1e3", False, "named `step-<N>`"), ("Step-0", False, "named `step-<N>`"), ("step_5", False, "named"),
    ("step-7", True, "is a folder holding the weights, not a file"),
])
def test_a_checkpoint_named_amiss_is_never_dropped_silently(tmp_path, runs, name, file, problem):
    root = write_trail(tmp_path / "t", {0: runs["own"][0]}, runs["own"][STEPS], commit=False)
    odd = root / "checkpoints" / name
    if file:
        odd.write_text("weights?")
    else:
        write_model(odd, runs["own"][EVERY])
    with pytest.raises(InputError, match=problem):
        detect(root)
    # Other entries (notes, logs, the commitment) stay allowed.
    shutil.rmtree(odd) if odd.is_dir() else odd.unlink()
    (root / "checkpoints" / "notes.txt").write_text("lr 3e-4")
    assert detect(root)["checkpoints"] == 1


def test_a_commitment_without_checkpoints_is_read_and_reported(tmp_path, runs):
    root = tmp_path / "m"
    write_model(root, runs["own"][STEPS])
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "commitment.json").write_text(json.dumps({"seed": 1, "init": "normal(0, 0.02)"}))
    with pytest.raises(InputError, match="step0_digest"):
        detect(root)  # checked, though nothing can be held to it
    (root / "checkpoints" / "commitment.json").write_text(json.dumps(
        {"seed": 1, "init": "normal(0, 0.02)", "step0_digest": "blake3:" + "0" * 64}))
    facts = detect(root)
    assert (facts["present"], facts["committed"], facts["commitment_matches"]) == (False, True, None)
