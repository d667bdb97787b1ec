"""JSON Schemas of what crosses the border (fact sheet, report, diff), generated from the
pydantic models; `python -m engine.schemas` writes them into `schemas/`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .catalogue import FactCatalogue, load_fact_catalogue
from .diff import Diff
from .facts import fact_sheet_model
from .report import Report

__all__ = ["generate_schemas", "write_schemas", "SCHEMA_DIR"]

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


def generate_schemas(catalogue: FactCatalogue) -> dict[str, str]:
    """File name -> schema text (sorted keys, stable)."""
    models = {
        "factsheet.schema.json": fact_sheet_model(catalogue),
        "report.schema.json": Report,
        "diff.schema.json": Diff,
    }
    out = {}
    for name, model in models.items():
        schema = model.model_json_schema(by_alias=True)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def write_schemas(directory: Path = SCHEMA_DIR, catalogue: FactCatalogue | None = None) -> list[Path]:
    written = []
    for name, text in generate_schemas(catalogue or load_fact_catalogue()).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_schemas():
        sys.stdout.write(f"wrote {p}\n")
