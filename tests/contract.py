"""The fact contract as written in docs/architecture.md, read into declarations.

Engine tests use it so they do not depend on which detectors are installed; a test
checks that the installed detectors declare exactly these facts.
"""

from __future__ import annotations

import re
from pathlib import Path

from detectors.base import FactDecl

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
_ROW = re.compile(r"^\| `([^`]+)` \| (\S+) \| (.+?) \|$")
_EMITS = re.compile(r"^`(\w+)` emits (.+?)(?: \(|:)")


def contract_declarations() -> list[tuple[str, tuple[str, ...], tuple[FactDecl, ...]]]:
    """(detector, emits, facts) for each detector table in the document."""
    out = []
    current = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = _EMITS.match(line)
        if m:
            emits = tuple(re.findall(r"`(\w+)`", m.group(2)))
            current = (m.group(1), emits, [])
            out.append(current)
            continue
        m = _ROW.match(line)
        if m and current is not None:
            path, type_, doc = m.groups()
            values = ()
            if type_ == "enum":
                values = tuple(re.findall(r"`([^`]+)`", doc)[0].split()) if "`" in doc else ()
            current[2].append(FactDecl(path, type_, doc, values))
        if line.startswith("## ") and "Model folder" in line:
            current = None
    return [(name, emits, tuple(facts)) for name, emits, facts in out]


def contract_catalogue():
    from engine.catalogue import catalogue_from_declarations

    return catalogue_from_declarations(contract_declarations())
