"""Named passes over parsed policies against the fact catalogue.

`check_policy` merges an `extends` chain, then reports every problem in one run, sorted
by place, each with a stable code. Only a policy that checks clean can be evaluated.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from . import ast
from .catalogue import ANY, BOOL, NUMBER, STRING, FactCatalogue, Type, list_of
from .diagnostics import Diagnostic, PolicyError, did_you_mean, sort_diagnostics
from .source import Span

__all__ = [
    "LANGUAGE_VERSION", "LEVELS", "FUNCTIONS", "PARAM_TYPES",
    "CheckedParam", "CheckedRule", "CheckedPolicy", "check_policy", "merge_chain",
    "coerce_param_value",
]

LANGUAGE_VERSION = "1"
# (mode, quantifier) of a rule whose failure is caused by particular items (its witnesses).
WITNESSED = {("forbid", "any"), ("require", "all"), ("require", "none")}
LEVELS = ("blocking", "advisory")
PARAM_TYPES = {
    "number": NUMBER, "string": STRING, "boolean": BOOL,
    "list[string]": list_of(STRING), "list[number]": list_of(NUMBER),
}


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[str, ...]  # argument kinds: "any", "number", "string", "list"
    result: Type
    doc: str
    variadic: bool = False


# The closed table of functions. Nothing else can be called.
FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("known", ("any",), BOOL, "true when the value is known (present in the fact sheet)"),
    Function("decided", ("string",), STRING,
             "the value, or unknown when a detector reported `unknown` (it could not decide)"),
    Function("size", ("list",), NUMBER, "the number of items in a list"),
    Function("lower", ("string",), STRING, "the text in lower case"),
    Function("upper", ("string",), STRING, "the text in upper case"),
    Function("abs", ("number",), NUMBER, "the absolute value"),
    Function("min", ("number", "number"), NUMBER, "the smallest of the numbers", variadic=True),
    Function("max", ("number", "number"), NUMBER, "the largest of the numbers", variadic=True),
    Function("starts_with", ("string", "string"), BOOL, "true when the first text starts with the second"),
    Function("contains", ("string", "string"), BOOL, "true when the first text contains the second"),
)}


@dataclass(frozen=True)
class CheckedParam:
    name: str
    type: Type
    type_name: str
    default: Any
    doc: str | None
    declared_in: str | None = None


@dataclass(frozen=True)
class CheckedRule:
    rule: ast.Rule
    params_used: tuple[str, ...]
    facts_used: tuple[str, ...]  # catalogue paths, e.g. components[].match.relation

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def level(self) -> str:
        return self.rule.level or "blocking"


@dataclass(frozen=True)
class CheckedPolicy:
    """A merged, type-checked policy: the only thing the evaluator accepts."""

    id: str
    version: str
    titles: tuple[ast.Title, ...]
    effective: str | None
    extends: str | None
    supersedes: str | None
    params: dict[str, CheckedParam]
    rules: tuple[CheckedRule, ...]
    chain: tuple[ast.Policy, ...] = field(repr=False)
    digest: str = ""
    warnings: tuple[Diagnostic, ...] = ()

    @property
    def title(self) -> str | None:
        return ast._pick(self.titles)

    def param_defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params.items()}


# -- extends -------------------------------------------------------------------


@dataclass
class _Merged:
    params: dict[str, tuple[ast.Param, ast.Policy]]
    rules: dict[str, tuple[ast.Rule, ast.Policy]]
    duplicates: list[ast.Rule]  # second definitions: reported, still checked
    removed: dict[str, Span | None] = field(default_factory=dict)  # parameter -> its `remove param`


def merge_chain(chain: Sequence[ast.Policy], diags: list[Diagnostic]) -> _Merged:
    """Rules and parameters of a chain, parent first: a child's rule with the same id
    replaces the parent's in place, `remove rule` drops one, new rules come after."""
    params: dict[str, tuple[ast.Param, ast.Policy]] = {}
    rules: dict[str, tuple[ast.Rule, ast.Policy]] = {}
    duplicates: list[ast.Rule] = []
    removed: dict[str, Span | None] = {}
    for depth, policy in enumerate(chain):
        own_params: dict[str, ast.Param] = {}
        for p in policy.params:
            if p.name in own_params:
                diags.append(Diagnostic("duplicate_param", f"parameter `{p.name}` is declared twice",
                                        p.name_span))
                continue
            own_params[p.name] = p
            if p.name in params and params[p.name][0].type.name != p.type.name:
                parent = params[p.name][0]
                diags.append(Diagnostic(
                    "type_mismatch",
                    f"parameter `{p.name}` is a {parent.type.name} in version "
                    f"{params[p.name][1].version}; a revision cannot make it a {p.type.name}",
                    p.type.span))
                continue
            if p.doc is None and p.name in params:  # a new default keeps the meaning said before
                p = dataclasses.replace(p, doc=params[p.name][0].doc)
            params[p.name] = (p, policy)
        own_rules: set[str] = set()
        for r in policy.rules:
            if r.id in own_rules:
                diags.append(Diagnostic("duplicate_rule", f"rule `{r.id}` is defined twice in this file",
                                        r.id_span))
                duplicates.append(r)
                continue
            own_rules.add(r.id)
            rules[r.id] = (r, policy)
        for rem in policy.removals:
            table, own = (rules, own_rules) if rem.kind == "rule" else (params, set(own_params))
            word = "rule" if rem.kind == "rule" else "parameter"
            if rem.name in own:
                diags.append(Diagnostic(f"remove_own_{rem.kind}",
                                        f"{word} `{rem.name}` is defined in this file; delete it instead",
                                        rem.span))
            elif rem.name not in table or depth == 0:
                diags.append(Diagnostic(
                    f"unknown_{rem.kind}", f"there is no inherited {word} `{rem.name}` to remove", rem.span,
                    help=did_you_mean(rem.name, [k for k in table if k not in own])))
            else:
                del table[rem.name]
                if rem.kind == "param":
                    removed[rem.name] = rem.span
    return _Merged(params, rules, duplicates, removed)


