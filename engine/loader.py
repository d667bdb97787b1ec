"""Reading policy files from disk: a version and the versions it extends, same folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import ast
from .catalogue import FactCatalogue, load_fact_catalogue
from .checker import CheckedPolicy, check_policy
from .diagnostics import Diagnostic, PolicyError, did_you_mean, sort_diagnostics
from .files import read_text
from .parser import parse_policy

__all__ = ["POLICY_SUFFIX", "read_policy_file", "load_chain", "load_policy"]

POLICY_SUFFIX = ".policy"


def read_policy_file(path: str | Path) -> ast.Policy:
    return parse_policy(read_text(path, "policy file"), str(path))


def load_chain(path: str | Path) -> tuple[list[ast.Policy], list[Diagnostic]]:
    """The policy at `path` and its `extends` ancestors, root first, and the problems
    met following `extends` (the chain then stops where the problem is)."""
    path = Path(path)
    chain = [read_policy_file(path)]
    seen = {path.resolve()}
    diags: list[Diagnostic] = _named_by_version(chain[0], path, chain[0].extends is not None)
    while chain[0].extends is not None:
        child = chain[0]
        parent_path = path.parent / f"{child.extends}{POLICY_SUFFIX}"
        span = child.header_spans.get("extends")
        if any(sep in child.extends for sep in ("/", "\\")) or child.extends in (".", ".."):
            diags.append(Diagnostic("extends_not_a_version", f"`{child.extends}` is a path: `extends` names a "
                                    "version whose file is beside this one", span))
            break
        if parent_path.resolve() in seen:
            diags.append(Diagnostic("cyclic_extends", f"version `{child.extends}` extends, directly or "
                                    "through others, this very version", span))
            break
        if not parent_path.is_file():
            siblings = sorted(p.name[: -len(POLICY_SUFFIX)] for p in path.parent.glob(f"*{POLICY_SUFFIX}"))
            diags.append(Diagnostic("missing_extends", f"there is no version `{child.extends}` "
                                    f"(`{parent_path.name}`) beside this file", span,
                                    help=did_you_mean(child.extends, siblings)))
            break
        seen.add(parent_path.resolve())
        chain.insert(0, read_policy_file(parent_path))
        diags += _named_by_version(chain[0], parent_path, True)
    return chain, diags


def _named_by_version(policy: ast.Policy, path: Path, in_chain: bool) -> list[Diagnostic]:
    """A file holds the version it is named for: `extends` finds versions by file name,
    and reports name the version the file says. Checked for a file in an `extends` chain
    or named like a version (a scratch `draft.policy` may say anything)."""
    stem = path.name[: -len(POLICY_SUFFIX)] if path.name.endswith(POLICY_SUFFIX) else None
    if stem is None or policy.version is None or policy.version == stem:
        return []
    if not (in_chain or stem[:1].isdigit()):
        return []
    return [Diagnostic("version_not_file_name", f"this file says version `{policy.version}` but is named "
                       f"`{path.name}`: `extends \"{stem}\"` would find it, and reports would call it "
                       f"`{policy.version}`", policy.header_spans.get("version"), severity="warning",
                       help=f"rename the file `{policy.version}{POLICY_SUFFIX}`, or say `version \"{stem}\"`")]


def load_policy(path: str | Path, catalogue: FactCatalogue | None = None) -> CheckedPolicy:
    """Read, parse and check a policy file. Raises PolicyError (every diagnostic of the
    run) or InputError (a file that cannot be read)."""
    chain, diags = load_chain(path)
    try:
        checked = check_policy(chain, catalogue or load_fact_catalogue())
    except PolicyError as err:
        raise PolicyError(diags + list(err.diagnostics)) from None
    if any(d.severity == "error" for d in diags):
        # (the chain stopped short: its rules are not all here to be found blocking)
        raise PolicyError(diags + [w for w in checked.warnings if w.code != "no_blocking_rule"])
    if diags:
        checked = dataclasses.replace(checked, warnings=tuple(sort_diagnostics((*diags, *checked.warnings))))
    return checked
