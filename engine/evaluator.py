"""Three-valued evaluation of a checked policy over fact sheets, with explanations.

`prepare_policy` compiles each rule once into Python closures (no eval, no exec: a closed
set of operators); `Program.evaluate` runs them over one fact sheet. Unknown is `None`:
a missing or null fact. `and`/`or`/`not` follow Kleene's logic, so an unknown fact
decides nothing it cannot decide, and a rule it leaves open is `indeterminate`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

from . import ast
from .checker import CheckedPolicy, CheckedRule
from .facts import FactSheet

__all__ = [
    "PASS", "FAIL", "INDETERMINATE", "Evidence", "RuleResult", "Evaluation", "Program",
    "prepare_policy", "evaluate_policy", "combine_verdict", "format_value",
]

PASS, FAIL, INDETERMINATE = "pass", "fail", "indeterminate"


class Evidence(NamedTuple):
    """A fact a rule read: where, its value (None: unknown), who wrote it and how."""

    path: str
    value: Any
    detector: str | None
    method: str | None


class RuleResult(NamedTuple):
    id: str
    level: str
    outcome: str
    message: str
    evidence: tuple[Evidence, ...]
    unknown: tuple[str, ...]  # facts whose absence left the rule open
    witnesses: tuple[str, ...]  # list items that decided the rule, e.g. components[1]
    params: tuple[tuple[str, Any], ...]  # parameters the rule used, with their values


class Evaluation(NamedTuple):
    verdict: str
    rules: tuple[RuleResult, ...]
    sheet: FactSheet
    policy: CheckedPolicy
    params: Mapping[str, Any]


def combine_verdict(outcomes: list[tuple[str, str]]) -> str:
    """(level, outcome) pairs -> verdict: fail if a blocking rule fails, else
    indeterminate if a blocking rule is, else pass."""
    blocking = [o for level, o in outcomes if level == "blocking"]
    if FAIL in blocking:
        return FAIL
    if INDETERMINATE in blocking:
        return INDETERMINATE
    return PASS


def format_value(value: Any) -> str:
    """How a fact's value reads in a message."""
    if value is None:
        return "unknown"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return "{…}"
    return str(value)


# -- compiled program ----------------------------------------------------------------

# A compiled expression: fn(ctx, env) -> value. `ctx` carries the facts and the trace of
# fact reads; `env` maps a bound variable to (item, its path in the sheet).
Fn = Callable[["_Ctx", dict], Any]


class _Ctx:
    __slots__ = ("facts", "trace")

    def __init__(self, facts: dict) -> None:
        self.facts = facts
        # (path prefix, path suffix, value, parent object, guarded)
        self.trace: list[tuple] = []


class _CompiledRule(NamedTuple):
    checked: CheckedRule
    id: str
    level: str
    forbid: bool
    condition: Fn
    quantifier: "_TopQuantifier | None"
    message: tuple  # parts: str or Fn
    params: tuple[tuple[str, Any], ...]


class _TopQuantifier(NamedTuple):
    kind: str
    var: str
    source: Fn
    source_path: str
    where: Fn | None
    body: Fn


class Program:
    """A policy compiled with fixed parameter values, ready to evaluate many sheets."""

    def __init__(self, policy: CheckedPolicy, params: Mapping[str, Any], lang: str | None) -> None:
        self.policy = policy
        self.params = dict(params)
        self._rules = tuple(_compile_rule(r, self.params, lang) for r in policy.rules)

    def evaluate(self, sheet: FactSheet) -> Evaluation:
        results = tuple(_run_rule(rule, sheet) for rule in self._rules)
        verdict = combine_verdict([(r.level, r.outcome) for r in results])
        return Evaluation(verdict, results, sheet, self.policy, self.params)


def prepare_policy(policy: CheckedPolicy, overrides: Mapping[str, Any] | None = None,
                   lang: str | None = None) -> Program:
    """Compile a checked policy. `overrides` are parameter values already type-checked
    (see `checker.coerce_param_value`)."""
    params = policy.param_defaults()
    for name, value in (overrides or {}).items():
        if name not in params:
            raise KeyError(name)
        params[name] = value
    return Program(policy, params, lang)


def evaluate_policy(policy: CheckedPolicy, sheet: FactSheet, overrides: Mapping[str, Any] | None = None,
                    lang: str | None = None) -> Evaluation:
    return prepare_policy(policy, overrides, lang).evaluate(sheet)


# -- running one rule ------------------------------------------------------------------


