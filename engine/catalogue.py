"""The fact catalogue: every fact detectors declare, as a typed tree the checker walks.

Declarations come from the plug-ins in the entry-point group `originality.detectors`;
the engine reads only their `name`, `emits` and `facts`, never a built-in by name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Iterable, Mapping

__all__ = [
    "Type", "BOOL", "NUMBER", "STRING", "ANY", "list_of", "string_enum",
    "FactSpec", "FactCatalogue", "load_fact_catalogue", "catalogue_from_declarations",
    "CatalogueError",
]

ENTRY_POINT_GROUP = "originality.detectors"


@dataclass(frozen=True)
class Type:
    """A value type of the policy language.

    kind: boolean | number | string | list | record | any. A string may list the values
    it can take (an enum); a list has an element type; a record has fields.
    """

    kind: str
    values: tuple[str, ...] = ()
    elem: "Type | None" = None
    fields: Mapping[str, "Type"] = field(default_factory=dict, compare=False, hash=False)
    path: str = ""  # catalogue path of a record or fact, e.g. "components[].match"

    def describe(self) -> str:
        """How the type reads in a message, after "a": "list of texts", "group of facts"."""
        if self.kind == "list":
            if self.elem is None or self.elem.kind == "any":
                return "list"
            return f"list of {_PLURAL.get(self.elem.kind, 'items')}"
        if self.kind == "record":
            return "group of facts" if self.path else "fact sheet"
        if self.kind == "any":
            return "value"
        return {"string": "text", "boolean": "true/false value"}.get(self.kind, self.kind)


_PLURAL = {"boolean": "true/false values", "number": "numbers", "string": "texts", "record": "groups of facts",
           "list": "lists"}

BOOL = Type("boolean")
NUMBER = Type("number")
STRING = Type("string")
ANY = Type("any")


def list_of(elem: Type) -> Type:
    return Type("list", elem=elem)


def string_enum(values: Iterable[str], path: str = "") -> Type:
    return Type("string", values=tuple(values), path=path)


@dataclass(frozen=True)
class FactSpec:
    path: str
    type: str  # the declared type: boolean, integer, number, string, enum, list[string], list[object]
    doc: str
    detector: str
    values: tuple[str, ...] = ()


class CatalogueError(Exception):
    """A detector plug-in whose declarations cannot form a catalogue."""


@dataclass(frozen=True, eq=False)
class FactCatalogue:
    specs: tuple[FactSpec, ...]
    root: Type
    # top-level fact key -> the detector that owns it
    owners: Mapping[str, str]

    def spec(self, path: str) -> FactSpec | None:
        return self._by_path.get(path)

    @functools.cached_property
    def _by_path(self) -> dict[str, FactSpec]:
        return {s.path: s for s in self.specs}

    def type_at(self, path: str) -> Type | None:
        """The type at a catalogue path such as `components[].match.relation`."""
        node = self.root
        for part in _split(path):
            if part == "[]":
                if node.kind != "list":
                    return None
                node = node.elem
            else:
                if node.kind != "record" or part not in node.fields:
                    return None
                node = node.fields[part]
        return node


def _split(path: str) -> list[str]:
    """`components[].match` -> ["components", "[]", "match"]."""
    parts = []
    for piece in path.split("."):
        if piece.endswith("[]"):
            parts += [piece[:-2], "[]"]
        else:
            parts.append(piece)
    return parts


_LEAF = {"boolean": BOOL, "integer": NUMBER, "number": NUMBER, "string": STRING,
         "list[string]": list_of(STRING)}


def catalogue_from_declarations(detectors: Iterable[tuple[str, Iterable[str], Iterable[Any]]]) -> FactCatalogue:
    """Build the catalogue from (detector name, emitted keys, fact declarations).

    A declaration is anything with `path`, `type`, `doc` and `values` attributes.
    """
    specs: list[FactSpec] = []
    owners: dict[str, str] = {}
    for name, emits, facts in detectors:
        for key in emits:
            if key in owners:
                raise CatalogueError(f"detectors `{owners[key]}` and `{name}` both emit `{key}`")
            owners[key] = name
        for decl in facts:
            top = _split(decl.path)[0]
            if owners.get(top) != name:
                raise CatalogueError(f"detector `{name}` declares `{decl.path}` outside what it emits")
            specs.append(FactSpec(decl.path, decl.type, decl.doc, name, tuple(getattr(decl, "values", ()) or ())))
    specs.sort(key=lambda s: s.path)
    seen = set()
    for s in specs:
        if s.path in seen:
            raise CatalogueError(f"fact `{s.path}` is declared twice")
        seen.add(s.path)
    return FactCatalogue(tuple(specs), _build_tree(specs), owners)


def _build_tree(specs: list[FactSpec]) -> Type:
    # Records are built bottom-up from the declared paths; intermediate groups
    # (`components[].match`, `declared.init`) need no declaration of their own.
    tree: dict = {}
    for spec in specs:
        node = tree
        parts = _split(spec.path)
        if parts[-1] == "[]":  # `components[]` declares the list itself
            parts = parts[:-1]
        for part in parts:
            node = node.setdefault(part, {})
        node["__spec__"] = spec
    return _to_type(tree, "")


def _to_type(node: dict, path: str) -> Type:
    fields: dict[str, Type] = {}
    for name, child in sorted(node.items()):
        if name == "__spec__":
            continue
        child_path = f"{path}.{name}" if path else name
        spec: FactSpec | None = child.get("__spec__")
        if spec is not None and spec.type == "list[object]":
            elem = _to_type(child.get("[]", {}), child_path + "[]")
            fields[name] = Type("list", elem=elem, path=child_path)
        elif spec is not None and spec.type == "enum":
            fields[name] = string_enum(spec.values, child_path)
        elif spec is not None:
            t = _LEAF[spec.type]
            fields[name] = Type(t.kind, elem=t.elem, path=child_path)
        else:
            fields[name] = _to_type(child, child_path)
    return Type("record", fields=fields, path=path)


def _entry_points():
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


@functools.lru_cache(maxsize=1)
def load_fact_catalogue() -> FactCatalogue:
    """The catalogue of every installed detector plug-in."""
    found = []
    for ep in sorted(_entry_points(), key=lambda e: e.name):
        try:
            cls = ep.load()
            det = cls()
            found.append((str(det.name), tuple(det.emits), tuple(det.facts)))
        except Exception as err:  # a broken plug-in must not take the engine down silently
            raise CatalogueError(f"detector plug-in `{ep.name}` ({ep.value}) cannot be loaded: {err}") from None
    return catalogue_from_declarations(found)
