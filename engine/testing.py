"""Policy tests: YAML files of fact fixtures and the outcome expected of every rule.

A test file `<version>.test.yaml` sits beside `<version>.policy`:

    policy: 1.0.policy            # optional; defaults to the file's own stem
    fixtures:
      clean: {components: [...]}  # the `facts` part of a fact sheet
    cases:
      - name: a frozen vision encoder fails
        facts: clean              # a fixture's name, or the facts themselves
        set: {components[1].match.relation: identical}
        unset: [tokenizer]        # make facts unknown
        params: {own_references: [x]}
        expect: {verdict: fail, no_frozen_external_encoder: fail}
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .catalogue import FactCatalogue
from .checker import CheckedPolicy, type_problem
from .diagnostics import InputError, did_you_mean
from .evaluator import prepare_policy
from .facts import FACTS_SCHEMA_ID, MAX_DIGITS, validate_fact_sheet
from .files import read_text
from .loader import load_policy
from .source import Source

__all__ = ["TEST_SUFFIX", "CaseResult", "TestFileResult", "coverage_gaps", "find_test_files", "run_test_file"]

TEST_SUFFIX = ".test.yaml"
OUTCOMES = ("pass", "fail", "indeterminate")


@dataclass(frozen=True)
class CaseResult:
    name: str
    line: int
    failures: tuple[str, ...]  # what differed from the expectation, one line each

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class TestFileResult:
    path: str
    policy: CheckedPolicy
    cases: list[CaseResult] = field(default_factory=list)
    # rule id -> outcomes seen across the cases
    coverage: dict[str, set[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    def coverage_gaps(self) -> list[str]:
        return coverage_gaps(self.coverage)


def coverage_gaps(coverage: dict[str, set[str]]) -> list[str]:
    """rule id -> outcomes expected of it: a line for each rule not seen in all three."""
    return [f"rule `{rule}` is never expected to {', '.join(sorted(set(OUTCOMES) - seen))}"
            for rule, seen in coverage.items() if set(OUTCOMES) - seen]


def find_test_files(paths: list[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(p.rglob(f"*{TEST_SUFFIX}")))
        elif p.exists():
            found.append(p)
        else:
            raise InputError(str(p), None, "no such test file or folder")
    return found


# -- YAML with places ----------------------------------------------------------------


class _Located:
    """YAML data plus the line of every node, by path."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.lines: dict[tuple, int] = {}
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.reader.ReaderError as err:  # a control character, refused before parsing
            line, column = Source(name, text).line_col(err.position)
            where = f"{name}:{line}:{column}"
            raise InputError(where, None, f"invalid YAML: character U+{err.character:04X} is not allowed") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
            problem = getattr(err, "problem", None) or str(err)
            raise InputError(where, None, f"invalid YAML: {problem}") from None
        except RecursionError:
            raise InputError(name, None, "invalid YAML: it nests too deeply") from None
        try:
            self.data = self._build(node, ()) if node is not None else None
        except RecursionError:
            raise InputError(name, None, "invalid YAML: it nests too deeply") from None

    # The plain YAML types; `!!python/...` and every other tag are refused.
    _PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq"))

    def _build(self, node, path: tuple, line: int | None = None) -> Any:
        self.lines[path] = line or node.start_mark.line + 1
        if node.tag not in self._PLAIN_TAGS:
            # `!!python/...` and other custom tags: refused, never constructed.
            raise InputError(f"{self.name}:{node.start_mark.line + 1}", _yaml_path(path),
                             f"the tag `{node.tag}` is not allowed in a test file")
        if isinstance(node, yaml.MappingNode):
            out = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node)
                if key in out:
                    raise InputError(f"{self.name}:{key_node.start_mark.line + 1}", None,
                                     f"key `{key}` appears twice")
                # a key's place is where the key is written, not where its value starts
                out[key] = self._build(value_node, path + (key,), key_node.start_mark.line + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    _constructor = yaml.constructor.SafeConstructor()

    def _scalar(self, node) -> Any:
        # SafeConstructor resolves scalars (numbers, booleans, null) and never builds
        # arbitrary Python objects from tags.
        if not isinstance(node, yaml.ScalarNode):
            raise InputError(f"{self.name}:{node.start_mark.line + 1}", None, "a key must be plain text")
        digits = sum(c.isdigit() for c in node.value)
        if node.tag == "tag:yaml.org,2002:int" and digits > MAX_DIGITS:
            # (refused before Python turns it into an integer, which it limits to 4,300 digits)
            raise InputError(f"{self.name}:{node.start_mark.line + 1}", None,
                             f"a whole number of {digits} digits; at most {MAX_DIGITS} are read")
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err)
            raise InputError(f"{self.name}:{node.start_mark.line + 1}", None, f"invalid YAML: {problem}") from None

    def where(self, path: tuple) -> str:
        while path and path not in self.lines:
            path = path[:-1]
        return f"{self.name}:{self.lines.get(path, 1)}"

    def error(self, path: tuple, problem: str) -> InputError:
        return InputError(self.where(path), _yaml_path(path), problem)


