"""Fact sheets at the border: strict JSON in, validated against the fact catalogue.

The envelope is a pydantic model; the `facts` part is a pydantic model built from the
catalogue, so the schema in `schemas/` and the validation are the same thing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, create_model

from .catalogue import FactCatalogue, Type
from .diagnostics import InputError
from .files import read_bytes

__all__ = [
    "FACTS_SCHEMA_ID", "FactSheet", "Subject", "DetectorInfo", "fact_sheet_model",
    "load_fact_sheet", "parse_fact_sheet", "validate_fact_sheet", "read_json", "canonical_json",
    "format_json_path",
]

FACTS_SCHEMA_ID = "originality.facts/1"


class Subject(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(description="the model's name (its folder's base name)")
    digest: Optional[str] = Field(default=None, description="digest over the model's files")


class DetectorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    version: str
    emits: list[str] = Field(default_factory=list, description="top-level fact keys this detector wrote")


@dataclass(frozen=True)
class FactSheet:
    """A validated fact sheet: the raw facts (evaluated as they are) and its digest."""

    name: str  # where it was read from, for messages
    subject: dict
    detectors: tuple[dict, ...]
    facts: dict
    digest: str

    @functools.cached_property
    def owner_labels(self) -> dict[str, str]:
        """Top-level fact key -> `detector@version` that wrote it."""
        out: dict[str, str] = {}
        for d in self.detectors:
            for key in d.get("emits", ()):
                out.setdefault(key, f"{d['name']}@{d['version']}")
        return out


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def json_digest(data: Any) -> str:
    """`sha256:` and the hex digest of the data's canonical JSON."""
    return "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()


_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _annotation(t: Type, name: str, catalogue: FactCatalogue, integer: bool = False) -> Any:
    if t.kind == "boolean":
        return StrictBool
    if t.kind == "number":
        # strict float takes ints too, refuses booleans and text; integers stay integers
        return StrictInt if integer else float
    if t.kind == "string":
        return Literal[t.values] if t.values else StrictStr
    if t.kind == "list":
        return list[_annotation(t.elem, name + "Item", catalogue)]
    if t.kind == "record":
        fields = {}
        for key, sub in t.fields.items():
            spec = catalogue.spec(sub.path) or catalogue.spec(sub.path + "[]")
            integer = spec is not None and spec.type == "integer"
            fields[key] = (Optional[_annotation(sub, _camel(name, key), catalogue, integer)],
                           Field(default=None, description=spec.doc if spec else None))
        return create_model(name, __config__=_STRICT, **fields)
    return Any


def _camel(prefix: str, key: str) -> str:
    return prefix + "".join(part.capitalize() for part in key.split("_"))


@functools.lru_cache(maxsize=8)
def fact_sheet_model(catalogue: FactCatalogue) -> type[BaseModel]:
    facts = _annotation(catalogue.root, "Facts", catalogue)
    return create_model(
        "FactSheet",
        __config__=ConfigDict(extra="forbid", strict=True, title="originality fact sheet"),
        schema_=(Literal[FACTS_SCHEMA_ID], Field(alias="schema")),
        subject=(Subject, ...),
        detectors=(list[DetectorInfo], ...),
        facts=(facts, ...),
    )


def read_json(path: str | Path, what: str = "file") -> Any:
    """Strict JSON from a file: one-line errors with line:column; duplicate keys and
    NaN are refused."""
    return parse_json_bytes(read_bytes(path, what), str(path))


