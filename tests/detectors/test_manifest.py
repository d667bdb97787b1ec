"""The manifest: examples, the generated schema, declared facts, and one-line errors with places.

Every malformed case names the file, the JSON-like path, the line:column and the problem.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from detectors import manifest as manifest_module
from detectors.base import DetectContext, InputError
from detectors.manifest import (
    SCHEMA_PATH,
    ManifestDetector,
    load_manifest,
    manifest_schema,
    parse_manifest,
)
from detectors.model import open_model
from detectors.pipeline import check_output

from .test_pipeline import write_model

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "manifests").glob("*.yaml"))


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_manifests_are_valid(path: Path) -> None:
    manifest = load_manifest(path)
    assert manifest.schema_version == 1
    # The generated schema accepts what the model accepts.
    jsonschema.validate(yaml.safe_load(path.read_text()), manifest_schema())


def test_schema_file_matches_the_model() -> None:
    # Regenerate with `python -m detectors.manifest` after changing the model.
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == manifest_schema()


def test_schema_rejects_unknown_fields_like_the_model() -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"schema_version": 1, "organisation": "X", "extra": 1}, manifest_schema()
        )


def _detect(tmp_path: Path, manifest: str | None, explicit: Path | None = None) -> dict[str, Any]:
    root = write_model(tmp_path / "m", manifest=manifest)
    with open_model(root) as model:
        detector = ManifestDetector()
        out = detector.detect(model, DetectContext(manifest=explicit))
    check_output(detector, out)
    return out["declared"]


def test_declared_facts_follow_the_table(tmp_path: Path) -> None:
    text = (EXAMPLES[0].parent / "frozen-external-encoders.yaml").read_text()
    declared = _detect(tmp_path, text)
    assert declared["present"] is True
    assert declared["organisation"] == "Example Multimodal Lab"
    assert declared["members"] == ["Example Multimodal Lab"]
    assert declared["base_model"] is None and declared["from_scratch"] is True
    assert declared["init"] == {"method": "mixed", "seed": 1234}
    audio = declared["components"][2]
    assert audio == {
        "name": "audio_encoder",
        "source": "external",
        "reference": "whisper-large-v3",
        "origin": "US",
        "member": None,
        "license": "Apache-2.0",
        "reinitialized": False,
        "frozen": True,
    }
    # `prefix` and `recipe` guide detection but are not declared facts.
    assert "prefix" not in json.dumps(declared) and "recipe" not in declared["init"]


def test_no_manifest_is_present_false_and_unknowns(tmp_path: Path) -> None:
    declared = _detect(tmp_path, None)
    assert declared["present"] is False
    assert declared["organisation"] is None and declared["components"] is None
    assert declared["init"] == {"method": None, "seed": None}


def test_explicit_manifest_path_is_used(tmp_path: Path) -> None:
    outside = tmp_path / "claims.yaml"
    outside.write_text("schema_version: 1\norganisation: Outside\nbase_model: some-base\n")
    declared = _detect(tmp_path, "schema_version: 1\norganisation: Inside\n", explicit=outside)
    assert (declared["organisation"], declared["base_model"]) == ("Outside", "some-base")


def test_prefixes_are_available_to_other_detectors() -> None:
    text = (EXAMPLES[0].parent / "reset-external-encoder.yaml").read_text()
    manifest = parse_manifest(text)
    assert manifest.components is not None
    assert {c.name: c.prefix for c in manifest.components} == {
        "language_model": None,
        "vision_encoder": "model.vision_tower.",
    }


GOOD = "schema_version: 1\norganisation: Lab\n"

MALFORMED = [
    # (text, place, problem)
    ("schema_version: 1\norganisation: [Lab\n", "line 3:1", "invalid YAML: expected ',' or ']'"),
    ("schema_version: 1\n\torganisation: Lab\n", "line 2:1", "invalid YAML"),
    ("", None, "is empty"),
    ("schema_version: 1\norganisation: La\x00b\n", "line 2:17", "character U+0000 is not allowed"),
    ("- schema_version: 1\n", "line 1:1", "expected a mapping of fields, got a list"),
    (
        GOOD + "organisaton: Lab2\n",
        "organisaton at line 3:1",
        "unknown field `organisaton`; did you mean `organisation`?",
    ),
    ("schema_version: 1\n", "line 1:1", "`organisation` is required"),
    (
        "schema_version: 2\norganisation: Lab\n",
        "schema_version at line 1:17",
        "unsupported schema_version `2`",
    ),
    (
        GOOD + "from_scratch: maybe\n",
        "from_scratch at line 3:15",
        "expected true or false, got the text `maybe`",
    ),
    (
        GOOD + "init:\n  method: finetune\n",
        "init.method at line 4:11",
        "expected one of random, pretrained, mixed, got `finetune`",
    ),
    (
        GOOD + "init: {method: random, seed: '7'}\n",
        "init.seed at line 3:30",
        "expected a whole number, got the text `7`",
    ),
    (
        GOOD + "init: {method: random, seed: 7.5}\n",
        "init.seed at line 3:30",
        "expected a whole number, got the number `7.5`",
    ),
    (GOOD + "init: random\n", "init at line 3:7", "expected a mapping of fields"),
    (GOOD + "members: Lab\n", "members at line 3:10", "expected a list"),
    (
        GOOD + "components:\n  - name: lm\n    source: own\n  - name: vit\n    source: extrnal\n",
        "components[1].source at line 7:13",
        "expected one of own, external, got `extrnal`",
    ),
    (GOOD + "schema_version: 1\n", "line 3:1", "duplicate key `schema_version`"),
    (GOOD + "components:\n  - {name: lm, source: own, frozen: yes}\n", "components[0].frozen at line 4:37",
     "expected true or false"),
    (
        GOOD
        + "components:\n  - name: vit\n    source: external\n    reference: r\n    origin: USA\n",
        "components[0].origin at line 7:13",
        "expected a two-letter country code such as `KR`, got the text `USA`",
    ),
    (
        GOOD + "components:\n  - {name: vit, source: own, colour: red}\n",
        "components[0].colour at line 4:30",
        "unknown field `colour`; expected one of",
    ),
    (
        GOOD + "components:\n  - {name: '', source: own}\n",
        "components[0].name at line 4:12",
        "must not be empty",
    ),
    (GOOD + "components:\n  - {source: own}\n", "components[0] at line 4:5", "`name` is required"),
    (
        GOOD + "components:\n  - {name: vit, source: external}\n",
        "components[0] at line 4:5",
        "an external component must name its `reference`",
    ),
    (
        GOOD + "components:\n  - {name: lm, source: own}\n  - {name: lm, source: own}\n",
        "components[1].name at line 5:12",
        "component `lm` is already declared at components[0]",
    ),
    (
        GOOD + "members: [Lab]\ncomponents:\n  - {name: lm, source: own, member: Other}\n",
        "components[0].member at line 5:37",
        "`Other` is not listed in `members`",
    ),
    (GOOD + "members: [Lab, Lab]\n", "members[1] at line 3:16", "member `Lab` is listed twice"),
    (
        GOOD
        + "components:\n  - {name: lm, source: own}\nlicences:\n  - {id: MIT, applies_to: [vit]}\n",
        "licences[0].applies_to[0] at line 6:28",
        "no component is named `vit`",
    ),
    (GOOD + "organisation: Again\n", "line 3:1", "duplicate key `organisation`"),
    (
        GOOD + "members: &m [Lab]\nbase_model: *m\n",
        "line 4:13",
        "invalid YAML: aliases are not allowed",
    ),
    (
        GOOD + "base_model: !!python/object/apply:os.system ['true']\n",
        "line 3:13",
        "invalid YAML: could not determine a constructor",
    ),
    (
        GOOD + "---\nschema_version: 1\n",
        "line 3:1",
        "invalid YAML: expected one document, found another",
    ),
]


@pytest.mark.parametrize(("text", "place", "problem"), MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_manifest_is_one_line_with_file_and_place(
    tmp_path: Path, text: str, place: str | None, problem: str
) -> None:
    path = tmp_path / "originality.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_manifest(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert caught.value.place == place
    assert problem in message


def test_non_utf8_manifest(tmp_path: Path) -> None:
    path = tmp_path / "originality.yaml"
    path.write_bytes(b"schema_version: 1\norganisation: \xff\n")
    with pytest.raises(InputError, match=r"byte 32: is not UTF-8 text"):
        load_manifest(path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yaml")


def test_detector_reports_errors_in_the_folder_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        _detect(tmp_path, GOOD + "from_scratch: 1\n")
    assert caught.value.file.endswith("originality.yaml")
    assert caught.value.place == "from_scratch at line 3:15"


def test_only_safe_yaml_loading_in_the_package() -> None:
    # The manifest is read with (a subclass of) SafeLoader; no full or unsafe loader.
    source = Path(manifest_module.__file__).read_text()
    assert not re.search(
        r"yaml\.(load|full_load|unsafe_load)\(|FullLoader|UnsafeLoader|yaml\.Loader\b", source
    )
    assert "yaml.SafeLoader" in source


def test_public_api_is_pinned() -> None:
    assert sorted(manifest_module.__all__) == [
        "MANIFEST_FILE",
        "Manifest",
        "ManifestComponent",
        "ManifestDetector",
        "ManifestInit",
        "ManifestLicence",
        "SCHEMA_PATH",
        "compose_yaml",
        "find_manifest",
        "load_manifest",
        "manifest_schema",
        "parse_manifest",
        "write_schema",
    ]


@pytest.mark.parametrize(("written", "read"), [
    ("seed: 010", {"seed": 10}),  # YAML 1.1 would read 8 (octal)
    ("seed: 0x10", {"seed": 16}),
    ("seed: 1:30", {"seed": "1:30"}),  # YAML 1.1 would read 90 (base 60); a text is refused below
    ("origin: NO", {"origin": "NO"}),  # Norway, not false
    ("frozen: true", {"frozen": True}),
])
def test_yaml_is_read_as_yaml_1_2_reads_it(written, read):
    from detectors.manifest import compose_yaml
    assert compose_yaml(written, "originality.yaml")[1] == read


def test_a_manifest_that_links_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    root = write_model(tmp_path / "m", manifest=None)
    (tmp_path / "elsewhere.yaml").write_text("schema_version: 1\norganisation: Someone else\n")
    (root / "originality.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with open_model(root) as model, pytest.raises(InputError, match="links outside the model folder"):
        ManifestDetector().detect(model, DetectContext())


@pytest.mark.parametrize(("written", "shown"), [
    ("true", "`true`"), ("1.0", "`1.0`"), ('"1"', '`"1", a text`'), ("2", "`2`")])
def test_schema_version_is_the_whole_number_1(written, shown):
    with pytest.raises(InputError) as err:
        parse_manifest(f"schema_version: {written}\norganisation: Lab\n")
    assert str(err.value) == (f"originality.yaml: schema_version at line 1:17: unsupported schema_version {shown}; "
                              "this reader knows the whole number 1")


def test_yaml_nested_too_deeply_is_one_clear_problem():
    with pytest.raises(InputError, match="it nests too deeply"):
        parse_manifest("schema_version: 1\nx: " + "[" * 3000 + "]" * 3000 + "\n")


@pytest.mark.parametrize("key", ["1", "true", "null"])
def test_a_key_that_is_no_name_is_placed_where_it_is(key):
    with pytest.raises(InputError) as err:
        parse_manifest(f"schema_version: 1\norganisation: Lab\n{key}: x\n")
    assert str(err.value) == f"originality.yaml: line 3:1: a key must be a name, not `{key}`"