def _run_rule(rule: _CompiledRule, sheet: FactSheet) -> RuleResult:
    ctx = _Ctx(sheet.facts)
    env: dict = {}
    q = rule.quantifier
    slices: list[tuple] = []  # (prefix, item, value, trace start, trace end)
    if q is None:
        value = rule.condition(ctx, env)
    else:
        value = _run_top_quantifier(q, ctx, env, slices)
    if value is None:
        outcome = INDETERMINATE
    elif value is rule.forbid:
        outcome = FAIL
    else:
        outcome = PASS

    # Which items decided the rule: those whose own value points the same way.
    witnesses: list[tuple] = []
    if slices:
        if outcome == INDETERMINATE:
            witnesses = [s for s in slices if s[2] is None]
        elif outcome == FAIL:
            bad = True if q.kind in ("any", "none") else False
            witnesses = [s for s in slices if s[2] is bad]
    trace = ctx.trace
    if witnesses and outcome != PASS:
        keep: list[tuple] = []
        covered = 0
        for s in slices:  # reads outside any item (whole-sheet facts) always count
            keep.extend(trace[covered:s[3]])
            covered = s[4]
        keep.extend(trace[covered:])
        for s in witnesses:
            keep.extend(trace[s[3]:s[4]])
        trace = keep

    evidence = _evidence(trace, sheet)
    # A detector writes "unknown" where it could not decide (see `decided`).
    unknown = tuple(sorted({_path(t) for t in trace if (t[2] is None or t[2] == "unknown") and not t[4]}))
    if outcome == FAIL:
        if witnesses:
            message = "; ".join(_render(rule.message, ctx, {q.var: (s[1], s[0])}) for s in witnesses)
        else:
            message = _render(rule.message, ctx, env)
    elif outcome == INDETERMINATE:
        message = ("cannot decide: " + ", ".join(f"`{u}`" for u in unknown) + " unknown") if unknown \
            else "cannot decide: a fact it needs is unknown"
    else:
        message = ""
    return RuleResult(rule.id, rule.level, outcome, message, evidence, unknown,
                      tuple(s[0] for s in witnesses), rule.params)


def _run_top_quantifier(q: _TopQuantifier, ctx: _Ctx, env: dict, slices: list) -> Any:
    items = q.source(ctx, env)
    if items is None:
        return None
    trace = ctx.trace
    unknown = False
    hit = False
    kind = q.kind
    for i, item in enumerate(items):
        prefix = f"{q.source_path}[{i}]"
        env[q.var] = (item, prefix)
        start = len(trace)
        value = _item_value(kind, q.where, q.body, ctx, env)
        slices.append((prefix, item, value, start, len(trace)))
        if value is None:
            unknown = True
        elif value is (kind != "all"):
            hit = True
    env.pop(q.var, None)
    if kind == "any":
        return True if hit else (None if unknown else False)
    if kind == "none":
        return False if hit else (None if unknown else True)
    return False if hit else (None if unknown else True)


def _item_value(kind: str, where: Fn | None, body: Fn, ctx: _Ctx, env: dict) -> Any:
    """The value of one item under a quantifier: `F and B` for any/none, `F implies B`
    for all (F the `where` filter, true when absent), in Kleene's logic."""
    if where is None:
        return body(ctx, env)
    f = where(ctx, env)
    if f is False:
        return kind == "all"
    b = body(ctx, env)
    if f is True:
        return b
    if kind == "all":
        return True if b is True else None
    return False if b is False else None


def _path(entry: tuple) -> str:
    prefix, suffix = entry[0], entry[1]
    if not suffix:
        return prefix
    return f"{prefix}.{suffix}" if prefix else suffix


def _evidence(trace: list[tuple], sheet: FactSheet) -> tuple[Evidence, ...]:
    seen: dict[str, Evidence] = {}
    owners: dict[str, str | None] = {}
    for entry in trace:
        path = _path(entry)
        if path in seen:
            continue
        value = entry[2]
        if isinstance(value, (dict, list)):
            continue  # groups and lists are shown through their items
        top = path.split(".", 1)[0].split("[", 1)[0]
        if top not in owners:
            det = sheet.owner(top)
            owners[top] = f"{det['name']}@{det['version']}" if det else None
        parent = entry[3]
        method = parent.get("method") if isinstance(parent, dict) else None
        seen[path] = Evidence(path, value, owners[top], method if isinstance(method, str) else None)
    return tuple(seen[k] for k in sorted(seen))


def _render(parts: tuple, ctx: _Ctx, env: dict) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        else:
            out.append(format_value(part(_Ctx(ctx.facts), env)))
    return "".join(out)


# -- compiling expressions -----------------------------------------------------------