def _yaml_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# -- running -------------------------------------------------------------------------


def run_test_file(path: str | Path, catalogue: FactCatalogue, policy_path: Path | None = None) -> TestFileResult:
    path = Path(path)
    doc = _Located(str(path), read_text(path, "test file"))
    data = doc.data
    if not isinstance(data, dict):
        raise doc.error((), "a test file is a mapping with `cases` (and optionally `policy`, `fixtures`)")
    unknown = set(data) - {"policy", "fixtures", "cases"}
    if unknown:
        key = sorted(unknown)[0]
        raise doc.error((key,), f"unknown key `{key}`; expected `policy`, `fixtures` or `cases`")
    if policy_path is None:
        target = data.get("policy") or path.name[: -len(TEST_SUFFIX)] + ".policy"
        if not isinstance(target, str):
            raise doc.error(("policy",), "expected the policy file's name")
        policy_path = path.parent / target
        if not policy_path.is_file():
            raise doc.error(("policy",), f"there is no policy file `{policy_path.name}` beside this test file")
    policy = load_policy(policy_path, catalogue)
    fixtures = data.get("fixtures") or {}
    if not isinstance(fixtures, dict):
        raise doc.error(("fixtures",), "expected a mapping of fixture names to facts")
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        raise doc.error(("cases",), "expected a list of test cases")

    result = TestFileResult(str(path), policy, coverage={r.id: set() for r in policy.rules})
    owners = [{"name": det, "version": "test", "emits": sorted(k for k, d in catalogue.owners.items() if d == det)}
              for det in sorted(set(catalogue.owners.values()))]
    programs: dict[tuple, Any] = {}
    for i, case in enumerate(cases):
        at = ("cases", i)
        if not isinstance(case, dict):
            raise doc.error(at, "a test case is a mapping with `name`, `facts` and `expect`")
        bad = set(case) - {"name", "facts", "set", "unset", "params", "lang", "expect", "messages"}
        if bad:
            key = sorted(bad)[0]
            raise doc.error(at + (key,), f"unknown key `{key}`; a case has name, facts, set, unset, params, "
                            "lang, expect, messages")
        lang = case.get("lang")
        if lang not in (None, "ko", "en"):
            raise doc.error(at + ("lang",), f"`{lang}` is not a message language; policies write `ko` and `en`")
        name = str(case.get("name") or f"case {i + 1}")
        facts = _case_facts(doc, at, case, fixtures, set(catalogue.root.fields))
        params = _case_params(doc, at, case.get("params") or {}, policy)
        sheet_data = {"schema": FACTS_SCHEMA_ID, "subject": {"name": name}, "detectors": owners, "facts": facts}
        try:
            sheet = validate_fact_sheet(sheet_data, name, catalogue)
        except InputError as err:
            problem = err.problem
            if problem.startswith(("expected a text, got `true`", "expected a text, got `false`")):
                problem += " (YAML reads yes, no, on and off as true or false: quote the text)"
            raise doc.error(at + ("facts",), f"{err.place}: {problem}") from None
        key = (lang, *sorted((k, repr(v)) for k, v in params.items()))
        if key not in programs:
            programs[key] = prepare_policy(policy, params, lang)
        evaluation = programs[key].evaluate(sheet)
        expect = case.get("expect")
        if not isinstance(expect, dict) or not expect:
            raise doc.error(at + ("expect",), "expected a mapping of rule ids (and `verdict`) to outcomes")
        outcomes = {r.id: r for r in evaluation.rules}
        failures = []
        for rule_id, want in expect.items():
            if want not in OUTCOMES:
                raise doc.error(at + ("expect", rule_id), f"`{want}` is not an outcome; expected pass, fail "
                                "or indeterminate")
            if rule_id == "verdict":
                if evaluation.verdict != want:
                    failures.append(f"verdict: expected {want}, got {evaluation.verdict}")
                continue
            if rule_id not in outcomes:
                hint = did_you_mean(str(rule_id), outcomes)
                raise doc.error(at + ("expect", rule_id), f"policy version {policy.version} has no rule "
                                f"`{rule_id}`" + (f"; {hint}" if hint else ""))
            got = outcomes[rule_id]
            result.coverage[rule_id].add(want)
            if got.outcome != want:
                why = f" ({got.message})" if got.message else ""
                failures.append(f"rule `{rule_id}`: expected {want}, got {got.outcome}{why}")
        for rule_id, text in (case.get("messages") or {}).items():
            got = outcomes.get(rule_id)
            if got is None:
                hint = did_you_mean(str(rule_id), outcomes)
                raise doc.error(at + ("messages", rule_id), f"policy version {policy.version} has no rule "
                                f"`{rule_id}`" + (f"; {hint}" if hint else ""))
            if not str(text).strip():
                raise doc.error(at + ("messages", rule_id), "an empty text is in every message: write the "
                                "words the message must hold")
            if str(text) not in got.message:
                failures.append(f"rule `{rule_id}`: message {got.message!r} does not contain {str(text)!r}")
        result.cases.append(CaseResult(name, doc.lines.get(at, 1), tuple(failures)))
    return result


