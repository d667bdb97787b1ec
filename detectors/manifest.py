"""The `manifest` detector: the team's own claims from `originality.yaml`, as `declared.*`.

The manifest is a pydantic model; its JSON Schema is generated into schemas/.
"""

from __future__ import annotations

import difflib
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from detectors.base import LONE_SURROGATE, DetectContext, FactDecl, InputError, inside_folder

__all__ = [
    "MANIFEST_FILE",
    "SCHEMA_PATH",
    "Manifest",
    "ManifestComponent",
    "ManifestInit",
    "ManifestLicence",
    "ManifestDetector",
    "find_manifest",
    "load_manifest",
    "compose_yaml",
    "manifest_schema",
    "parse_manifest",
    "write_schema",
]

MANIFEST_FILE = "originality.yaml"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "manifest.schema.json"
# A manifest is a short, hand-written file; anything larger is a mistake or an attack.
_MAX_BYTES = 1 << 20

CountryCode = Annotated[
    str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code, e.g. KR")
]
Text = Annotated[str, Field(min_length=1)]


class _Strict(BaseModel):
    # strict: YAML already gives typed values; "12" must not pass as a seed.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ManifestInit(_Strict):
    """How pre-training was initialised."""

    method: Literal["random", "pretrained", "mixed"] = Field(
        description="random: from scratch; pretrained: from another model's weights; "
        "mixed: some components from pretrained weights"
    )
    seed: int | None = Field(None, description="initialisation seed")
    recipe: str | None = Field(None, description="initialisation recipe, in words or code name")


class ManifestComponent(_Strict):
    """One part of the model and where its weights came from."""

    name: Text = Field(description="component name, matching the detected component's name")
    prefix: Text | None = Field(
        None, description="tensor-name prefix of the component, overriding detection"
    )
    source: Literal["own", "external"] = Field(
        description="own: trained by the team; external: weights from elsewhere"
    )
    reference: Text | None = Field(None, description="the model it came from, if external")
    origin: CountryCode | None = None
    member: Text | None = Field(None, description="consortium member who built it")
    license: Text | None = Field(None, description="licence of its weights")
    reinitialized: bool | None = Field(None, description="reset before training")
    frozen: bool | None = Field(None, description="kept frozen during training")


class ManifestLicence(_Strict):
    """A licence under which (part of) the model is released."""

    id: Text = Field(description="SPDX identifier or licence name")
    applies_to: list[Text] = Field(
        default_factory=list, description="component names it covers; empty: the whole model"
    )
    url: Text | None = None


