"""The `tokenizer` detector: vocabulary and BPE-merge overlap with the references.

Tokenizer files are read as data only; references keep hashes, never vocabulary text.
"""

from __future__ import annotations

import base64
import bisect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from blake3 import blake3

from detectors.base import DetectContext, FactDecl, InputError, inside_folder
from detectors.model import read_json

__all__ = [
    "TokenizerDetector",
    "TokenizerFiles",
    "TokenizerSketch",
    "merge_overlap",
    "read_tokenizer",
    "sketch_tokenizer",
    "vocab_overlap",
]

FINGERPRINT_FILE = "tokenizer.json"
_FINGERPRINT_SCHEMA = "originality.tokenizer-fingerprint/1"
_HASH = "blake3-64"


@dataclass(frozen=True)
class TokenizerFiles:
    """A tokenizer as read from a model folder: token strings and ordered merges."""

    source: str  # the file(s) it came from, relative to the folder
    tokens: tuple[str, ...]
    merges: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TokenizerSketch:
    """Weights-free, text-free description: sorted token hashes, merge hashes in rank order."""

    tokens: np.ndarray  # uint64, sorted, unique
    merges: np.ndarray  # uint64, in merge order, first occurrence of each kept

    @property
    def vocab_size(self) -> int:
        return int(self.tokens.size)


