"""The tokenizer detector: file formats, overlap properties, hashed fingerprints, bad input.

Tokenizers are generated here; nothing in a tokenizer file is ever executed.
"""

from __future__ import annotations

import json
import random
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import tokenizer as tokenizer_module
from detectors.base import DetectContext, InputError, Reference
from detectors.model import open_model
from detectors.pipeline import check_output
from detectors.tokenizer import (
    TokenizerDetector,
    TokenizerFiles,
    TokenizerSketch,
    merge_overlap,
    read_tokenizer,
    sketch_tokenizer,
    vocab_overlap,
)

from .test_pipeline import bpe_tokenizer, synthetic_bpe, write_model


def _sketch(tokens: list[str], merges: list[tuple[str, str]]) -> TokenizerSketch:
    return sketch_tokenizer(TokenizerFiles("test", tuple(tokens), tuple(merges)))


def _folder(tmp_path: Path, name: str, files: dict[str, Any]) -> Path:
    root = tmp_path / name
    root.mkdir(parents=True)
    for file, content in files.items():
        data = (
            content
            if isinstance(content, bytes)
            else (content if isinstance(content, str) else json.dumps(content))
        )
        (root / file).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return root


# --- formats -------------------------------------------------------------------------


def test_reads_bpe_with_both_merge_spellings(tmp_path: Path) -> None:
    doc = bpe_tokenizer(["a", "b", "ab"], [("a", "b")])
    pairs = json.loads(json.dumps(doc))
    pairs["model"]["merges"] = [["a", "b"]]
    strings = read_tokenizer(_folder(tmp_path, "s", {"tokenizer.json": doc}))
    lists = read_tokenizer(_folder(tmp_path, "p", {"tokenizer.json": pairs}))
    assert strings is not None and lists is not None
    assert strings.tokens == lists.tokens == ("a", "b", "ab", "<|end|>")
    assert strings.merges == lists.merges == (("a", "b"),)


def test_reads_unigram_vocab_list(tmp_path: Path) -> None:
    doc = {"model": {"type": "Unigram", "vocab": [["<unk>", 0.0], ["▁the", -3.2], ["s", -4]]}}
    read = read_tokenizer(_folder(tmp_path, "u", {"tokenizer.json": doc}))
    assert read is not None and read.tokens == ("<unk>", "▁the", "s") and read.merges == ()


def test_reads_vocab_json_with_merges_txt(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        "gpt2",
        {
            "vocab.json": {"a": 0, "b": 1, "ab": 2, "Ġa": 3},
            "merges.txt": "#version: 0.2\na b\nĠ a\n",
        },
    )
    read = read_tokenizer(root)
    assert read is not None
    assert read.source == "vocab.json merges.txt"
    assert read.merges == (("a", "b"), ("Ġ", "a"))


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _sentencepiece(pieces: list[str]) -> bytes:
    """A ModelProto with pieces (field 1) of {piece: 1, score: 2}, and a trainer spec."""
    out = b""
    for i, piece in enumerate(pieces):
        text = piece.encode("utf-8")
        body = b"\x0a" + _varint(len(text)) + text + b"\x15" + struct.pack("<f", -float(i))
        out += b"\x0a" + _varint(len(body)) + body
    trainer = b"\x08\x01"  # field 1, varint: ignored by the reader
    return out + b"\x12" + _varint(len(trainer)) + trainer


def test_reads_sentencepiece_model_without_the_library(tmp_path: Path) -> None:
    pieces = ["<unk>", "<s>", "</s>", "▁안녕", "하세요"]
    read = read_tokenizer(_folder(tmp_path, "sp", {"tokenizer.model": _sentencepiece(pieces)}))
    assert read is not None and read.tokens == tuple(pieces) and read.merges == ()


def test_tokenizer_json_takes_precedence(tmp_path: Path) -> None:
    root = _folder(
        tmp_path,
        "both",
        {"tokenizer.json": bpe_tokenizer(["x"], []), "vocab.json": {"y": 0}},
    )
    read = read_tokenizer(root)
    assert read is not None and read.source == "tokenizer.json"