# -- the checker -----------------------------------------------------------------


def check_policy(chain: Sequence[ast.Policy], catalogue: FactCatalogue) -> CheckedPolicy:
    """Check a policy and its `extends` chain (root first). Raises PolicyError with every
    error found; warnings ride along on the result."""
    diags: list[Diagnostic] = []
    leaf = chain[-1]
    _check_header(leaf, diags)
    for parent, child in zip(chain, chain[1:]):
        if parent.id != child.id and parent.id and child.id:
            diags.append(Diagnostic(
                "extends_other_policy",
                f"version `{child.extends}` belongs to policy `{parent.id}`, not `{child.id}`",
                child.header_spans.get("extends")))
    merged = merge_chain(chain, diags)
    checker = _Checker(catalogue, diags)
    checker.removed = merged.removed
    params = checker.check_params(merged)
    rules = []
    for rule, policy in merged.rules.values():
        checked = checker.check_rule(rule, params)
        rules.append(dataclasses.replace(checked, rule=dataclasses.replace(rule, origin=policy.version)))
    used = {p for r in rules for p in r.params_used}
    for dup in merged.duplicates:
        used.update(checker.check_rule(dup, params).params_used)
    for name, (p, policy) in merged.params.items():
        if name not in used and name in params:
            inherited = policy is not leaf  # declared in a version this one extends
            diags.append(Diagnostic(
                "unused_param", f"parameter `{name}` is not used by any rule"
                + (f" of version `{leaf.version}`" if inherited else ""), p.name_span, severity="warning",
                help=f"add `remove param {name}` to version `{leaf.version}`" if inherited else None))
    if not any(r.level == "blocking" for r in rules) and not any(d.severity == "error" for d in diags):
        diags.append(Diagnostic("no_blocking_rule", "no rule is blocking: every model passes this policy",
                                leaf.header_spans.get("version") or leaf.header_spans.get("policy"),
                                severity="warning", help="make a rule `level blocking`" if rules else None))
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise PolicyError(diags)
    return CheckedPolicy(
        id=leaf.id or "", version=leaf.version or "", titles=leaf.titles or _inherited_titles(chain),
        effective=leaf.effective, extends=leaf.extends, supersedes=leaf.supersedes,
        params=params, rules=tuple(rules), chain=tuple(chain), digest=policy_digest(chain),
        warnings=tuple(sort_diagnostics(diags)),
    )


