"""The reference catalogue: add, list, load, replace; atomic writes; bad entries named clearly.

Reference models are generated; fingerprints come from the detectors of this package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors import catalog as catalog_module
from detectors.base import DetectContext, FactDecl, InputError
from detectors.catalog import REFERENCE_FILE, add_reference, list_references, load_references

from .test_pipeline import LLAMA_CONFIG, own_detectors, write_model


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_add_then_list_then_load(tmp_path: Path) -> None:
    model = write_model(tmp_path / "public-vlm")
    catalog = tmp_path / "catalog"
    ref = add_reference(
        model,
        id="public-vlm",
        origin="us",
        organisation="Example Corp",
        license="Apache-2.0",
        components={"language_model": "model.layers.", "embeddings": "model.embed_tokens."},
        catalog=catalog,
        detectors=own_detectors(),
    )
    assert (ref.id, ref.origin, ref.path) == ("public-vlm", "US", catalog / "public-vlm")
    assert dict(ref.components) == {
        "embeddings": "model.embed_tokens.",
        "language_model": "model.layers.",
    }
    stored = json.loads((ref.path / REFERENCE_FILE).read_text())
    assert stored == {
        "schema_version": 1,
        "id": "public-vlm",
        "origin": "US",
        "organisation": "Example Corp",
        "license": "Apache-2.0",
        "components": {"embeddings": "model.embed_tokens.", "language_model": "model.layers."},
    }
    assert set(_files(ref.path)) == {REFERENCE_FILE, "config.json", "tokenizer.json"}

    listed = list_references(catalog)
    assert len(listed) == 1
    entry = listed[0]
    assert entry["id"] == "public-vlm" and entry["organisation"] == "Example Corp"
    assert entry["files"] == {name: len(data) for name, data in _files(ref.path).items()}
    assert entry["bytes"] == sum(entry["files"].values())

    assert load_references(catalog) == (ref,)


def test_references_load_sorted_and_skip_folders_being_built(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    for id, origin in (("zeta", "FR"), ("alpha", "KR"), ("Mid.1", "CN")):
        add_reference(
            write_model(tmp_path / id), id=id, origin=origin, catalog=catalog, detectors=[]
        )
    (catalog / ".adding-left-over").mkdir()
    (catalog / "README.txt").write_text("not a reference")
    assert [r.id for r in load_references(catalog)] == ["Mid.1", "alpha", "zeta"]
    assert [r["id"] for r in list_references(catalog)] == ["Mid.1", "alpha", "zeta"]


def test_entries_are_byte_identical_for_identical_inputs(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    for name in ("one", "two"):
        add_reference(
            model, id="ref", origin="US", catalog=tmp_path / name, detectors=own_detectors()
        )
    assert _files(tmp_path / "one" / "ref") == _files(tmp_path / "two" / "ref")


def test_registered_detectors_fingerprint_by_default(tmp_path: Path) -> None:
    ref = add_reference(write_model(tmp_path / "m"), id="ref", origin="US", catalog=tmp_path / "c")
    assert {"config.json", "tokenizer.json", REFERENCE_FILE} <= set(_files(ref.path))


@pytest.mark.parametrize(
    "bad", ["../escape", "a/b", ".hidden", "", "trailing-", "x" * 200, "sp ace", "a..b"]
)
def test_unsafe_ids_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InputError, match="is not a safe folder name"):
        add_reference(
            write_model(tmp_path / "m"), id=bad, origin="US", catalog=tmp_path / "c", detectors=[]
        )
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("bad", ["USA", "U", "1A", "", "U-"])
def test_origins_must_be_two_letter_codes(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InputError, match="expected a two-letter country code"):
        add_reference(
            write_model(tmp_path / "m"), id="r", origin=bad, catalog=tmp_path / "c", detectors=[]
        )


def test_component_prefix_must_match_a_tensor(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=r"component `vision_encoder`: no tensor name starts with `vision_tower.`"
    ):
        add_reference(
            write_model(tmp_path / "m"),
            id="r",
            origin="US",
            components={"vision_encoder": "vision_tower."},
            catalog=tmp_path / "c",
            detectors=[],
        )


def test_existing_id_needs_explicit_replace(tmp_path: Path) -> None:
    catalog = tmp_path / "c"
    first = write_model(tmp_path / "first")
    second = write_model(tmp_path / "second", config={**LLAMA_CONFIG, "hidden_size": 99})
    add_reference(first, id="r", origin="US", catalog=catalog, detectors=own_detectors())
    before = _files(catalog / "r")
    with pytest.raises(InputError, match="reference `r` is already in the catalogue"):
        add_reference(second, id="r", origin="KR", catalog=catalog, detectors=own_detectors())
    assert _files(catalog / "r") == before
    ref = add_reference(
        second, id="r", origin="KR", catalog=catalog, detectors=own_detectors(), replace=True
    )
    assert ref.origin == "KR"
    assert json.loads((catalog / "r" / "config.json").read_text())["fields"]["hidden_size"] == 99
    assert sorted(p.name for p in catalog.iterdir()) == ["r"]  # nothing retired is left behind


class _Failing:
    """A detector whose fingerprint writes part of its file and then fails."""

    name = "failing"
    version = "1"
    emits = ("failing",)
    facts = (FactDecl("failing.x", "boolean", "x"),)

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        return {}

    def fingerprint(self, model: Any, directory: Path, components: Any) -> None:
        (directory / "failing.json").write_text("{half")
        raise OSError("disk full")


def test_failed_fingerprint_leaves_nothing_half_written(tmp_path: Path) -> None:
    catalog = tmp_path / "c"
    with pytest.raises(OSError, match="disk full"):
        add_reference(
            write_model(tmp_path / "m"),
            id="r",
            origin="US",
            catalog=catalog,
            detectors=[*own_detectors(), _Failing()],
        )
    assert list(catalog.iterdir()) == []
    assert load_references(catalog) == ()


def test_failed_replace_keeps_the_old_entry(tmp_path: Path) -> None:
    catalog = tmp_path / "c"
    model = write_model(tmp_path / "m")
    add_reference(model, id="r", origin="US", catalog=catalog, detectors=own_detectors())
    before = _files(catalog / "r")
    with pytest.raises(OSError):
        add_reference(
            model, id="r", origin="FR", catalog=catalog, detectors=[_Failing()], replace=True
        )
    assert _files(catalog / "r") == before
    assert sorted(p.name for p in catalog.iterdir()) == ["r"]


def test_bad_model_leaves_no_entry(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m")
    (model / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(InputError, match="model.safetensors"):
        add_reference(model, id="r", origin="US", catalog=tmp_path / "c", detectors=own_detectors())
    assert not (tmp_path / "c" / "r").exists()


def _catalog_with(tmp_path: Path, entry: Any, folder: str = "r") -> Path:
    catalog = tmp_path / "c"
    (catalog / folder).mkdir(parents=True)
    text = entry if isinstance(entry, str) else json.dumps(entry)
    (catalog / folder / REFERENCE_FILE).write_text(text)
    return catalog


@pytest.mark.parametrize(
    ("entry", "place", "problem"),
    [
        ({"id": "r"}, "field `origin`", "is required"),
        ({"id": "r", "origin": "USA"}, "field `origin`", "should match pattern"),
        (
            {"id": "r", "origin": "US", "colour": "red"},
            "field `colour`",
            "is not a reference field",
        ),
        (
            {"id": "r", "origin": "US", "components": {"lm": 3}},
            "field `components.lm`",
            "valid string",
        ),
        ({"id": "other", "origin": "US"}, "field `id`", "does not match its folder `r`"),
        (
            {"id": "r", "origin": "US", "schema_version": 9},
            "field `schema_version`",
            "input should be 1",
        ),
        ('{"id": "r",\n "origin": }', "line 2:", "not valid json"),
        ("[1]", None, "expected a json object"),
    ],
)
def test_bad_reference_json_names_file_and_field(
    tmp_path: Path, entry: Any, place: str | None, problem: str
) -> None:
    catalog = _catalog_with(tmp_path, entry)
    with pytest.raises(InputError) as caught:
        load_references(catalog)
    error = caught.value
    assert error.file == str(catalog / "r" / REFERENCE_FILE)
    if place:
        assert place in (error.place or "")
    assert problem in str(error)
    assert "\n" not in str(error)


def test_reference_folder_without_reference_json(tmp_path: Path) -> None:
    (tmp_path / "c" / "stray").mkdir(parents=True)
    with pytest.raises(InputError, match=r"stray/reference.json: missing"):
        load_references(tmp_path / "c")


def test_missing_catalogue_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="catalogue folder does not exist"):
        load_references(tmp_path / "nowhere")
    with pytest.raises(InputError, match="catalogue folder does not exist"):
        list_references(tmp_path / "nowhere")


def test_public_api_is_pinned() -> None:
    assert sorted(catalog_module.__all__) == [
        "REFERENCE_FILE",
        "ReferenceEntry",
        "add_reference",
        "list_references",
        "load_references",
        "validate_id",
        "validate_origin",
    ]