def _case_facts(doc: _Located, at: tuple, case: dict, fixtures: dict, known: set[str]) -> dict:
    base = case.get("facts", {})
    if isinstance(base, str):
        if base not in fixtures:
            raise doc.error(at + ("facts",), f"no fixture `{base}`")
        base = fixtures[base]
    if not isinstance(base, dict):
        raise doc.error(at + ("facts",), "expected facts (a mapping) or a fixture's name")
    facts = copy.deepcopy(base)
    for key, value in (case.get("set") or {}).items():
        _assign(doc, at + ("set", key), facts, str(key), value)
    for key in case.get("unset") or []:
        top = re.match(r"[A-Za-z_][A-Za-z0-9_]*", str(key))
        if top is None or top.group() not in known:  # a typo would unset nothing, silently
            hint = did_you_mean(top.group() if top else str(key), known)
            raise doc.error(at + ("unset",), f"`{key}` names no fact" + (f"; {hint}" if hint else ""))
        _assign(doc, at + ("unset",), facts, str(key), _DELETE)
    return facts


_DELETE = object()
_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\.")


def _assign(doc: _Located, at: tuple, facts: dict, dotted: str, value: Any) -> None:
    steps: list[str | int] = []
    pos = 0
    while pos < len(dotted):
        m = _STEP.match(dotted, pos)
        if not m or m.end() == pos:
            raise doc.error(at, f"`{dotted}` is not a fact path like `components[1].match.relation`")
        if m.group(1):
            steps.append(m.group(1))
        elif m.group(2):
            steps.append(int(m.group(2)))
        pos = m.end()
    if not steps:
        raise doc.error(at, "an empty fact path; write one like `components[1].match.relation`")
    node: Any = facts
    for step in steps[:-1]:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise doc.error(at, f"`{dotted}`: there is no item {step}")
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise doc.error(at, f"`{dotted}`: `{step}` is not inside a group of facts")
            node = node.setdefault(step, {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise doc.error(at, f"`{dotted}`: there is no item {last}")
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    elif not isinstance(node, dict):
        raise doc.error(at, f"`{dotted}`: `{last}` is not inside a group of facts")
    elif value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value


def _case_params(doc: _Located, at: tuple, params: Any, policy: CheckedPolicy) -> dict:
    if not isinstance(params, dict):
        raise doc.error(at + ("params",), "expected a mapping of parameter names to values")
    out = {}
    for name, value in params.items():
        if name not in policy.params:
            raise doc.error(at + ("params", name), f"policy {policy.version} has no parameter `{name}`")
        if isinstance(value, list):
            value = tuple(value)
        problem = type_problem(value, policy.params[name].type)
        if problem:
            raise doc.error(at + ("params", name), f"parameter `{name}` is a {policy.params[name].type_name} "
                            f"but this {problem}")
        out[name] = value
    return out