def _inherited_titles(chain: Sequence[ast.Policy]) -> tuple[ast.Title, ...]:
    for p in reversed(chain):
        if p.titles:
            return p.titles
    return ()


def policy_digest(chain: Sequence[ast.Policy]) -> str:
    """sha256 over the texts of the chain, root first: any byte changed changes it."""
    h = hashlib.sha256()
    for p in chain:
        text = p.source.text if p.source is not None else ""
        h.update((p.version or "").encode() + b"\0" + text.encode("utf-8") + b"\0")
    return "sha256:" + h.hexdigest()


def _check_header(policy: ast.Policy, diags: list[Diagnostic]) -> None:
    first = policy.source.text if policy.source else ""
    top = Span(policy.source, 0, min(len(first), max(1, first.find("\n")))) if policy.source and first else None
    name = policy.source.name if policy.source else None  # an empty file has no span to show
    if not policy.id:
        diags.append(Diagnostic("missing_header", "the policy has no `policy \"<id>\"` line", top, file=name))
    if not policy.version:
        diags.append(Diagnostic("missing_header", "the policy has no `version \"<version>\"` line", top,
                                file=name))
    if policy.language is not None and policy.language != LANGUAGE_VERSION:
        diags.append(Diagnostic("unsupported_language",
                                f"language `{policy.language}` is not known; this engine reads language "
                                f"`{LANGUAGE_VERSION}`", policy.header_spans.get("language")))
    if policy.effective is not None:
        try:
            _dt.date.fromisoformat(policy.effective)
        except ValueError:
            diags.append(Diagnostic("invalid_date", f"`{policy.effective}` is not a date like `2026-03-01`",
                                    policy.header_spans.get("effective")))
    if policy.id is not None and not _is_identifier(policy.id):
        diags.append(Diagnostic("invalid_id", f"policy id `{policy.id}` may hold only letters, digits, "
                                "`-`, `_` and `.`", policy.header_spans.get("policy")))


def _is_identifier(text: str) -> bool:
    return bool(text) and all(ch.isalnum() or ch in "-_." for ch in text)


