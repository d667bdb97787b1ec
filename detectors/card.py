"""The `card` detector: what the model card (`README.md` metadata) declares.

A Hugging Face model card opens with YAML metadata between `---` lines. When a model is
made from another, it names `base_model` (one id or several) and `base_model_relation`
(`adapter`, `merge`, `quantized` or `finetune`); hubs and training libraries fill these
in on fine-tuning. They are the publisher's claims, kept apart from detected facts so a
policy can set them beside what the weights show.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from detectors.base import DetectContext, FactDecl, InputError, inside_folder
from detectors.manifest import compose_yaml

__all__ = ["CARD_FILE", "CardDetector", "read_card_metadata"]

CARD_FILE = "README.md"
# Metadata is a short block at the top of the card; the card itself may be long prose.
_MAX_BYTES = 1 << 20
_OPEN = re.compile(rb"\A(\xef\xbb\xbf)?---[ \t]*\r?\n")
_CLOSE = re.compile(rb"^(---|\.\.\.)[ \t]*\r?$", re.MULTILINE)


def read_card_metadata(path: Path) -> tuple[dict[str, Any], Any] | None:
    """The card's metadata as (plain data, its YAML node, for places); None when the card
    has none. A problem (not UTF-8, never closed, bad YAML, not a mapping) is one
    InputError with its place."""
    with open(path, "rb") as f:
        head = f.read(_MAX_BYTES + 1)
    opened = _OPEN.match(head)
    if opened is None:
        return None
    closed = _CLOSE.search(head, opened.end())
    if closed is None:
        within = "" if len(head) <= _MAX_BYTES else f" within its first {_MAX_BYTES} bytes"
        raise InputError(path, "line 1:1", f"metadata opened with `---` is never closed{within}")
    block = head[opened.end(): closed.start()]
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(path, f"byte {opened.end() + error.start}", "is not UTF-8 text") from None
    # A blank first line in place of the opening `---` keeps YAML's line numbers the file's.
    root, data = compose_yaml("\n" + text, path)
    if data is None:
        return {}, root
    if not isinstance(data, dict):
        raise InputError(path, _at(root), "metadata must be a mapping of fields")
    return data, root


def _at(node: Any) -> str:
    return f"line {node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _value_place(root: Any, key: str) -> str | None:
    for key_node, value_node in root.value:
        if getattr(key_node, "value", None) == key:
            return _at(value_node)
    return None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


class CardDetector:
    """Facts from the model card's metadata; a folder without a card declares nothing."""

    name = "card"
    version = "1.0.0"
    emits = ("card",)
    facts = (
        FactDecl("card.present", "boolean", "the model folder has a model card (`README.md`)"),
        FactDecl("card.metadata", "boolean", "the card opens with YAML metadata between `---` lines"),
        FactDecl("card.base_model", "list[string]", "base models the card names (empty when it names none)"),
        FactDecl(
            "card.base_model_relation", "string",
            "how the card says the model was made from them (`adapter`, `merge`, `quantized`, `finetune`)",
        ),
        FactDecl("card.license", "string", "the licence the card states"),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        root = Path(model.root)
        path = root / CARD_FILE
        facts: dict[str, Any] = {"present": False, "metadata": False, "base_model": [],
                                 "base_model_relation": None, "license": None}
        if not (path.exists() or path.is_symlink()):
            return {"card": facts}
        inside_folder(root, path)
        if not path.is_file():
            raise InputError(path, None, "is not a regular file")
        facts["present"] = True
        found = read_card_metadata(path)
        if found is None:
            return {"card": facts}
        facts["metadata"] = True
        data, node = found
        base = data.get("base_model")
        if base is None:
            base = []
        elif _text(base):
            base = [base]
        elif not (isinstance(base, list) and all(_text(b) for b in base)):  # `[]`: none
            raise InputError(path, _value_place(node, "base_model"), "`base_model` must be a model id or a list of them")
        facts["base_model"] = [b.strip() for b in base]
        for key in ("base_model_relation", "license"):
            value = data.get(key)
            if value is not None and not _text(value):
                raise InputError(path, _value_place(node, key), f"`{key}` must be a name")
            facts[key] = value.strip() if value is not None else None
        return {"card": facts}