class Manifest(_Strict):
    """originality.yaml: what a team declares about its model's provenance."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        title="originality manifest",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: Literal[1] = Field(description="manifest format version")

    @field_validator("schema_version", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # `true` and `1.0` equal 1 to Python: refused as the literal they are not.
        if value.__class__ is not int:
            raise PydanticCustomError("literal_error", "not the whole number 1", {"expected": "1"})
        return value
    organisation: Text = Field(description="organisation submitting the model")
    members: list[Text] | None = Field(None, description="consortium members")
    base_model: Text | None = Field(None, description="declared base model; null when none")
    from_scratch: bool | None = Field(None, description="pre-trained from scratch")
    init: ManifestInit | None = None
    components: list[ManifestComponent] | None = None
    licences: list[ManifestLicence] | None = None


# --- errors: pydantic locations -> JSON-path text and YAML marks -------------------------


def _path_text(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _node_at(root: yaml.Node, loc: tuple[Any, ...], at_key: bool = False) -> tuple[yaml.Node, bool]:
    """The deepest node along `loc`, and whether it is the node for the whole of `loc`.

    With `at_key`, the last step lands on the mapping key rather than its value.
    """
    node = root
    for i, part in enumerate(loc):
        child = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if key.value == part:
                    child = key if at_key and i == len(loc) - 1 else value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
        if child is None:
            return node, False
        node = child
    return node, True


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: Any = Manifest
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        model = next(
            (
                t
                for t in _flatten_annotation(field.annotation)
                if isinstance(t, type) and issubclass(t, BaseModel)
            ),
            None,
        )
        if model is None:
            return None
    return model


def _flatten_annotation(annotation: Any) -> list[Any]:
    args = getattr(annotation, "__args__", None)
    if not args:
        return [annotation]
    return [t for a in args for t in _flatten_annotation(a)]


def _got(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"the number `{value}`"
    if isinstance(value, str):
        return f"the text `{value}`"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _problem(error: dict[str, Any], node: yaml.Node | None) -> str:
    kind, value, loc = error["type"], error.get("input"), error["loc"]
    if kind == "missing":
        return f"`{loc[-1]}` is required"
    if kind == "extra_forbidden":
        allowed = sorted((_model_at(loc[:-1]) or Manifest).model_fields)
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = (
            f"; did you mean `{guess[0]}`?" if guess else f"; expected one of {', '.join(allowed)}"
        )
        return f"unknown field `{loc[-1]}`{hint}"
    if kind == "literal_error" and loc == ("schema_version",):
        shown = f'"{value}", a text' if isinstance(value, str) else str(value).lower()
        return f"unsupported schema_version `{shown}`; this reader knows the whole number 1"
    if kind == "literal_error":
        value = f"`{value}`" if isinstance(value, str) else _got(value)
        expected = re.findall(r"'([^']*)'|(\d+)", error["ctx"]["expected"])
        options = ", ".join(a or b for a, b in expected)
        return f"expected one of {options}, got {value}"
    if kind == "string_type":
        hint = ""
        if isinstance(node, yaml.ScalarNode) and node.style is None and value is not None:
            # YAML reads bare `NO`, `yes`, `1.0` as non-text; quoting keeps the text.
            hint = f'; write "{node.value}" in quotes'
        return f"expected text, got {_got(value)}{hint}"
    if kind == "string_pattern_mismatch":
        return f"expected a two-letter country code such as `KR`, got {_got(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "int_type":
        return f"expected a whole number, got {_got(value)}"
    if kind == "bool_type":
        return f"expected true or false, got {_got(value)}"
    if kind == "list_type":
        return f"expected a list, got {_got(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping of fields, got {_got(value)}"
    message = str(error.get("msg", "invalid value"))
    return message[0].lower() + message[1:]


def _place(root: yaml.Node, loc: tuple[Any, ...], at_key: bool = False) -> str:
    """`path at line L:C`, the mark of the deepest node along the path that exists."""
    path = _path_text(loc)
    # Unknown fields are shown at their key, everything else at its value.
    node, _ = _node_at(root, loc, at_key)
    mark = node.start_mark
    line_col = f"line {mark.line + 1}:{mark.column + 1}"
    return f"{path} at {line_col}" if path else line_col


class _ManifestLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, at the alias's own place, and reads whole numbers
    and truth values as YAML 1.2 does.

    Aliases only obscure a short hand-written file, and they allow exponential blow-up.
    YAML 1.1, PyYAML's default, reads a seed written `010` as 8 (octal) and `1:30` as 90
    (base 60), and `yes`/`no`/`on`/`off` as truth values: a declaration would change
    without a word. Here `010` is ten, `1:30` a text, and only `true`/`false` are truth
    values.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:bool")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", mark)
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        sign, digits = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
        if digits[:2] in ("0o", "0x"):
            return sign * int(digits[2:], 8 if digits[1] == "o" else 16)
        return sign * int(digits, 10)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        return self.construct_scalar(node).lower() == "true"


_ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789"))
_ManifestLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_ManifestLoader.add_constructor("tag:yaml.org,2002:int", _ManifestLoader.construct_yaml_int)
_ManifestLoader.add_constructor("tag:yaml.org,2002:bool", _ManifestLoader.construct_yaml_bool)


def compose_yaml(text: str, file: Any) -> tuple[yaml.Node | None, Any]:
    """One YAML document as (node tree, plain data): SafeLoader only, so no Python tags;
    aliases, merge keys and duplicate keys refused; any problem one InputError with its
    `line L:C`. Composed first, so that the nodes keep their places."""
    try:
        loader = _ManifestLoader(text)
    except yaml.reader.ReaderError as error:  # a control character: refused before parsing
        pos = error.position
        line, column = text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
        raise InputError(file, f"line {line}:{column}",
                         f"invalid YAML: character U+{error.character:04X} is not allowed") from None
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_nodes(root, file)
        return root, loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        place = f"line {mark.line + 1}:{mark.column + 1}" if mark else None
        problem = error.problem or error.context or "malformed YAML"
        if problem == "but found another document":
            problem = "expected one document, found another"
        raise InputError(file, place, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise InputError(file, None, f"invalid YAML: {error}") from None
    except RecursionError:
        raise InputError(file, None, "invalid YAML: it nests too deeply") from None
    finally:
        loader.dispose()


def _check_nodes(node: yaml.Node, shown: str) -> None:
    # PyYAML silently keeps the last of two equal keys and expands `<<` merges: refuse both.
    if isinstance(node, yaml.MappingNode):
        keys: set[Any] = set()
        for key, value in node.value:
            mark = key.start_mark
            place = f"line {mark.line + 1}:{mark.column + 1}"
            if key.tag == "tag:yaml.org,2002:merge":
                raise InputError(shown, place, "merge keys (`<<`) are not allowed")
            if isinstance(key, yaml.ScalarNode):
                if key.value in keys:
                    raise InputError(shown, place, f"duplicate key `{key.value}`")
                keys.add(key.value)
            if key.tag != "tag:yaml.org,2002:str":  # every key these files know is a name
                raise InputError(shown, place, f"a key must be a name, not `{str(key.value)[:40]}`")
            _check_nodes(key, shown)
            _check_nodes(value, shown)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_nodes(item, shown)
    elif isinstance(node, yaml.ScalarNode) and LONE_SURROGATE.search(node.value):
        mark = node.start_mark  # (written as an escape: half of a UTF-16 pair, no character)
        raise InputError(shown, f"line {mark.line + 1}:{mark.column + 1}",
                         "holds half of a UTF-16 surrogate pair, which is no character")


def _consistency(manifest: Manifest) -> list[tuple[tuple[Any, ...], str]]:
    """Rules across fields that a JSON Schema cannot say."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    names: dict[str, int] = {}
    members = set(manifest.members or ())
    for i, component in enumerate(manifest.components or ()):
        if component.name in names:
            problems.append(
                (
                    ("components", i, "name"),
                    f"component `{component.name}` is already declared "
                    f"at components[{names[component.name]}]",
                )
            )
        names.setdefault(component.name, i)
        if component.source == "external" and component.reference is None:
            problems.append((("components", i), "an external component must name its `reference`"))
        if (
            manifest.members is not None
            and component.member is not None
            and component.member not in members
        ):
            problems.append(
                (("components", i, "member"), f"`{component.member}` is not listed in `members`")
            )
    if manifest.members is not None:
        seen: set[str] = set()
        for i, member in enumerate(manifest.members):
            if member in seen:
                problems.append((("members", i), f"member `{member}` is listed twice"))
            seen.add(member)
    for i, licence in enumerate(manifest.licences or ()):
        for j, name in enumerate(licence.applies_to):
            if name not in names:
                problems.append(
                    (("licences", i, "applies_to", j), f"no component is named `{name}`")
                )
    return problems


