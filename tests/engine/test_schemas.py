"""schemas/*.json are generated from the pydantic models; a drift fails here.
Regenerate with `python -m engine.schemas`."""

import json
from pathlib import Path

import jsonschema

from engine.catalogue import load_fact_catalogue
from engine.schemas import SCHEMA_DIR, generate_schemas


def test_schemas_do_not_drift():
    for name, text in generate_schemas(load_fact_catalogue()).items():
        path = SCHEMA_DIR / name
        assert path.read_text(encoding="utf-8") == text, f"{name} is stale: run `python -m engine.schemas`"


def test_schemas_are_valid_json_schemas():
    for path in sorted(Path(SCHEMA_DIR).glob("*.schema.json")):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
