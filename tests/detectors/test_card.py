"""The card detector: model-card metadata as declared facts, and every bad card one clear error."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.base import DetectContext, InputError
from detectors.card import CardDetector

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"

HF_CARD = """---
license: apache-2.0
base_model: meta-llama/Llama-3.1-8B
base_model_relation: finetune
library_name: transformers
tags: [text-generation]
---

# My model

Fine-tuned on Korean instructions.
"""


class Folder:
    def __init__(self, root: Path) -> None:
        self.root = root


def detect(root: Path) -> dict:
    facts = CardDetector().detect(Folder(root), DetectContext())
    assert set(facts) == {"card"}
    return facts["card"]


def card(tmp_path: Path, text: str | bytes) -> Path:
    root = tmp_path / "model"
    root.mkdir(exist_ok=True)
    path = root / "README.md"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return root


def test_declared_facts_are_the_architecture_table():
    section = ARCHITECTURE.read_text(encoding="utf-8").split("`card` emits `card`", 1)[1].split("\n\n`", 1)[0]
    rows = re.findall(r"^\| `(card\.[a-z_]+)` \| ([a-z\[\]]+) \| (.+?) \|$", section, re.MULTILINE)
    assert rows == [(d.path, d.type, d.doc) for d in CardDetector.facts]
    assert len(rows) == 5


def test_registered_as_entry_point():
    found = [ep for ep in entry_points(group="originality.detectors") if ep.name == "card"]
    assert found and found[0].load() is CardDetector


def test_hugging_face_card_declares_its_base(tmp_path):
    assert detect(card(tmp_path, HF_CARD)) == {
        "present": True, "metadata": True, "base_model": ["meta-llama/Llama-3.1-8B"],
        "base_model_relation": "finetune", "license": "apache-2.0",
    }


def test_several_bases_crlf_bom_and_dots_closer(tmp_path):
    text = "\ufeff---\r\nbase_model:\r\n  - org/a\r\n  - org/b\r\nbase_model_relation: merge\r\n...\r\nprose\r\n"
    facts = detect(card(tmp_path, text))
    assert facts["base_model"] == ["org/a", "org/b"]
    assert facts["base_model_relation"] == "merge"
    assert facts["license"] is None


@pytest.mark.parametrize(("text", "metadata"), [
    ("# Just prose\n\nNo metadata here.\n", False),
    ("Intro\n---\nbase_model: x\n---\n", False),  # metadata only counts at the very top
    ("---\n---\n# An empty block\n", True),
    ("---\nlicense: mit\n---\n", True),
])
def test_cards_that_name_no_base(tmp_path, text, metadata):
    facts = detect(card(tmp_path, text))
    assert facts["present"] is True and facts["metadata"] is metadata
    assert facts["base_model"] == []


def test_no_card_declares_nothing(tmp_path):
    (tmp_path / "model").mkdir()
    assert detect(tmp_path / "model") == {"present": False, "metadata": False, "base_model": [],
                                          "base_model_relation": None, "license": None}


def test_a_long_card_is_read_only_to_its_metadata(tmp_path):
    facts = detect(card(tmp_path, HF_CARD + "lorem ipsum " * 200_000))
    assert facts["base_model"] == ["meta-llama/Llama-3.1-8B"]


@pytest.mark.parametrize(("text", "place", "problem"), [
    ("---\nbase_model: x\n# never closed\n", "line 1:1", "never closed"),
    ("---\nlicense: mit\nbase_model: [a, b\n---\n", "line 4:1", "invalid YAML"),
    ("---\nlicense: mit\n  bad: indent\n---\n", "line 3:6", "invalid YAML"),
    ("---\n- a\n- b\n---\n", "line 2:1", "metadata must be a mapping"),
    ("---\nlicense: mit\nbase_model: 12\n---\n", "line 3:13", "`base_model` must be a model id"),
    ("---\nbase_model: \"\\ud800\"\n---\n", "line 2:13", "half of a UTF-16 surrogate pair"),
    ("---\nbase_model: [a, 3]\n---\n", "line 2:13", "`base_model` must be a model id"),
    ("---\nlicense: [mit]\n---\n", "line 2:10", "`license` must be a name"),
    ("---\nbase_model_relation: ''\n---\n", "line 2:22", "`base_model_relation` must be a name"),
    ("---\nlicense: mit\nlicense: gpl\n---\n", "line 3:1", "duplicate key `license`"),
    ("---\na: &x 1\nb: *x\n---\n", "line 3:4", "aliases are not allowed"),
    ("---\nbase_model: !!python/object/apply:os.system [echo]\n---\n", "line 2:13", "invalid YAML"),
    (b"---\nlicense: caf\xe9\n---\n", "byte 16", "not UTF-8"),
    ("---\n" + "x: y\n" * 300_000 + "---\n", "line 1:1", "never closed within its first"),
])
def test_bad_cards_are_one_clear_error(tmp_path, text, place, problem):
    root = card(tmp_path, text)
    with pytest.raises(InputError) as caught:
        detect(root)
    assert caught.value.file == str(root / "README.md")
    assert caught.value.place == place, caught.value
    assert problem in caught.value.problem
    assert "\n" not in str(caught.value)


def test_a_card_that_is_no_file_or_lies_outside(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "README.md").mkdir()
    with pytest.raises(InputError, match="not a regular file"):
        detect(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "outside.md").write_text(HF_CARD)
    (tmp_path / "b" / "README.md").symlink_to(tmp_path / "outside.md")
    with pytest.raises(InputError, match="outside the model folder"):
        detect(tmp_path / "b")


YAML_BITS = st.sampled_from(["base_model", "license", "base_model_relation", ":", " ", "\n", "-", "[", "]", "{", "}",
                             "'", '"', "&a", "*a", "!!python/name:os.system", "<<", "#", "---", "...", "x", "1",
                             "\t", "\r\n", "ü", "\x00"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(YAML_BITS, max_size=40))
def test_any_card_gives_facts_or_one_clear_error(tmp_path, parts):
    root = card(tmp_path, "---\n" + "".join(parts) + "\n---\n")
    try:
        facts = detect(root)
    except InputError as error:
        assert error.file == str(root / "README.md")
        assert "\n" not in str(error)
        return
    assert facts["present"] is True and facts["metadata"] is True
    assert all(isinstance(b, str) and b for b in facts["base_model"])


def test_a_card_may_name_no_base_model_as_an_empty_list(tmp_path):
    (tmp_path / "README.md").write_text("---\nbase_model: []\nlicense: mit\n---\n# A model\n")
    card = detect(tmp_path)
    assert (card["metadata"], card["base_model"], card["license"]) == (True, [], "mit")