def _compile_rule(checked: CheckedRule, params: dict[str, Any], lang: str | None) -> _CompiledRule:
    rule = checked.rule
    comp = _Compiler(params)
    top = None
    cond = rule.condition
    if isinstance(cond, ast.Quantifier):
        source = comp.expr(cond.source)
        comp.vars.append(cond.var)  # stays bound for the message, shown once per witness
        top = _TopQuantifier(cond.kind, cond.var, source, _static_path(cond.source),
                             comp.expr(cond.where) if cond.where is not None else None, comp.expr(cond.body))
        condition = None
    else:
        condition = comp.expr(cond)
    template = _pick_message(rule, lang)
    parts = tuple(p if isinstance(p, str) else comp.expr(p) for p in template.parts) if template else ()
    used = tuple((name, params[name]) for name in checked.params_used)
    return _CompiledRule(checked, rule.id, checked.level, rule.mode == "forbid", condition, top, parts, used)


def _pick_message(rule: ast.Rule, lang: str | None) -> ast.Template | None:
    by_lang = dict(rule.messages)
    for key in (lang, None, "en", "ko"):
        if key in by_lang:
            return by_lang[key]
    return rule.messages[0][1] if rule.messages else None


def _static_path(expr: ast.Expr) -> str:
    """The sheet path a quantifier's list comes from (`components`, `declared.components`)."""
    if isinstance(expr, ast.Path):
        return expr.dotted
    return "(list)"


