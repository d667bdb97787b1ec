"""The detector plug-in contract: fact declarations, the Detector protocol, input errors.

A leaf module: it imports nothing from the engine or from other detectors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

__all__ = [
    "FACT_TYPES",
    "COMPONENT_KINDS",
    "RELATIONS",
    "FactDecl",
    "Reference",
    "DetectContext",
    "Detector",
    "InputError",
    "inside_folder",
    "LONE_SURROGATE",
]

# The value types a fact may declare. `list[object]` declares a list whose element
# fields are declared under `path[].field`; `enum` lists its values.
FACT_TYPES = frozenset(
    {"boolean", "integer", "number", "string", "enum", "list[string]", "list[object]"}
)

COMPONENT_KINDS = (
    "language_model",
    "vision_encoder",
    "audio_encoder",
    "projector",
    "embeddings",
    "head",
    "other",
)

RELATIONS = ("identical", "derived", "independent", "unknown")


@dataclass(frozen=True)
class FactDecl:
    """One fact a detector emits: its path in the fact sheet, its type and meaning.

    Paths are dotted; `[]` marks the elements of a list, e.g.
    `components[].match.relation`. A fact that is absent or null is unknown.
    """

    path: str
    type: str
    doc: str
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in FACT_TYPES:
            raise ValueError(f"fact `{self.path}` has unknown type `{self.type}`")
        if (self.type == "enum") != bool(self.values):
            raise ValueError(f"fact `{self.path}`: only an enum lists values")


@dataclass(frozen=True)
class Reference:
    """A known public model in the reference catalogue (one folder per reference).

    `path` is the reference's folder; each detector that fingerprints references keeps
    its own files there, named after the detector (`weights.json`, `tokenizer.json` ...).
    """

    id: str
    origin: str
    path: Path
    organisation: str | None = None
    license: str | None = None
    components: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DetectContext:
    """What a detector gets besides the model: references, manifest, progress."""

    references: tuple[Reference, ...] = ()
    manifest: Path | None = None
    # Called with (bytes_done, bytes_total) as weights are read; may be None.
    progress: Callable[[int, int], None] | None = None


@runtime_checkable
class Detector(Protocol):
    """A plug-in registered in the entry-point group `originality.detectors`.

    The entry point names a class constructed with no arguments. `emits` are the
    top-level keys under `facts` that this detector owns (no two detectors share one);
    every fact it writes is declared in `facts`.
    """

    name: str
    version: str
    emits: tuple[str, ...]
    facts: tuple[FactDecl, ...]

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        """Return {top-level key: value} for the keys in `emits`."""
        ...

    # Optional: `fingerprint(self, model, directory: Path, components: Mapping[str, str])`
    # writes this detector's weights-free description of a reference model into the
    # reference's catalogue folder, for `catalog add`. Detectors without it skip.


class InputError(Exception):
    """A malformed input file. Shown to people as one line: `file: place: problem`."""

    def __init__(self, file: str | Path, place: str | None, problem: str) -> None:
        # One printable line, whatever a library's message or an untrusted file held.
        self.file = _printable(str(file))
        self.place = _printable(place) if place is not None else None
        self.problem = _printable(str(problem), breaks=True)
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.place}" if self.place else self.file
        return f"{where}: {self.problem}"


_BREAKS = re.compile(r"\s*[\n\r\t\v\f\x1c-\x1f\x85\u2028\u2029]\s*")


# The same in engine/diagnostics.py: the two packages share no code (their seam is the fact sheet).
# Half of a UTF-16 surrogate pair, alone: JSON and YAML escapes can write one, yet it is
# no character (it cannot be written out as UTF-8).
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def inside_folder(root: Path, path: Path) -> Path:
    """`path`, or an InputError when it (through a symlink) leaves the model folder `root`:
    what a submission's files say must come from the submission."""
    if Path(root).resolve() not in Path(path).resolve().parents:
        raise InputError(path, None, "links outside the model folder")
    return path


def _printable(text: str, breaks: bool = False) -> str:
    """Text safe to show on one line: with `breaks`, line breaks and tabs (a library's
    formatting) become one space; any other character that does not print (a control
    character from an untrusted file, an escape sequence) is shown escaped."""
    if breaks:
        text = _BREAKS.sub(" ", text).strip()
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)
