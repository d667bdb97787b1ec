"""The public API is pinned; the engine's core never reaches into the detectors."""

import ast as pyast
from pathlib import Path

import engine

ENGINE = Path(engine.__file__).resolve().parent
# Only the command line (and its demo) may call into the detectors package's public API.
OUTER = {"cli.py", "demo.py"}


def test_public_api_is_pinned():
    assert sorted(engine.__all__) == [
        "CheckedPolicy", "Diagnostic", "Evaluation", "FactCatalogue", "FactSheet", "InputError",
        "PolicyError", "Program", "build_report", "catalogue_from_declarations", "check_policy",
        "diff_verdicts", "evaluate_policy", "format_policy", "load_fact_catalogue", "load_fact_sheet",
        "load_policy", "parse_policy", "prepare_policy", "render_policy", "validate_fact_sheet",
    ]
    for name in engine.__all__:
        assert hasattr(engine, name)


def imports_of(path: Path) -> set[str]:
    tree = pyast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in pyast.walk(tree):
        if isinstance(node, pyast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, pyast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_engine_core_never_imports_detectors():
    for path in sorted(ENGINE.glob("*.py")):
        if path.name in OUTER:
            continue
        assert not any(m == "detectors" or m.startswith("detectors.") for m in imports_of(path)), path


def test_the_command_line_uses_only_the_detectors_public_entry_points():
    allowed = {"detectors.pipeline", "detectors.catalog", "detectors.step0", "detectors.base", "detectors.registry",
               "detectors.model"}
    for name in OUTER:
        path = ENGINE / name
        if path.exists():
            used = {m for m in imports_of(path) if m.startswith("detectors")}
            assert used <= allowed, (name, used - allowed)


def test_no_eval_exec_or_pickle_in_the_engine():
    for path in sorted(ENGINE.glob("*.py")):
        tree = pyast.parse(path.read_text(encoding="utf-8"))
        for node in pyast.walk(tree):
            if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, path
        assert "pickle" not in imports_of(path), path
