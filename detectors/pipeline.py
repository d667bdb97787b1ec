"""Detection: open a model folder once, run every registered detector, assemble the fact sheet.

Each detector's output is checked against its declarations before it joins the sheet.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable

from detectors.base import DetectContext, Detector, FactDecl, InputError
from detectors.model import open_model
from detectors.registry import DetectorError, load_detectors, validate_detectors

__all__ = [
    "FACTS_SCHEMA",
    "check_output",
    "detect_model",
    "fact_catalogue",
]

FACTS_SCHEMA = "originality.facts/1"


def fact_catalogue(detectors: Iterable[Detector] | None = None) -> list[FactDecl]:
    """Every fact the detectors declare, sorted by path."""
    chosen = load_detectors() if detectors is None else validate_detectors(detectors)
    return sorted((fact for d in chosen for fact in d.facts), key=lambda f: f.path)


def _type_problem(decl: FactDecl, value: Any) -> str | None:
    kind = decl.type
    if kind == "boolean":
        ok = isinstance(value, bool)
    elif kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            return "is not a finite number"
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "enum":
        if not isinstance(value, str) or value not in decl.values:
            return f"is not one of {', '.join(decl.values)}"
        ok = True
    elif kind == "list[string]":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    else:  # list[object]
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return None if ok else f"is not of type {kind}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_output(detector: Detector, output: Any) -> None:
    """Raise DetectorError unless `output` holds only the detector's keys and declared facts.

    Null is always allowed (unknown). Objects that only group facts (`declared.init`)
    need no declaration of their own.
    """
    name = detector.name
    if not isinstance(output, dict):
        raise DetectorError(f"detector `{name}` returned {type(output).__name__}, not a mapping")
    declared = {fact.path: fact for fact in detector.facts}
    groups = {
        ".".join(parts[:i])
        for path in declared
        for parts in [path.split(".")]
        for i in range(1, len(parts))
    }

    def walk(value: Any, path: str) -> None:
        if value is None:
            return
        decl = declared.get(path) or declared.get(path + "[]")
        if decl is not None:
            problem = _type_problem(decl, value)
            if problem:
                raise DetectorError(
                    f"detector `{name}` wrote `{decl.path}` = {_shown(value)}, which {problem}"
                )
            if decl.type == "list[object]":
                for element in value:
                    for key, item in element.items():
                        walk(item, f"{decl.path}.{key}")
        elif path in groups:
            if not isinstance(value, dict):
                raise DetectorError(
                    f"detector `{name}` wrote `{path}` = {_shown(value)}, which is not an object"
                )
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        else:
            raise DetectorError(f"detector `{name}` wrote the undeclared fact `{path}`")

    for key, value in output.items():
        if key not in detector.emits:
            raise DetectorError(
                f"detector `{name}` wrote `{key}`, "
                f"which is not among its keys {list(detector.emits)}"
            )
        if not isinstance(value, dict) and key in groups:
            raise DetectorError(f"detector `{name}` wrote `{key}` = {_shown(value)}, not an object")
        walk(value, key)


def _progress_after(
    progress: Callable[[int, int], None] | None, extra: int
) -> Callable[[int, int], None] | None:
    # Detectors report their own pass; the file digest that follows adds `extra` bytes.
    if progress is None:
        return None
    return lambda done, total: progress(done, total + extra)


def detect_model(
    path: str | Path,
    catalog: str | Path | None = None,
    manifest: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    detectors: Iterable[Detector] | None = None,
) -> dict[str, Any]:
    """Run the detectors on the model folder at `path` and return its fact sheet.

    `catalog` is the reference catalogue folder, `manifest` a manifest outside the
    folder, `progress` is called with (bytes done, bytes total). `detectors` defaults
    to those registered in the entry-point group `originality.detectors`.
    """
    manifest_path = Path(manifest) if manifest is not None else None
    # Fail on a missing manifest before the long read of the weights.
    if manifest_path is not None and not manifest_path.is_file():
        raise InputError(manifest_path, None, "manifest not found")
    facts: dict[str, Any] = {}
    with open_model(path) as model:
        # The one pass that reads every byte starts first; loading the detectors (and
        # the libraries they import) and the catalogue overlaps with it.
        model.digest_in_background()
        chosen = load_detectors() if detectors is None else validate_detectors(detectors)
        if catalog is not None:
            from detectors.catalog import load_references

            references = load_references(catalog)
        else:
            references = ()
        context = DetectContext(
            references=references,
            manifest=manifest_path,
            progress=_progress_after(progress, model.total_bytes),
        )
        for detector in chosen:
            try:
                output = detector.detect(model, context)
            except (InputError, DetectorError):
                raise
            except Exception as error:
                raise DetectorError(
                    f"detector `{detector.name}` failed: {type(error).__name__}: {error}"
                ) from error
            check_output(detector, output)
            facts.update(output)
        if progress is not None:
            progress(model.total_bytes, 2 * model.total_bytes)
        subject = {"name": model.name, "digest": model.files_digest()}
        if progress is not None:
            progress(2 * model.total_bytes, 2 * model.total_bytes)
    sheet = {
        "schema": FACTS_SCHEMA,
        "subject": subject,
        "detectors": [
            {"name": d.name, "version": d.version, "emits": list(d.emits)} for d in chosen
        ],
        "facts": facts,
    }
    # One canonical form: sorted keys, lists not tuples, nothing that JSON cannot hold.
    try:
        return json.loads(json.dumps(sheet, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise DetectorError(f"the fact sheet cannot be written as JSON: {error}") from error