def parse_manifest(text: str | bytes, file: str = MANIFEST_FILE) -> Manifest:
    """Parse and validate manifest text; any problem is one InputError with its place."""
    if isinstance(text, bytes):
        if len(text) > _MAX_BYTES:
            raise InputError(file, None, f"is larger than {_MAX_BYTES} bytes")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InputError(file, f"byte {error.start}", "is not UTF-8 text") from None
    root, data = compose_yaml(text, file)
    if root is None:
        raise InputError(file, None, "is empty; expected a mapping with `schema_version: 1`")
    if not isinstance(data, dict):
        raise InputError(file, _place(root, ()), f"expected a mapping of fields, got {_got(data)}")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as errors:
        # Report one problem: the first in file order, missing fields last (a missing
        # field is often a misspelt one, and the unknown-field line says so better).
        def order(error: dict[str, Any]) -> tuple[bool, int, int]:
            node, _ = _node_at(root, error["loc"])
            return error["type"] == "missing", node.start_mark.line, node.start_mark.column

        first = min(errors.errors(), key=order)
        loc = first["loc"]
        node, exact = _node_at(root, loc)
        # A missing field is placed at the mapping that lacks it.
        where = loc[:-1] if first["type"] == "missing" else loc
        place = _place(root, where, at_key=first["type"] == "extra_forbidden")
        raise InputError(file, place, _problem(first, node if exact else None)) from None
    problems = _consistency(manifest)
    if problems:
        loc, problem = problems[0]
        raise InputError(file, _place(root, loc), problem)
    return manifest


