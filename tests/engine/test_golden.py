"""Goldens side by side: `x.policy` -> `x.policy.formatted` (fmt) and `x.policy.err`
(every diagnostic, rendered). Regenerate with UPDATE_GOLDEN=1."""

import os
from pathlib import Path

import pytest

from engine.diagnostics import PolicyError, render_diagnostic
from engine.formatter import format_policy
from engine.loader import load_policy
from engine.parser import parse_policy

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))


def compare(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.policy")), ids=lambda p: p.name)
def test_golden(path, catalogue):
    text = path.read_text(encoding="utf-8")
    name = f"golden/{path.name}"
    try:
        checked = load_policy(path, catalogue)
        diags = list(checked.warnings)
    except PolicyError as err:
        diags = list(err.diagnostics)
    rendered = "\n\n".join(render_diagnostic(d) for d in diags).replace(str(path), name)
    if diags:
        compare(path.with_suffix(".policy.err"), rendered + "\n")
    try:
        formatted = format_policy(text, name)
    except PolicyError:
        return
    compare(path.with_suffix(".policy.formatted"), formatted)
    assert parse_policy(formatted) == parse_policy(text)