def test_no_tokenizer_is_unknown(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", tokenizer={}, manifest=None)
    assert not (root / "tokenizer.json").exists()
    with open_model(root) as model:
        facts = TokenizerDetector().detect(model, DetectContext())["tokenizer"]
    assert facts["present"] is False
    assert all(v is None for k, v in facts.items() if k != "present")


# --- overlap properties ----------------------------------------------------------------

token_lists = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(token_lists, st.randoms(use_true_random=False))
def test_identical_tokenizers_overlap_fully(tokens: list[str], rnd: random.Random) -> None:
    merges = [(rnd.choice(tokens), rnd.choice(tokens)) for _ in range(len(tokens))]
    a, b = _sketch(tokens, merges), _sketch(list(reversed(tokens)), merges)
    assert vocab_overlap(a, b) == 1.0
    assert merge_overlap(a, b) == 1.0
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.merges, b.merges)


@settings(max_examples=60, deadline=None)
@given(token_lists, token_lists)
def test_disjoint_tokenizers_do_not_overlap(left: list[str], right: list[str]) -> None:
    right = [t for t in right if t not in set(left)]
    if not right:
        return
    a = _sketch(left, [(x, x) for x in left])
    b = _sketch(right, [(x, x) for x in right])
    assert vocab_overlap(a, b) == 0.0
    assert merge_overlap(a, b) == 0.0


def test_shuffled_merges_keep_vocab_overlap_but_lose_order() -> None:
    tokens, merges = synthetic_bpe(2000, seed=3)
    shuffled = list(merges)
    random.Random(7).shuffle(shuffled)
    ours, theirs = _sketch(tokens, shuffled), _sketch(tokens, merges)
    assert vocab_overlap(ours, theirs) == 1.0
    assert merge_overlap(ours, theirs) < 0.2
    assert merge_overlap(theirs, theirs) == 1.0


def _lcs(a: list[Any], b: list[Any]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 30), max_size=25, unique=True),
    st.lists(st.integers(0, 30), max_size=25, unique=True),
)
def test_merge_overlap_is_the_longest_common_subsequence(
    ours: list[int], theirs: list[int]
) -> None:
    pair = lambda n: (f"t{n}", f"u{n}")  # noqa: E731 - a merge per integer
    a = _sketch(["x"], [pair(n) for n in ours])
    b = _sketch(["x"], [pair(n) for n in theirs])
    expected = _lcs(ours, theirs) / len(ours) if ours and theirs else 0.0
    assert merge_overlap(a, b) == pytest.approx(expected)


def test_merge_overlap_is_cheap_for_large_vocabularies() -> None:
    n = 150_000
    rng = np.random.default_rng(0)
    theirs = TokenizerSketch(
        np.arange(1, dtype=np.uint64), rng.permutation(n * 4)[:n].astype(np.uint64)
    )
    swapped = theirs.merges.copy()
    swapped[1000:1100] = swapped[1000:1100][::-1]
    ours = TokenizerSketch(theirs.tokens, swapped)
    start = time.perf_counter()
    overlap = merge_overlap(ours, theirs)
    assert time.perf_counter() - start < 5.0
    assert overlap == pytest.approx((n - 99) / n)


# --- fingerprints and detection ----------------------------------------------------------


def _reference(tmp_path: Path, id: str, tokenizer: dict[str, Any], origin: str = "US") -> Reference:
    folder = tmp_path / "refs" / id
    folder.mkdir(parents=True)
    with open_model(
        write_model(tmp_path / "src" / id, tokenizer=tokenizer, manifest=None)
    ) as model:
        TokenizerDetector().fingerprint(model, folder, {})
    return Reference(id=id, origin=origin, path=folder)


def _detect(
    tmp_path: Path, tokenizer: dict[str, Any], refs: tuple[Reference, ...]
) -> dict[str, Any]:
    with open_model(write_model(tmp_path / "subject", tokenizer=tokenizer, manifest=None)) as model:
        detector = TokenizerDetector()
        out = detector.detect(model, DetectContext(references=refs))
    check_output(detector, out)
    return out["tokenizer"]


def test_fingerprint_keeps_no_vocabulary_text(tmp_path: Path) -> None:
    tokens = ["secretword", "anothersecret", "s", "e"]
    ref = _reference(tmp_path, "ref", bpe_tokenizer(tokens, [("s", "e")]))
    stored = (ref.path / "tokenizer.json").read_text()
    assert "secret" not in stored
    data = json.loads(stored)
    assert (data["vocab_size"], data["merge_count"]) == (5, 1)


def test_fingerprint_is_deterministic(tmp_path: Path) -> None:
    tokens, merges = synthetic_bpe(500, seed=4)
    a = _reference(tmp_path / "1", "r", bpe_tokenizer(tokens, merges))
    b = _reference(tmp_path / "2", "r", bpe_tokenizer(list(reversed(tokens)), merges))
    assert (a.path / "tokenizer.json").read_bytes() == (b.path / "tokenizer.json").read_bytes()