def parse_json_bytes(data: bytes, name: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(name, f"byte {err.start}", "is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                          parse_int=_bounded_int)
    except _NotJsonNumber as err:
        where = _position(text, re.compile(r"(?<![\w\"])(-?Infinity|NaN)(?![\w\"])"))
        raise InputError(f"{name}{where}", None, f"invalid JSON: `{err.args[0]}` is not a JSON number") from None
    except _TooLong as err:
        where = _position(text, re.compile(r"(?<![\w\".])" + re.escape(err.args[0]) + r"(?![\w.])"))
        raise InputError(f"{name}{where}", None,
                         f"a whole number of {len(err.args[0].lstrip('-'))} digits; at most {MAX_DIGITS} are read") \
            from None
    except RecursionError:
        raise InputError(name, None, "invalid JSON: it nests too deeply") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{name}:{err.lineno}:{err.colno}", None, f"invalid JSON: {err.msg.lower()}") from None
    except _DuplicateKey as err:
        key = err.args[0]
        where = _position(text, re.compile(re.escape(json.dumps(key)) + r"\s*:"), occurrence=2)
        raise InputError(f"{name}{where}", None, f"invalid JSON: key `{key}` appears twice in one object") from None


def _position(text: str, pattern: "re.Pattern[str]", occurrence: int = 1) -> str:
    """`:line:col` of a pattern's n-th match (best effort: the parser reports no place)."""
    for n, m in enumerate(pattern.finditer(text), 1):
        if n == occurrence:
            line = text.count("\n", 0, m.start()) + 1
            column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            return f":{line}:{column}"
    return ""


class _DuplicateKey(ValueError):
    """A JSON object names the same key twice (the last one would silently win)."""


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _NotJsonNumber(ValueError):
    """NaN or Infinity: Python's reader takes them, JSON does not."""


def _no_constants(name):
    raise _NotJsonNumber(name)


# No count, size or seed a fact sheet holds comes near this; longer numbers are refused
# before Python turns them into integers (which it limits to 4,300 digits).
MAX_DIGITS = 40


class _TooLong(ValueError):
    """A whole number longer than any fact holds."""


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_DIGITS + (digits[0] == "-"):
        raise _TooLong(digits)
    return int(digits)


def format_json_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            part = "schema" if part == "schema_" else part
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _problem(err: dict, catalogue: FactCatalogue) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        loc = err["loc"]
        if loc and loc[0] == "facts":
            return "is not a fact any installed detector declares"
        return "is not a field of a fact sheet"
    if kind == "missing":
        return "is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected one of {expected.replace(chr(39), '`')}, got {_show(value)}"
    if kind == "float_type":
        return f"expected a number, got {_show(value)}"
    if kind in ("int_type", "int_from_float"):
        return f"expected a whole number, got {_show(value)}"
    if kind == "finite_number":
        return "expected a finite number"
    if kind in ("string_type",):
        return f"expected a text, got {_show(value)}"
    if kind in ("bool_type",):
        return f"expected true or false, got {_show(value)}"
    if kind in ("list_type",):
        return f"expected a list, got {_show(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected an object, got {_show(value)}"
    msg = err.get("msg", "is invalid")
    return msg[0].lower() + msg[1:]


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`' if len(value) < 40 else "a text"
    if isinstance(value, (int, float)):
        return f"`{value}`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value"


def _loc_key(loc: tuple) -> tuple:
    """Sort JSON paths as a reader would: components[2] before components[10]."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in loc)


def validate_fact_sheet(data: Any, name: str, catalogue: FactCatalogue) -> FactSheet:
    """Check a parsed fact sheet. Raises InputError naming the JSON path of the first
    problem (and how many more there are)."""
    if not isinstance(data, dict):
        raise InputError(name, "(top level)", f"expected a fact sheet object, got {_show(data)}")
    try:
        fact_sheet_model(catalogue).model_validate(data)
    except ValidationError as err:
        errors = sorted(err.errors(include_url=False), key=lambda e: _loc_key(e["loc"]))
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise InputError(name, format_json_path(first["loc"]), _problem(first, catalogue) + more) from None
    try:
        digest = json_digest(data)
    except UnicodeEncodeError:
        raise InputError(name, format_json_path(_surrogate_at(data)),
                         "a text holds half of a UTF-16 surrogate pair (`\\ud800`-`\\udfff` alone), "
                         "which is no character") from None
    return FactSheet(name=name, subject=data["subject"], detectors=tuple(data["detectors"]),
                     facts=data["facts"], digest=digest)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_at(value: Any, loc: tuple = ()) -> tuple:
    """Where the first text holding a lone surrogate is (JSON escapes can write one)."""
    if isinstance(value, str):
        return loc if _SURROGATE.search(value) else ()
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return loc + (key,)
        found = _surrogate_at(item, loc + (key,))
        if found:
            return found
    return ()


def parse_fact_sheet(data: bytes, name: str, catalogue: FactCatalogue) -> FactSheet:
    return validate_fact_sheet(parse_json_bytes(data, name), name, catalogue)


def load_fact_sheet(path: str | Path, catalogue: FactCatalogue) -> FactSheet:
    return validate_fact_sheet(read_json(path, "fact sheet"), str(path), catalogue)