class _Checker:
    def __init__(self, catalogue: FactCatalogue, diags: list[Diagnostic]) -> None:
        self.catalogue = catalogue
        self.diags = diags
        self.reported: set[str] = set()
        self.removed: dict[str, Span | None] = {}  # parameters a revision removed: see `merge_chain`
        # (variable, mode, quantifier) a message may not name; see `message_scope`.
        self.unnamed_var: tuple[str, str, str] | None = None

    def error(self, code: str, message: str, span: Span | None, help: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, help=help))

    # parameters ------------------------------------------------------------------
    def check_params(self, merged: _Merged) -> dict[str, CheckedParam]:
        out: dict[str, CheckedParam] = {}
        for name, (p, policy) in sorted(merged.params.items()):
            if name in self.catalogue.root.fields:
                self.error("shadowed_name", f"parameter `{name}` has the name of a fact", p.name_span)
                continue
            if name in FUNCTIONS:
                self.error("shadowed_name", f"parameter `{name}` has the name of a function", p.name_span)
                continue
            ptype = PARAM_TYPES.get(p.type.name)
            if ptype is None:
                self.error("unknown_type", f"unknown type `{p.type.name}`", p.type.span,
                           help=did_you_mean(p.type.name, PARAM_TYPES) or
                           "types are " + ", ".join(f"`{t}`" for t in PARAM_TYPES))
                continue
            value = self.constant(p.default)
            problem = None if value is _NOT_CONSTANT else type_problem(value, ptype)
            if problem:
                self.error("type_mismatch", f"parameter `{name}` is a {p.type.name} but its default {problem}",
                           p.default.span)
            # Known by name and type even when its default is wrong, so its uses raise no cascade.
            bad = value is _NOT_CONSTANT or problem
            out[name] = CheckedParam(name, ptype, p.type.name, None if bad else value, p.doc, policy.version)
        return out

    def constant(self, expr: ast.Expr) -> Any:
        value = plain_value(expr)
        if value is _NOT_CONSTANT:
            self.error("not_constant", "a parameter's default is a plain value, like `0.9`, `\"KR\"` or "
                       "`[\"KR\"]`", expr.span)
        return value

    # rules -------------------------------------------------------------------------
    def check_rule(self, rule: ast.Rule, params: dict[str, CheckedParam]) -> CheckedRule:
        self.params = params
        self.params_used: set[str] = set()
        self.facts_used: set[str] = set()
        if rule.id == "verdict":
            self.error("reserved_rule_id", "`verdict` names the policy's verdict in tests and reports; a rule "
                       "cannot be called so", rule.id_span)
        if rule.level is None:
            self.error("missing_field", f"rule `{rule.id}` has no `level` (blocking or advisory)", rule.id_span)
        elif rule.level not in LEVELS:
            self.error("unknown_level", f"unknown level `{rule.level}`", rule.level_span,
                       help=did_you_mean(rule.level, LEVELS) or "a level is `blocking` or `advisory`")
        if rule.condition is None:
            self.error("missing_field", f"rule `{rule.id}` has no `require` or `forbid` condition", rule.id_span)
        else:
            t = self.infer(rule.condition, {})
            self.expect_bool(t, rule.condition, "a rule's condition")
        if not rule.messages:
            self.error("missing_field", f"rule `{rule.id}` has no `message`", rule.id_span)
        if rule.cite is None:
            self.diags.append(Diagnostic("missing_citation", f"rule `{rule.id}` cites no source", rule.id_span,
                                         severity="warning", help="add `cite \"...\"` naming the criterion"))
        scope = self.message_scope(rule)
        for _lang, template in rule.messages:
            for part in template.parts:
                if not isinstance(part, str):
                    t = self.infer(part, scope)
                    if t.kind == "record" or (t.kind == "list" and t.elem is not None and t.elem.kind == "record"):
                        self.error("group_in_message", f"a message cannot show a {t.describe()}", part.span,
                                   help=_group_help(part, t))
        self.unnamed_var = None
        return CheckedRule(rule, tuple(sorted(self.params_used)), tuple(sorted(self.facts_used)))

    def message_scope(self, rule: ast.Rule) -> dict[str, Type]:
        """A message may name the variable of the condition's outer quantifier when the
        rule fails because of particular items: it is then shown once for each of them."""
        cond = rule.condition
        if isinstance(cond, ast.Quantifier):
            if (rule.mode, cond.kind) not in WITNESSED:
                # `require any` fails when no item qualifies: there is no item to name.
                self.unnamed_var = (cond.var, rule.mode, cond.kind)
                return {}
            elem = self.infer_quiet(cond.source)
            return {cond.var: elem.elem if elem.kind == "list" and elem.elem else ANY}
        return {}

    def infer_quiet(self, expr: ast.Expr) -> Type:
        saved = (list(self.diags), set(self.reported))
        t = self.infer(expr, {})
        self.diags[:], self.reported = saved
        return t

    def expect_bool(self, t: Type, expr: ast.Expr, what: str) -> None:
        if t.kind not in ("boolean", "any"):
            self.error("type_mismatch", f"{what} must be true or false, but this is a {t.describe()}",
                       expr.span)

    def expect(self, t: Type, kind: str, expr: ast.Expr, what: str) -> bool:
        if t.kind in (kind, "any"):
            return True
        self.error("type_mismatch", f"{what} must be a {kind}, but `{expr.span.text if expr.span else ''}` "
                   f"is a {t.describe()}", expr.span)
        return False

    def infer(self, expr: ast.Expr, scope: dict[str, Type]) -> Type:
        method = getattr(self, "_infer_" + type(expr).__name__)
        return method(expr, scope)

    def _infer_Literal(self, e: ast.Literal, scope) -> Type:
        if isinstance(e.value, bool):
            return BOOL
        if isinstance(e.value, float):
            return NUMBER
        return STRING

    def _infer_ListLit(self, e: ast.ListLit, scope) -> Type:
        elem = ANY
        for item in e.items:
            t = self.infer(item, scope)
            if elem.kind == "any":
                elem = Type(t.kind) if t.kind in ("number", "string", "boolean") else t
            elif t.kind not in (elem.kind, "any"):
                self.error("type_mismatch", f"a list holds values of one type; this {t.describe()} follows "
                           f"a {elem.describe()}", item.span)
        return list_of(elem)

    def _infer_Path(self, e: ast.Path, scope) -> Type:
        if e.root in scope:
            t = scope[e.root]
        elif e.root in self.params:
            self.params_used.add(e.root)
            t = self.params[e.root].type
        elif e.root in self.catalogue.root.fields:
            t = self.catalogue.root.fields[e.root]
        elif self.unnamed_var and e.root == self.unnamed_var[0]:
            var, mode, kind = self.unnamed_var
            self.error("no_witness", f"a `{mode} {kind}` rule fails without any one item to blame, so its "
                       f"message cannot name `{var}`", e.span,
                       help="name facts of the whole sheet, or write the rule so that items fail it "
                            "(`forbid any`, `require all`, `require none`)")
            return ANY
        else:
            key = f"name:{e.root}"
            if key not in self.reported:
                self.reported.add(key)
                candidates = list(scope) + list(self.params) + list(self.catalogue.root.fields)
                root_span = Span(e.span.source, e.span.start, e.span.start + len(e.root)) if e.span else None
                help = did_you_mean(e.root, candidates)
                if e.root in self.removed:  # an inherited rule still uses a parameter a revision removed
                    at = self.removed[e.root]
                    help = (f"`remove param {e.root}`" + (f" at {at.location()}" if at else "")
                            + " removed it; remove or replace the rules that use it too")
                self.error("unknown_name", f"unknown fact or parameter `{e.root}`", root_span, help=help)
            return ANY
        for i, name in enumerate(e.fields):
            span = e.field_spans[i] if i < len(e.field_spans) else e.span
            if t.kind == "any":
                return ANY
            if t.kind != "record":
                so_far = ".".join((e.root, *e.fields[:i]))
                hint = None
                if t.kind == "list":
                    hint = f"`{so_far}` is a list; use `any x in {so_far}: x.{name} ...`"
                self.error("type_mismatch", f"`{so_far}` is a {t.describe()} and has no field `{name}`",
                           span, help=hint)
                return ANY
            if name not in t.fields:
                where = t.path or e.root
                key = f"field:{where}.{name}"
                if key not in self.reported:
                    self.reported.add(key)
                    full = f"{where}.{name}" if where else name
                    self.error("unknown_fact", f"unknown fact `{full}`", span,
                               help=did_you_mean(name, t.fields))
                return ANY
            t = t.fields[name]
        if t.path and t.kind != "record":
            self.facts_used.add(t.path)
        elif t.path and t.kind == "list":
            self.facts_used.add(t.path)
        return t

    def _infer_Not(self, e: ast.Not, scope) -> Type:
        self.expect_bool(self.infer(e.operand, scope), e.operand, "the operand of `not`")
        return BOOL

    def _infer_BoolChain(self, e: ast.BoolChain, scope) -> Type:
        for op in e.operands:
            self.expect_bool(self.infer(op, scope), op, f"each side of `{e.op}`")
        return BOOL

    def _infer_Implies(self, e: ast.Implies, scope) -> Type:
        for op in (e.left, e.right):
            self.expect_bool(self.infer(op, scope), op, "each side of `implies`")
        return BOOL

    def _infer_Compare(self, e: ast.Compare, scope) -> Type:
        lt, rt = self.infer(e.left, scope), self.infer(e.right, scope)
        if e.op in ("<", "<=", ">", ">="):
            ok = self.expect(lt, "number", e.left, f"each side of `{e.op}`")
            if ok:
                self.expect(rt, "number", e.right, f"each side of `{e.op}`")
            return BOOL
        if "any" in (lt.kind, rt.kind):
            return BOOL
        if lt.kind != rt.kind or lt.kind in ("record",):
            self.error("type_mismatch", f"`{_text(e.left)}` is a {lt.describe()} and `{_text(e.right)}` is a "
                       f"{rt.describe()}; they can never be equal", e.op_span or e.span)
            return BOOL
        self.check_enum_values(lt, e.right)
        self.check_enum_values(rt, e.left)
        return BOOL

    def check_enum_values(self, t: Type, other: ast.Expr) -> None:
        """`c.match.relation == "identicle"` can never hold: say so, with a suggestion."""
        if not t.values:
            return
        literals = other.items if isinstance(other, ast.ListLit) else (other,)
        for lit in literals:
            if isinstance(lit, ast.Literal) and isinstance(lit.value, str) and lit.value not in t.values:
                self.error("unknown_value", f"`{t.path}` is never `{lit.value}`", lit.span,
                           help=did_you_mean(lit.value, t.values) or
                           "its values are " + ", ".join(f"`{v}`" for v in t.values))

    def _infer_Member(self, e: ast.Member, scope) -> Type:
        it, ct = self.infer(e.item, scope), self.infer(e.collection, scope)
        if ct.kind == "any":
            return BOOL
        if ct.kind == "string" and it.kind in ("string", "any"):
            return BOOL  # substring test
        if ct.kind != "list":
            self.error("type_mismatch", f"`in` needs a list on its right, but `{_text(e.collection)}` is a "
                       f"{ct.describe()}", e.collection.span)
            return BOOL
        elem = ct.elem or ANY
        if "any" not in (it.kind, elem.kind) and it.kind != elem.kind:
            self.error("type_mismatch", f"`{_text(e.item)}` is a {it.describe()} but the list holds "
                       f"{elem.describe()}s", e.item.span)
        elif it.values:
            self.check_enum_values(it, e.collection)
        return BOOL

    def _infer_Arith(self, e: ast.Arith, scope) -> Type:
        for side in (e.left, e.right):
            self.expect(self.infer(side, scope), "number", side, f"each side of `{e.op}`")
        return NUMBER

    def _infer_Neg(self, e: ast.Neg, scope) -> Type:
        self.expect(self.infer(e.operand, scope), "number", e.operand, "the operand of `-`")
        return NUMBER

    def _infer_Otherwise(self, e: ast.Otherwise, scope) -> Type:
        vt, dt = self.infer(e.value, scope), self.infer(e.default, scope)
        if "any" not in (vt.kind, dt.kind) and vt.kind != dt.kind:
            self.error("type_mismatch", f"`otherwise` gives a {dt.describe()} in place of a {vt.describe()}",
                       e.default.span)
        if vt.values:
            self.check_enum_values(vt, e.default)
        return vt if vt.kind != "any" else dt

    def _infer_Call(self, e: ast.Call, scope) -> Type:
        fn = FUNCTIONS.get(e.function)
        if fn is None:
            self.error("unknown_function", f"unknown function `{e.function}`", e.name_span,
                       help=did_you_mean(e.function, FUNCTIONS) or
                       "functions are " + ", ".join(f"`{f}`" for f in sorted(FUNCTIONS)))
            for a in e.args:
                self.infer(a, scope)
            return ANY
        n = len(e.args)
        if (n < len(fn.params)) or (n > len(fn.params) and not fn.variadic):
            self.error("wrong_arguments", f"`{fn.name}` takes {len(fn.params)}"
                       f"{' or more' if fn.variadic else ''} argument{'s' if len(fn.params) > 1 else ''}, "
                       f"not {n}", e.span)
        types = []
        for i, arg in enumerate(e.args):
            t = self.infer(arg, scope)
            types.append(t)
            want = fn.params[min(i, len(fn.params) - 1)]
            if want != "any":
                self.expect(t, want, arg, f"the argument of `{fn.name}`")
        if fn.name == "decided" and types and types[0].kind == "string":
            return types[0]  # keeps the enum's values, so misspelt values are still caught
        return fn.result

    def _bind(self, var: str, var_span, source: ast.Expr, scope) -> dict[str, Type]:
        st = self.infer(source, scope)
        elem = ANY
        if st.kind == "list":
            elem = st.elem or ANY
        elif st.kind != "any":
            self.error("type_mismatch", f"`{_text(source)}` is a {st.describe()}, not a list to go through",
                       source.span)
        if var in scope or var in self.params or var in self.catalogue.root.fields:
            self.error("shadowed_name", f"`{var}` already names "
                       f"{'a fact' if var in self.catalogue.root.fields else 'a parameter' if var in self.params else 'an outer variable'}",
                       var_span, help="choose another letter or word")
        inner = dict(scope)
        inner[var] = elem
        return inner

    def _infer_Quantifier(self, e: ast.Quantifier, scope) -> Type:
        inner = self._bind(e.var, e.var_span, e.source, scope)
        if e.where is not None:
            self.expect_bool(self.infer(e.where, inner), e.where, "a `where` filter")
        self.expect_bool(self.infer(e.body, inner), e.body, f"the condition of `{e.kind}`")
        return BOOL

    def _infer_Count(self, e: ast.Count, scope) -> Type:
        inner = self._bind(e.var, e.var_span, e.source, scope)
        if e.where is not None:
            self.expect_bool(self.infer(e.where, inner), e.where, "a `where` filter")
        return NUMBER