def load_manifest(path: Path) -> Manifest:
    """Read and validate a manifest file; errors name the path as given."""
    shown = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(shown, None, "manifest not found") from None
    except OSError as error:
        raise InputError(shown, None, f"cannot be read: {error.strerror or error}") from None
    return parse_manifest(data, shown)


def find_manifest(root: Path, explicit: Path | None = None) -> Path | None:
    """The manifest to use: the explicit one if given, else `originality.yaml` in the folder."""
    if explicit is not None:
        return Path(explicit)
    candidate = Path(root) / MANIFEST_FILE
    return inside_folder(root, candidate) if candidate.is_file() else None


def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema, generated from the pydantic model."""
    return Manifest.model_json_schema()


def write_schema(path: Path = SCHEMA_PATH) -> Path:
    """Regenerate schemas/manifest.schema.json (`python -m detectors.manifest`)."""
    text = json.dumps(manifest_schema(), indent=2, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)


_COMPONENT_FACTS = (
    "name",
    "source",
    "reference",
    "origin",
    "member",
    "license",
    "reinitialized",
    "frozen",
)


class ManifestDetector:
    """Reads the manifest and reports its claims under `declared`, apart from detection."""

    name = "manifest"
    version = "1.0.0"
    emits = ("declared",)
    facts = (
        FactDecl("declared.present", "boolean", "a manifest was found"),
        FactDecl("declared.organisation", "string", "organisation submitting the model"),
        FactDecl("declared.members", "list[string]", "consortium members"),
        FactDecl("declared.base_model", "string", "declared base model, null when none"),
        FactDecl("declared.from_scratch", "boolean", "declared pre-trained from scratch"),
        FactDecl(
            "declared.init.method",
            "enum",
            "declared initialisation",
            ("random", "pretrained", "mixed"),
        ),
        FactDecl("declared.init.seed", "integer", "declared initialisation seed"),
        FactDecl("declared.components[]", "list[object]", "declared components"),
        FactDecl(
            "declared.components[].name",
            "string",
            "component name (matches `components[].name`)",
        ),
        FactDecl(
            "declared.components[].source",
            "enum",
            "where its weights came from",
            ("own", "external"),
        ),
        FactDecl(
            "declared.components[].reference", "string", "reference it came from, if external"
        ),
        FactDecl("declared.components[].origin", "string", "origin of that reference"),
        FactDecl("declared.components[].member", "string", "consortium member who built it"),
        FactDecl("declared.components[].license", "string", "licence of its weights"),
        FactDecl(
            "declared.components[].reinitialized", "boolean", "declared reset before training"
        ),
        FactDecl("declared.components[].frozen", "boolean", "declared frozen during training"),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        path = find_manifest(Path(model.root), context.manifest)
        facts: dict[str, Any] = {
            "present": path is not None,
            "organisation": None,
            "members": None,
            "base_model": None,
            "from_scratch": None,
            "init": {"method": None, "seed": None},
            "components": None,
        }
        if path is None:
            return {"declared": facts}
        manifest = load_manifest(path)
        facts.update(
            organisation=manifest.organisation,
            members=list(manifest.members) if manifest.members is not None else None,
            base_model=manifest.base_model,
            from_scratch=manifest.from_scratch,
        )
        if manifest.init is not None:
            facts["init"] = {"method": manifest.init.method, "seed": manifest.init.seed}
        if manifest.components is not None:
            facts["components"] = [
                {key: getattr(component, key) for key in _COMPONENT_FACTS}
                for component in manifest.components
            ]
        return {"declared": facts}


if __name__ == "__main__":
    sys.stdout.write(f"wrote {write_schema()}\n")