def test_detect_picks_the_largest_vocabulary_overlap(tmp_path: Path) -> None:
    tokens, merges = synthetic_bpe(400, seed=1)
    other, other_merges = synthetic_bpe(400, seed=2)
    refs = (
        _reference(tmp_path, "a-other", bpe_tokenizer(other, other_merges), "FR"),
        _reference(tmp_path, "b-same", bpe_tokenizer(tokens, merges), "CN"),
    )
    facts = _detect(tmp_path, bpe_tokenizer(tokens, merges), refs)
    assert facts == {
        "present": True,
        "vocab_size": 401,
        "reference": "b-same",
        "origin": "CN",
        "vocab_overlap": 1.0,
        "merge_overlap": 1.0,
        "identical": True,
    }


def test_reordered_merges_are_not_identical(tmp_path: Path) -> None:
    tokens, merges = synthetic_bpe(400, seed=1)
    refs = (_reference(tmp_path, "ref", bpe_tokenizer(tokens, merges)),)
    swapped = merges[:10] + [merges[11], merges[10]] + merges[12:]
    facts = _detect(tmp_path, bpe_tokenizer(tokens, swapped), refs)
    assert facts["vocab_overlap"] == 1.0
    assert facts["merge_overlap"] == pytest.approx((len(merges) - 1) / len(merges))
    assert facts["identical"] is False


# --- malformed input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "file", "place", "problem"),
    [
        (
            {"tokenizer.json": '{"model": {"vocab": {"a": 0,}}}'},
            "tokenizer.json",
            "line 1:",
            "not valid json",
        ),
        (
            {"tokenizer.json": "[]"},
            "tokenizer.json",
            None,
            "expected a json object at the top level",
        ),
        (
            {"tokenizer.json": {"model": 3}},
            "tokenizer.json",
            "model",
            "expected a json object, got a number",
        ),
        ({"tokenizer.json": {"model": {"merges": []}}}, "tokenizer.json", "model.vocab", "missing"),
        (
            {"tokenizer.json": {"model": {"vocab": {"a": 0, "hello": "1"}}}},
            "tokenizer.json",
            'model.vocab["hello"]',
            "expected a token id, got a string",
        ),
        (
            {"tokenizer.json": {"model": {"vocab": [["a", 0.0], ["b"]]}}},
            "tokenizer.json",
            "model.vocab[1]",
            "expected a [token, score] pair",
        ),
        (
            {"tokenizer.json": {"model": {"vocab": {"a": 0}, "merges": ["a b", "abc"]}}},
            "tokenizer.json",
            "model.merges[1]",
            "expected two tokens separated by one space",
        ),
        (
            {"tokenizer.json": {"model": {"vocab": {"a": 0}, "merges": [["a", 1]]}}},
            "tokenizer.json",
            "model.merges[0]",
            'expected "a b" or a pair of strings',
        ),
        (
            {"tokenizer.json": {"model": {"vocab": {}}, "added_tokens": [{"id": 1}]}},
            "tokenizer.json",
            "added_tokens[0].content",
            "expected a string",
        ),
        (
            {"vocab.json": {"a": 0}, "merges.txt": "#version: 0.2\na b\nab\n"},
            "merges.txt",
            "line 3",
            "two tokens",
        ),
        ({"vocab.json": ["a"]}, "vocab.json", None, "expected a json object"),
        ({"tokenizer.model": b"\x0a\xff"}, "tokenizer.model", "byte", "protobuf"),
    ],
)
def test_malformed_tokenizer_is_one_line_with_file_and_place(
    tmp_path: Path, files: dict[str, Any], file: str, place: str | None, problem: str
) -> None:
    root = _folder(tmp_path, "bad", files)
    with pytest.raises(InputError) as caught:
        read_tokenizer(root)
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.file.endswith(file)
    if place:
        assert place in (caught.value.place or "")
    assert problem in message


def test_public_api_is_pinned() -> None:
    assert sorted(tokenizer_module.__all__) == [
        "TokenizerDetector",
        "TokenizerFiles",
        "TokenizerSketch",
        "merge_overlap",
        "read_tokenizer",
        "sketch_tokenizer",
        "vocab_overlap",
    ]


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model"])
def test_tokenizer_files_that_link_outside_the_model_folder_are_refused(tmp_path: Path, name: str) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (tmp_path / "elsewhere").write_text("{}")
    (root / name).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="links outside the model folder"):
        read_tokenizer(root)