_NOT_CONSTANT = object()


def plain_value(expr: ast.Expr) -> Any:
    """The value of a literal, a negated number or a list of those; else `_NOT_CONSTANT`."""
    if isinstance(expr, ast.Literal):
        return expr.value
    if isinstance(expr, ast.Neg) and isinstance(expr.operand, ast.Literal) and isinstance(expr.operand.value, float):
        return -expr.operand.value
    if isinstance(expr, ast.ListLit):
        items = [plain_value(i) for i in expr.items]
        return _NOT_CONSTANT if _NOT_CONSTANT in items else tuple(items)
    return _NOT_CONSTANT


def _text(expr: ast.Expr) -> str:
    return expr.span.text if expr.span is not None else "?"


def type_problem(value: Any, t: Type) -> str | None:
    """Why a plain value does not fit a parameter type, or None when it does."""
    if t.kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None if math.isfinite(value) else f"is `{value}`, not a finite number"
        return f"is {_show(value)}"
    if t.kind == "string":
        return None if isinstance(value, str) else f"is {_show(value)}"
    if t.kind == "boolean":
        return None if isinstance(value, bool) else f"is {_show(value)}"
    if t.kind == "list":
        if not isinstance(value, (tuple, list)):
            return f"is {_show(value)}, not a list"
        for item in value:
            p = type_problem(item, t.elem)
            if p:
                return f"holds an item that {p}"
        return None
    return None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{str(value).lower()}`, a true/false value"
    if isinstance(value, str):
        return f'the text `"{value}"`'
    if isinstance(value, (tuple, list)):
        return "a list"
    return f"the number `{value:g}`" if isinstance(value, float) else f"`{value}`"


def coerce_param_value(name: str, text: str, params: dict[str, CheckedParam]) -> Any:
    """Parse a `--set name=value` override as a plain value of the parameter's type."""
    from .parser import parse_expression

    if name not in params:
        raise ValueError(f"unknown parameter `{name}`" + (
            f"; {did_you_mean(name, params)}" if did_you_mean(name, params) else ""))
    param = params[name]
    if param.type.kind == "string" and not text.lstrip().startswith('"'):
        value: Any = text  # a text as typed (`apache-2.0`, `1.0`, `true`); quote it to write escapes
    else:
        try:
            expr = parse_expression(text, f"--set {name}")
        except PolicyError:
            raise ValueError(f"`{text}` is not a value for parameter `{name}` ({param.type_name})") from None
        value = plain_value(expr)
        if value is _NOT_CONSTANT:
            raise ValueError(f"`{text}` is not a plain value for parameter `{name}` ({param.type_name})")
    problem = type_problem(value, param.type)
    if problem:
        raise ValueError(f"parameter `{name}` is a {param.type_name}, but the value {problem}")
    return value



def _group_help(expr: ast.Expr, t: Type) -> str:
    """What a message can show of a group of facts, or of a list of them, instead."""
    from .formatter import format_expr

    shown = format_expr(expr)
    if t.kind == "list":
        return f"show how many with `count(x in {shown})`, or let the rule name each failing item"
    field = sorted(t.fields)[0] if t.fields else None
    return f"name one of its facts, e.g. `{shown}.{field}`" if field else "name one of its facts"
