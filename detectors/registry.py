"""Discovery of detector plug-ins through the entry-point group `originality.detectors`.

Each plug-in is checked when it registers, so a broken one fails early with its name.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Iterable

from detectors.base import Detector, FactDecl

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "ENTRY_POINT_GROUP",
    "DetectorError",
    "load_detectors",
    "validate_detectors",
    "validate_detector",
]

ENTRY_POINT_GROUP = "originality.detectors"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A fact path: dotted identifiers, `[]` after a segment marks a list's elements.
_SEGMENT = re.compile(r"^[a-z_][a-z0-9_]*(\[\])?$")


class DetectorError(Exception):
    """A detector plug-in that breaks the contract: bad declarations or bad output."""


def _plugin_label(ep: EntryPoint) -> str:
    return f"detector plug-in `{ep.name}` ({ep.value})"


def validate_detector(detector: Any, label: str | None = None) -> Detector:
    """Check one detector instance against the plug-in contract; return it unchanged."""
    label = label or f"detector `{getattr(detector, 'name', type(detector).__name__)}`"

    def fail(problem: str) -> DetectorError:
        return DetectorError(f"{label}: {problem}")

    for attribute in ("name", "version", "emits", "facts"):
        if not hasattr(detector, attribute):
            raise fail(f"has no `{attribute}`")
    if not callable(getattr(detector, "detect", None)):
        raise fail("has no `detect(model, context)` method")
    if hasattr(detector, "fingerprint") and not callable(detector.fingerprint):
        raise fail("`fingerprint` is not a method")
    name, version, emits, facts = (
        detector.name,
        detector.version,
        detector.emits,
        detector.facts,
    )
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"name {name!r} is not a lower-case identifier")
    if not isinstance(version, str) or not version.strip():
        raise fail(f"version {version!r} is not a non-empty string")
    if not isinstance(emits, tuple) or not emits:
        raise fail("`emits` is not a non-empty tuple of keys")
    for key in emits:
        if not isinstance(key, str) or not _NAME.match(key):
            raise fail(f"emitted key {key!r} is not a lower-case identifier")
    if len(set(emits)) != len(emits):
        raise fail("`emits` lists a key twice")
    if not isinstance(facts, tuple):
        raise fail("`facts` is not a tuple of FactDecl")
    seen: dict[str, FactDecl] = {}
    for fact in facts:
        if not isinstance(fact, FactDecl):
            raise fail(f"fact {fact!r} is not a FactDecl")
        segments = fact.path.split(".")
        if not all(_SEGMENT.match(s) for s in segments):
            raise fail(f"fact path `{fact.path}` is malformed")
        if segments[0].removesuffix("[]") not in emits:
            raise fail(f"fact `{fact.path}` is outside its emitted keys {list(emits)}")
        if fact.path in seen:
            raise fail(f"fact `{fact.path}` is declared twice")
        if not fact.doc.strip():
            raise fail(f"fact `{fact.path}` has no meaning")
        seen[fact.path] = fact
    # Every `x[]` segment must be a declared list of objects, and nothing may sit
    # beneath a leaf (a declared scalar cannot also have fields).
    for fact in facts:
        segments = fact.path.split(".")
        for i in range(1, len(segments)):
            parent = ".".join(segments[:i])
            declared = seen.get(parent)
            if parent.endswith("[]") and (declared is None or declared.type != "list[object]"):
                raise fail(f"fact `{fact.path}` needs `{parent}` declared as list[object]")
            if declared is not None and declared.type != "list[object]":
                raise fail(f"fact `{fact.path}` sits beneath the {declared.type} `{parent}`")
        if fact.type == "list[object]" and not fact.path.endswith("[]"):
            raise fail(f"list of objects `{fact.path}` must be written `{fact.path}[]`")
        if fact.path.endswith("[]") and fact.type != "list[object]":
            raise fail(f"fact `{fact.path}` ends in `[]` but is not a list[object]")
    return detector


def validate_detectors(detectors: Iterable[Any]) -> tuple[Detector, ...]:
    """Validate each detector and the set: unique names, no key emitted twice; sort by name."""
    checked = [validate_detector(d) for d in detectors]
    names: dict[str, Any] = {}
    owners: dict[str, str] = {}
    for detector in sorted(checked, key=lambda d: d.name):
        if detector.name in names:
            raise DetectorError(f"two detectors are named `{detector.name}`")
        names[detector.name] = detector
        for key in detector.emits:
            if key in owners:
                raise DetectorError(
                    f"detector `{detector.name}` emits `{key}`, "
                    f"which detector `{owners[key]}` already emits"
                )
            owners[key] = detector.name
    return tuple(names.values())


def _instantiate(ep: EntryPoint) -> Any:
    label = _plugin_label(ep)
    try:
        factory = ep.load()
    except Exception as error:  # any import failure is the plug-in's, say whose
        raise DetectorError(f"{label}: cannot be loaded: {error}") from error
    if not callable(factory):
        raise DetectorError(f"{label}: does not name a class")
    try:
        detector = factory()
    except Exception as error:
        raise DetectorError(f"{label}: cannot be constructed: {error}") from error
    validate_detector(detector, label)
    if detector.name != ep.name:
        raise DetectorError(f"{label}: entry point `{ep.name}` names detector `{detector.name}`")
    return detector


def entry_points(group: str) -> Iterable[EntryPoint]:
    """The installed entry points of `group`. importlib.metadata loads here, on first use:
    detection starts reading the weights before it looks for plug-ins."""
    from importlib.metadata import entry_points as installed

    return installed(group=group)


@functools.cache
def load_detectors() -> tuple[Detector, ...]:
    """Every detector registered in `originality.detectors`, validated, sorted by name.

    Cached for the process; `load_detectors.cache_clear()` forgets it.
    """
    found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (ep.name, ep.value))
    seen: dict[str, EntryPoint] = {}
    for ep in found:
        if ep.name in seen and seen[ep.name].value != ep.value:
            raise DetectorError(
                f"detector plug-in `{ep.name}` is registered twice: "
                f"{seen[ep.name].value} and {ep.value}"
            )
        seen[ep.name] = ep
    return validate_detectors(_instantiate(ep) for ep in seen.values())