def _key(token: str) -> str:
    # Tokens can be any text; show them as JSON strings, cut short.
    shown = json.dumps(token, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + '..."'


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _parse_merge(merge: Any, shown: Path, place: str) -> tuple[str, str]:
    # Two spellings exist: "a b" (split on the one space) and ["a", "b"].
    if isinstance(merge, str):
        parts = merge.split(" ")
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        raise InputError(
            shown, place, f"expected two tokens separated by one space, got {_key(merge)}"
        )
    if (
        isinstance(merge, list)
        and len(merge) == 2
        and all(isinstance(part, str) and part for part in merge)
    ):
        return merge[0], merge[1]
    raise InputError(shown, place, f'expected "a b" or a pair of strings, got {_kind(merge)}')


def _vocab_tokens(vocab: Any, shown: Path, place: str) -> list[str]:
    if isinstance(vocab, dict):
        for token, index in vocab.items():
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise InputError(
                    shown, f"{place}[{_key(token)}]", f"expected a token id, got {_kind(index)}"
                )
        return list(vocab)
    if isinstance(vocab, list):
        tokens = []
        for i, entry in enumerate(vocab):
            # Unigram: [piece, score]
            if not (
                isinstance(entry, list)
                and len(entry) == 2
                and isinstance(entry[0], str)
                and isinstance(entry[1], (int, float))
                and not isinstance(entry[1], bool)
            ):
                raise InputError(shown, f"{place}[{i}]", "expected a [token, score] pair")
            tokens.append(entry[0])
        return tokens
    raise InputError(shown, place, f"expected an object or a list, got {_kind(vocab)}")


def _read_tokenizer_json(path: Path) -> TokenizerFiles:
    shown = path
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(shown, None, "expected a json object at the top level")
    model = data.get("model")
    if not isinstance(model, dict):
        raise InputError(shown, "model", f"expected a json object, got {_kind(model)}")
    if "vocab" not in model:
        raise InputError(shown, "model.vocab", "missing")
    tokens = _vocab_tokens(model["vocab"], shown, "model.vocab")
    merges_raw = model.get("merges")
    if merges_raw is None:
        merges_raw = []
    if not isinstance(merges_raw, list):
        raise InputError(shown, "model.merges", f"expected a list, got {_kind(merges_raw)}")
    merges = [_parse_merge(m, shown, f"model.merges[{i}]") for i, m in enumerate(merges_raw)]
    added = data.get("added_tokens")
    if added is None:
        added = []
    if not isinstance(added, list):
        raise InputError(shown, "added_tokens", f"expected a list, got {_kind(added)}")
    for i, entry in enumerate(added):
        content = entry.get("content") if isinstance(entry, dict) else None
        if not isinstance(content, str):
            raise InputError(shown, f"added_tokens[{i}].content", "expected a string")
        tokens.append(content)
    return TokenizerFiles(path.name, tuple(tokens), tuple(merges))


def _read_merges_txt(path: Path) -> list[tuple[str, str]]:
    shown = path
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(shown, f"byte {error.start}", "is not UTF-8 text") from None
    merges = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise InputError(shown, f"line {number}", "expected two tokens separated by one space")
        merges.append((parts[0], parts[1]))
    return merges


def _varint(data: bytes, i: int, shown: Path) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise InputError(shown, f"byte {i}", "truncated or malformed protobuf varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _protobuf_fields(data: bytes, shown: Path) -> Iterator[tuple[int, int, Any]]:
    """Yield (field number, wire type, value) of one protobuf message; data only, no schema."""
    i = 0
    while i < len(data):
        start = i
        key, i = _varint(data, i, shown)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i, shown)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(data, i, shown)
            value, i = data[i : i + length], i + length
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise InputError(shown, f"byte {start}", f"unsupported protobuf wire type {wire}")
        if i > len(data):
            raise InputError(shown, f"byte {start}", "truncated protobuf field")
        yield field, wire, value


def _read_sentencepiece(path: Path) -> TokenizerFiles:
    # ModelProto.pieces (field 1) holds SentencePiece messages whose field 1 is the piece.
    shown = path
    tokens: list[str] = []
    for field, wire, value in _protobuf_fields(path.read_bytes(), shown):
        if field != 1 or wire != 2:
            continue
        for sub_field, sub_wire, sub_value in _protobuf_fields(value, shown):
            if sub_field == 1 and sub_wire == 2:
                try:
                    tokens.append(sub_value.decode("utf-8"))
                except UnicodeDecodeError:
                    raise InputError(shown, f"pieces[{len(tokens)}]", "is not UTF-8 text") from None
                break
    return TokenizerFiles(path.name, tuple(tokens), ())


def read_tokenizer(root: Path) -> TokenizerFiles | None:
    """Read the model folder's tokenizer: tokenizer.json, else vocab.json (+ merges.txt),
    else a SentencePiece tokenizer.model; None when there is none."""
    root = Path(root)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model"):
        if (root / name).is_file():  # a tokenizer from elsewhere is not the submission's
            inside_folder(root, root / name)
    if (root / "tokenizer.json").is_file():
        return _read_tokenizer_json(root / "tokenizer.json")
    if (root / "vocab.json").is_file():
        vocab = read_json(root / "vocab.json")
        if not isinstance(vocab, dict):
            raise InputError(root / "vocab.json", None, "expected a json object of token: id")
        tokens = _vocab_tokens(vocab, root / "vocab.json", "")
        merges: list[tuple[str, str]] = []
        source = "vocab.json"
        if (root / "merges.txt").is_file():
            merges = _read_merges_txt(root / "merges.txt")
            source += " merges.txt"
        return TokenizerFiles(source, tuple(tokens), tuple(merges))
    if (root / "tokenizer.model").is_file():
        return _read_sentencepiece(root / "tokenizer.model")
    return None


def _hash64(data: bytes) -> int:
    return int.from_bytes(blake3(data).digest(length=8), "little")


def _merge_bytes(left: str, right: str) -> bytes:
    # Length-prefixed so that no two pairs share an encoding.
    a = left.encode("utf-8")
    return len(a).to_bytes(4, "little") + a + right.encode("utf-8")


def sketch_tokenizer(tokenizer: TokenizerFiles) -> TokenizerSketch:
    """Hash tokens (a sorted set) and merges (in order, first occurrence kept)."""
    tokens = np.unique(
        np.fromiter((_hash64(t.encode("utf-8")) for t in tokenizer.tokens), dtype=np.uint64)
    )
    merge_hashes = np.fromiter(
        (_hash64(_merge_bytes(a, b)) for a, b in tokenizer.merges), dtype=np.uint64
    )
    _, first = np.unique(merge_hashes, return_index=True)
    merges = merge_hashes[np.sort(first)]
    return TokenizerSketch(tokens, merges)


def vocab_overlap(ours: TokenizerSketch, theirs: TokenizerSketch) -> float | None:
    """Jaccard overlap of the token sets; None when both are empty."""
    union = np.union1d(ours.tokens, theirs.tokens).size
    if union == 0:
        return None
    return float(np.intersect1d(ours.tokens, theirs.tokens, assume_unique=True).size / union)


def merge_overlap(ours: TokenizerSketch, theirs: TokenizerSketch) -> float:
    """Share of our merges that keep the reference's relative order.

    The merges both have, taken in our order and mapped to the reference's ranks; the
    longest increasing run of ranks is the largest set of merges in the same order in
    both (their longest common subsequence). Divided by our merge count; 0 when
    either has none. O(n log n).
    """
    if ours.merges.size == 0 or theirs.merges.size == 0:
        return 0.0
    order = np.argsort(theirs.merges, kind="stable")
    sorted_theirs = theirs.merges[order]
    at = np.searchsorted(sorted_theirs, ours.merges)
    at = np.minimum(at, sorted_theirs.size - 1)
    shared = sorted_theirs[at] == ours.merges
    ranks = order[at[shared]].tolist()
    tails: list[int] = []  # patience sorting: tails[k] = least tail of a run of k+1
    for rank in ranks:
        k = bisect.bisect_left(tails, rank)
        if k == len(tails):
            tails.append(rank)
        else:
            tails[k] = rank
    return len(tails) / int(ours.merges.size)


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(array.astype("<u8").tobytes()).decode("ascii")


def _decode(text: Any, shown: Path, field: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) % 8:
        raise InputError(shown, field, "expected base64 of 64-bit hashes")
    return np.frombuffer(raw, dtype="<u8").astype(np.uint64)


def _read_fingerprint(path: Path) -> TokenizerSketch | None:
    file = path / FINGERPRINT_FILE
    if not file.is_file():
        return None
    shown = file
    data = read_json(file)
    if not isinstance(data, dict) or data.get("schema") != _FINGERPRINT_SCHEMA:
        raise InputError(shown, "schema", f"expected `{_FINGERPRINT_SCHEMA}`")
    if data.get("hash") != _HASH:
        raise InputError(shown, "hash", f"expected `{_HASH}`")
    tokens = _decode(data.get("tokens"), shown, "tokens")
    if tokens.size > 1 and not bool(np.all(tokens[1:] > tokens[:-1])):
        raise InputError(shown, "tokens", "hashes are not sorted and unique")
    return TokenizerSketch(tokens, _decode(data.get("merges"), shown, "merges"))


class TokenizerDetector:
    """Reads the tokenizer files; reports the reference with the largest vocabulary overlap."""

    name = "tokenizer"
    version = "1.0.0"
    emits = ("tokenizer",)
    facts = (
        FactDecl("tokenizer.present", "boolean", "tokenizer files exist"),
        FactDecl("tokenizer.vocab_size", "integer", "vocabulary size"),
        FactDecl("tokenizer.reference", "string", "reference with the largest vocabulary overlap"),
        FactDecl("tokenizer.origin", "string", "its origin"),
        FactDecl(
            "tokenizer.vocab_overlap",
            "number",
            "Jaccard overlap of token strings with that reference",
        ),
        FactDecl(
            "tokenizer.merge_overlap",
            "number",
            "share of BPE merges in the same order (0 when either has none)",
        ),
        FactDecl("tokenizer.identical", "boolean", "vocabulary and merges identical"),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        tokenizer = read_tokenizer(Path(model.root))
        facts: dict[str, Any] = {
            "present": tokenizer is not None,
            "vocab_size": None,
            "reference": None,
            "origin": None,
            "vocab_overlap": None,
            "merge_overlap": None,
            "identical": None,
        }
        if tokenizer is None:
            return {"tokenizer": facts}
        ours = sketch_tokenizer(tokenizer)
        facts["vocab_size"] = ours.vocab_size
        best: tuple[tuple[float, float], Any, TokenizerSketch] | None = None
        for reference in context.references:  # sorted by id: ties keep the first
            theirs = _read_fingerprint(Path(reference.path))
            if theirs is None:
                continue
            overlap = vocab_overlap(ours, theirs)
            if overlap is None:
                continue
            score = (overlap, merge_overlap(ours, theirs))
            if best is None or score > best[0]:
                best = (score, reference, theirs)
        if best is not None:
            (overlap, merges), reference, theirs = best
            facts.update(
                reference=reference.id,
                origin=reference.origin,
                vocab_overlap=overlap,
                merge_overlap=merges,
                identical=bool(
                    np.array_equal(ours.tokens, theirs.tokens)
                    and np.array_equal(ours.merges, theirs.merges)
                ),
            )
        return {"tokenizer": facts}

    def fingerprint(self, model: Any, directory: Path, components: Mapping[str, str]) -> None:
        """Write the reference's token and merge hashes to `tokenizer.json` in its folder."""
        tokenizer = read_tokenizer(Path(model.root))
        if tokenizer is None:
            return
        sketch = sketch_tokenizer(tokenizer)
        payload = {
            "schema": _FINGERPRINT_SCHEMA,
            "hash": _HASH,
            "vocab_size": sketch.vocab_size,
            "merge_count": int(sketch.merges.size),
            "tokens": _encode(sketch.tokens),
            "merges": _encode(sketch.merges),
        }
        text = json.dumps(payload, sort_keys=True, indent=1) + "\n"
        (Path(directory) / FINGERPRINT_FILE).write_text(text, encoding="utf-8")