class _Compiler:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.vars: list[str] = []
        self.guarded = 0  # > 0 inside known(...) or the left of `otherwise`

    def expr(self, e: ast.Expr) -> Fn:
        return getattr(self, "_" + type(e).__name__)(e)

    def _Literal(self, e: ast.Literal) -> Fn:
        v = e.value
        return lambda ctx, env: v

    def _ListLit(self, e: ast.ListLit) -> Fn:
        if all(isinstance(i, ast.Literal) for i in e.items):
            v = tuple(i.value for i in e.items)
            return lambda ctx, env: v
        fns = [self.expr(i) for i in e.items]
        return lambda ctx, env: tuple(f(ctx, env) for f in fns)

    def _Path(self, e: ast.Path) -> Fn:
        fields = e.fields
        guarded = self.guarded > 0
        if e.root in self.vars:
            root = e.root
            suffix = ".".join(fields)
            if not fields:
                return lambda ctx, env: env[root][0]
            if len(fields) == 1:
                (f1,) = fields

                def read1(ctx, env):
                    item, prefix = env[root]
                    v = item.get(f1) if item.__class__ is dict else None
                    ctx.trace.append((prefix, suffix, v, item, guarded))
                    return v
                return read1
            if len(fields) == 2:
                f1, f2 = fields

                def read2(ctx, env):
                    item, prefix = env[root]
                    p = item.get(f1) if item.__class__ is dict else None
                    v = p.get(f2) if p.__class__ is dict else None
                    ctx.trace.append((prefix, suffix, v, p, guarded))
                    return v
                return read2

            def readn(ctx, env):
                item, prefix = env[root]
                parent = item
                v = item
                for f in fields:
                    parent = v
                    v = v.get(f) if v.__class__ is dict else None
                    if v is None:
                        break
                ctx.trace.append((prefix, suffix, v, parent, guarded))
                return v
            return readn
        if e.root in self.params:
            value = self.params[e.root]
            value = tuple(value) if isinstance(value, list) else value
            for f in fields:  # params are plain values: no fields (the checker saw to it)
                value = None
            return lambda ctx, env: value
        keys = (e.root, *fields)
        path = ".".join(keys)

        def read_fact(ctx, env):
            parent = None
            v = ctx.facts
            for k in keys:
                parent = v
                v = v.get(k) if v.__class__ is dict else None
                if v is None:
                    break
            ctx.trace.append(("", path, v, parent, guarded))
            return v
        return read_fact

    def _Not(self, e: ast.Not) -> Fn:
        f = self.expr(e.operand)

        def not_(ctx, env):
            v = f(ctx, env)
            return None if v is None else not v
        return not_

    def _BoolChain(self, e: ast.BoolChain) -> Fn:
        fns = tuple(self.expr(o) for o in e.operands)
        if e.op == "and":
            def and_(ctx, env):
                unknown = False
                for f in fns:
                    v = f(ctx, env)
                    if v is False:
                        return False
                    if v is None:
                        unknown = True
                return None if unknown else True
            return and_

        def or_(ctx, env):
            unknown = False
            for f in fns:
                v = f(ctx, env)
                if v is True:
                    return True
                if v is None:
                    unknown = True
            return None if unknown else False
        return or_

    def _Implies(self, e: ast.Implies) -> Fn:
        left, right = self.expr(e.left), self.expr(e.right)

        def implies(ctx, env):
            a = left(ctx, env)
            if a is False:
                return True
            b = right(ctx, env)
            if b is True:
                return True
            if a is True:
                return b
            return None
        return implies

    def _Compare(self, e: ast.Compare) -> Fn:
        left, right = self.expr(e.left), self.expr(e.right)
        op = _COMPARE[e.op]
        if isinstance(e.right, ast.Literal):  # the common `fact == "value"`
            c = e.right.value

            def compare_const(ctx, env):
                a = left(ctx, env)
                return None if a is None else op(a, c)
            return compare_const

        def compare(ctx, env):
            a = left(ctx, env)
            b = right(ctx, env)
            if a is None or b is None:
                return None
            return op(a, b)
        return compare

    def _Member(self, e: ast.Member) -> Fn:
        item = self.expr(e.item)
        neg = e.negated
        if isinstance(e.collection, ast.ListLit) and all(isinstance(i, ast.Literal) for i in e.collection.items):
            const = frozenset(i.value for i in e.collection.items)

            def member_const(ctx, env):
                v = item(ctx, env)
                if v is None:
                    return None
                return (v in const) is not neg
            return member_const
        coll = self.expr(e.collection)

        def member(ctx, env):
            v = item(ctx, env)
            c = coll(ctx, env)
            if v is None or c is None:
                return None
            return (v in c) is not neg
        return member

    def _Arith(self, e: ast.Arith) -> Fn:
        left, right = self.expr(e.left), self.expr(e.right)
        op = e.op

        def arith(ctx, env):
            a = left(ctx, env)
            b = right(ctx, env)
            if a is None or b is None:
                return None
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            return a / b if b else None  # division by zero: no value
        return arith

    def _Neg(self, e: ast.Neg) -> Fn:
        f = self.expr(e.operand)

        def neg(ctx, env):
            v = f(ctx, env)
            return None if v is None else -v
        return neg

    def _Otherwise(self, e: ast.Otherwise) -> Fn:
        self.guarded += 1
        value = self.expr(e.value)
        self.guarded -= 1
        default = self.expr(e.default)

        def otherwise(ctx, env):
            v = value(ctx, env)
            return default(ctx, env) if v is None else v
        return otherwise

    def _Call(self, e: ast.Call) -> Fn:
        if e.function == "known":
            self.guarded += 1
            f = self.expr(e.args[0])
            self.guarded -= 1
            return lambda ctx, env: f(ctx, env) is not None
        fns = tuple(self.expr(a) for a in e.args)
        impl = _FUNCTIONS[e.function]

        def call(ctx, env):
            args = [f(ctx, env) for f in fns]
            if any(a is None for a in args):
                return None
            return impl(*args)
        return call

    def _Quantifier(self, e: ast.Quantifier) -> Fn:
        source = self.expr(e.source)
        source_path = _static_path(e.source)
        self.vars.append(e.var)
        where = self.expr(e.where) if e.where is not None else None
        body = self.expr(e.body)
        self.vars.pop()
        var, kind = e.var, e.kind
        # Inner quantifiers stop at the first item that settles them.
        settle = kind != "all"

        def quantify(ctx, env):
            items = source(ctx, env)
            if items is None:
                return None
            base = env[source_path.split(".")[0]][1] + source_path[source_path.index("."):] \
                if source_path.split(".")[0] in env and "." in source_path else source_path
            saved = env.get(var)
            unknown = False
            result = None
            for i, item in enumerate(items):
                env[var] = (item, f"{base}[{i}]")
                v = _item_value(kind, where, body, ctx, env)
                if v is None:
                    unknown = True
                elif v is settle:
                    result = True
                    break
            if saved is None:
                env.pop(var, None)
            else:
                env[var] = saved
            if result:
                return kind == "any"
            if unknown:
                return None
            return kind != "any"
        return quantify

    def _Count(self, e: ast.Count) -> Fn:
        source = self.expr(e.source)
        source_path = _static_path(e.source)
        self.vars.append(e.var)
        where = self.expr(e.where) if e.where is not None else None
        self.vars.pop()
        var = e.var

        def count(ctx, env):
            items = source(ctx, env)
            if items is None:
                return None
            if where is None:
                return len(items)
            base = env[source_path.split(".")[0]][1] + source_path[source_path.index("."):] \
                if source_path.split(".")[0] in env and "." in source_path else source_path
            saved = env.get(var)
            n = 0
            unknown = False
            for i, item in enumerate(items):
                env[var] = (item, f"{base}[{i}]")
                v = where(ctx, env)
                if v is True:
                    n += 1
                elif v is None:
                    unknown = True
            if saved is None:
                env.pop(var, None)
            else:
                env[var] = saved
            return None if unknown else n
        return count


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "decided": lambda value: None if value == "unknown" else value,
    "size": len,
    "lower": str.lower,
    "upper": str.upper,
    "abs": abs,
    "min": min,
    "max": max,
    "starts_with": str.startswith,
    "contains": lambda text, part: part in text,
}
