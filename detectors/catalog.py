"""The reference catalogue: one folder per known public model, with each detector's fingerprint.

Entries are written whole or not at all: built in a hidden temporary folder, then renamed.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.base import InputError, Reference
from detectors.model import open_model, read_json
from detectors.registry import load_detectors

__all__ = [
    "REFERENCE_FILE",
    "ReferenceEntry",
    "add_reference",
    "list_references",
    "load_references",
    "validate_id",
    "validate_origin",
]

REFERENCE_FILE = "reference.json"
# A folder name that is safe on every file system: no separators, no `..`, no leading dot.
_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_ORIGIN = re.compile(r"^[A-Z]{2}$")

Identifier = Annotated[str, Field(pattern=_ID.pattern)]
Origin = Annotated[str, Field(pattern=_ORIGIN.pattern)]


class ReferenceEntry(BaseModel):
    """`reference.json`: who made a reference model, and which components it describes."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    schema_version: Literal[1] = 1
    id: Identifier
    origin: Origin
    organisation: str | None = None
    license: str | None = None
    components: dict[str, str] = Field(default_factory=dict)


def validate_id(id: str) -> str:
    """A reference id usable as a folder name; InputError otherwise."""
    if not isinstance(id, str) or not _ID.match(id) or ".." in id:
        raise InputError(
            f"reference id `{id}`",
            None,
            "is not a safe folder name: use letters, digits, `.`, `_` and `-`, "
            "starting and ending with a letter or digit",
        )
    return id


def validate_origin(origin: str) -> str:
    """An ISO 3166 alpha-2 country code, upper-cased; InputError otherwise."""
    code = origin.strip().upper() if isinstance(origin, str) else ""
    if not _ORIGIN.match(code):
        raise InputError(
            f"origin `{origin}`", None, "expected a two-letter country code such as `US`"
        )
    return code


def _validate_components(components: Mapping[str, str] | None, model: Any) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, prefix in sorted((components or {}).items()):
        if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]*$", name):
            raise InputError(
                f"component `{name}`", None, "expected a lower-case name like `vision_encoder`"
            )
        if not isinstance(prefix, str) or not prefix:
            raise InputError(f"component `{name}`", None, "needs a tensor-name prefix")
        # A prefix that matches nothing is a typo; it would fingerprint an empty component.
        if not any(tensor.startswith(prefix) for tensor in model.tensors):
            raise InputError(f"component `{name}`", None, f"no tensor name starts with `{prefix}`")
        checked[name] = prefix
    return checked


def _entry_text(entry: ReferenceEntry) -> str:
    return json.dumps(entry.model_dump(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def add_reference(
    path: str | Path,
    *,
    id: str,
    origin: str,
    organisation: str | None = None,
    license: str | None = None,
    components: Mapping[str, str] | None = None,
    catalog: str | Path,
    replace: bool = False,
    detectors: Iterable[Any] | None = None,
) -> Reference:
    """Fingerprint the model at `path` into `catalog/<id>/`; return its Reference.

    Every detector with a `fingerprint` method writes its own file there. An existing
    id is replaced only with `replace=True`. `detectors` defaults to the registered ones.
    """
    id = validate_id(id)
    origin = validate_origin(origin)
    catalog = Path(catalog)
    final = catalog / id
    if (final.exists() or final.is_symlink()) and not replace:
        raise InputError(
            final, None, f"reference `{id}` is already in the catalogue; replace it explicitly"
        )
    if catalog.exists() and not catalog.is_dir():
        raise InputError(catalog, None, "catalogue is not a folder")
    if detectors is None:
        detectors = load_detectors()
    with open_model(path) as model:
        entry = ReferenceEntry(
            id=id,
            origin=origin,
            organisation=organisation,
            license=license,
            components=_validate_components(components, model),
        )
        catalog.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".adding-{id}-", dir=catalog))
        try:
            (building / REFERENCE_FILE).write_text(_entry_text(entry), encoding="utf-8")
            for detector in sorted(detectors, key=lambda d: d.name):
                fingerprint = getattr(detector, "fingerprint", None)
                if callable(fingerprint):
                    fingerprint(model, building, dict(entry.components))
            building.chmod(0o755)  # mkdtemp makes it owner-only
            if final.exists() or final.is_symlink():
                retired = Path(tempfile.mkdtemp(prefix=f".replaced-{id}-", dir=catalog))
                final.rename(retired / id)
                try:
                    building.rename(final)
                except BaseException:
                    (retired / id).rename(final)
                    raise
                _remove(retired)
            else:
                building.rename(final)
        except BaseException:
            _remove(building)
            raise
    return _to_reference(entry, final)


def _to_reference(entry: ReferenceEntry, folder: Path) -> Reference:
    return Reference(
        id=entry.id,
        origin=entry.origin,
        path=folder,
        organisation=entry.organisation,
        license=entry.license,
        components=dict(entry.components),
    )


def _field_problem(error: dict[str, Any]) -> tuple[str, str]:
    loc = ".".join(str(part) for part in error["loc"]) or None
    kind = error["type"]
    if kind == "missing":
        return f"field `{loc}`", "is required"
    if kind == "extra_forbidden":
        return f"field `{loc}`", "is not a reference field"
    message = str(error.get("msg", "invalid value"))
    return f"field `{loc}`", message[:1].lower() + message[1:]


def _read_entry(folder: Path) -> ReferenceEntry:
    file = folder / REFERENCE_FILE
    if not file.is_file():
        raise InputError(file, None, "missing: not a reference folder")
    data = read_json(file)
    if not isinstance(data, dict):
        raise InputError(file, None, "expected a json object")
    try:
        entry = ReferenceEntry.model_validate(data)
    except ValidationError as errors:
        place, problem = _field_problem(errors.errors()[0])
        raise InputError(file, place, problem) from None
    if entry.id != folder.name:
        raise InputError(
            file, "field `id`", f"`{entry.id}` does not match its folder `{folder.name}`"
        )
    return entry


def _folders(catalog: str | Path) -> list[Path]:
    catalog = Path(catalog)
    if not catalog.is_dir():
        raise InputError(catalog, None, "catalogue folder does not exist")
    # Hidden folders are entries being built or replaced; they are not references yet.
    return sorted(
        (p for p in catalog.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def load_references(catalog: str | Path) -> tuple[Reference, ...]:
    """Every reference in the catalogue, sorted by id; a bad entry is an InputError."""
    return tuple(_to_reference(_read_entry(folder), folder) for folder in _folders(catalog))


def list_references(catalog: str | Path) -> list[dict[str, Any]]:
    """What the catalogue holds: each reference's fields and its files' sizes in bytes."""
    listed = []
    for folder in _folders(catalog):
        entry = _read_entry(folder)
        files = {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        listed.append(
            {
                "id": entry.id,
                "origin": entry.origin,
                "organisation": entry.organisation,
                "license": entry.license,
                "components": dict(entry.components),
                "files": files,
                "bytes": sum(files.values()),
            }
        )
    return listed
