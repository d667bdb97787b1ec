"""originality's engine: policies parsed, checked and evaluated over fact sheets.

The stages are functions from values to values: `parse_policy` -> `check_policy` ->
`prepare_policy` -> `Program.evaluate`, then `build_report` or `diff_verdicts`.
Names are imported on first use, so a command pays only for the stages it runs.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "CheckedPolicy": "checker",
    "Diagnostic": "diagnostics",
    "Evaluation": "evaluator",
    "FactCatalogue": "catalogue",
    "FactSheet": "facts",
    "InputError": "diagnostics",
    "PolicyError": "diagnostics",
    "Program": "evaluator",
    "build_report": "report",
    "catalogue_from_declarations": "catalogue",
    "check_policy": "checker",
    "diff_verdicts": "diff",
    "evaluate_policy": "evaluator",
    "format_policy": "formatter",
    "load_fact_catalogue": "catalogue",
    "load_fact_sheet": "facts",
    "load_policy": "loader",
    "parse_policy": "parser",
    "prepare_policy": "evaluator",
    "render_policy": "render",
    "validate_fact_sheet": "facts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
