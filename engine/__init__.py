"""originality's engine: policies parsed, checked and evaluated over fact sheets.

The stages are functions from values to values: `parse_policy` -> `check_policy` ->
`prepare_policy` -> `Program.evaluate`, then `build_report` or `diff_verdicts`.
"""

from .catalogue import FactCatalogue, catalogue_from_declarations, load_fact_catalogue
from .checker import CheckedPolicy, check_policy
from .diagnostics import Diagnostic, InputError, PolicyError
from .diff import diff_verdicts
from .evaluator import Evaluation, Program, evaluate_policy, prepare_policy
from .facts import FactSheet, load_fact_sheet, validate_fact_sheet
from .formatter import format_policy
from .loader import load_policy
from .parser import parse_policy
from .render import render_policy
from .report import build_report

__all__ = [
    "CheckedPolicy",
    "Diagnostic",
    "Evaluation",
    "FactCatalogue",
    "FactSheet",
    "InputError",
    "PolicyError",
    "Program",
    "build_report",
    "catalogue_from_declarations",
    "check_policy",
    "diff_verdicts",
    "evaluate_policy",
    "format_policy",
    "load_fact_catalogue",
    "load_fact_sheet",
    "load_policy",
    "parse_policy",
    "prepare_policy",
    "render_policy",
    "validate_fact_sheet",
]
