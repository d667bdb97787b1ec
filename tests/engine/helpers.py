"""Small builders shared by the engine tests."""

from __future__ import annotations

from engine.checker import check_policy
from engine.diagnostics import PolicyError
from engine.facts import FACTS_SCHEMA_ID, validate_fact_sheet
from engine.parser import parse_policy

HEADER = 'policy "t"\nversion "1"\n'


def check_text(text: str, catalogue, name: str = "t.policy"):
    return check_policy([parse_policy(text, name)], catalogue)


def diagnostics_of(text: str, catalogue, name: str = "t.policy"):
    try:
        checked = check_text(text, catalogue, name)
    except PolicyError as err:
        return err.diagnostics
    return list(checked.warnings)


def sheet(facts: dict, catalogue, name: str = "sheet"):
    owners = sorted(set(catalogue.owners.values()))
    data = {
        "schema": FACTS_SCHEMA_ID,
        "subject": {"name": name},
        "detectors": [{"name": d, "version": "1", "emits": sorted(k for k, o in catalogue.owners.items() if o == d)}
                      for d in owners],
        "facts": facts,
    }
    return validate_fact_sheet(data, name, catalogue)
