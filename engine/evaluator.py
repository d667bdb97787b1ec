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


class RuleResult:
    """One rule's outcome and why. Evidence and unknown facts are read off the trace of
    fact reads when first asked for, so a caller who needs only outcomes pays nothing."""

    __slots__ = ("_rule", "outcome", "message", "_witnesses", "_trace", "_owners", "_evidence", "_unknown")

    def __init__(self, rule: "_CompiledRule", outcome: str, message: str, witnesses: tuple, trace: list,
                 owners: Mapping[str, str | None]) -> None:
        self._rule = rule
        self.outcome = outcome
        self.message = message
        self._witnesses = witnesses
        self._trace = trace
        self._owners = owners
        self._evidence = None
        self._unknown = None

    @property
    def id(self) -> str:
        return self._rule.id

    @property
    def level(self) -> str:
        return self._rule.level

    @property
    def params(self) -> tuple[tuple[str, Any], ...]:
        """Parameters the rule used, with their values."""
        return self._rule.params

    @property
    def witnesses(self) -> tuple[str, ...]:
        """List items that decided the rule, e.g. `components[1]`."""
        return tuple(_prefix(w) for w in self._witnesses)

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        """Each fact the rule read (of the items that decided it), sorted by path."""
        if self._evidence is None:
            self._evidence = _evidence(self._trace, self._owners)
        return self._evidence

    @property
    def unknown(self) -> tuple[str, ...]:
        """Facts whose absence (or a detector's `unknown`) left the rule open."""
        if self._unknown is None:
            self._unknown = _unknown(self._trace)
        return self._unknown

    def __repr__(self) -> str:
        return f"RuleResult({self.id!r}, {self.outcome!r}, {self.message!r})"


class Evaluation(NamedTuple):
    verdict: str
    rules: tuple[RuleResult, ...]
    sheet: FactSheet
    policy: CheckedPolicy
    params: Mapping[str, Any]
    lang: str | None = None  # the language messages were chosen in


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
        self.lang = lang
        self._rules = tuple(_compile_rule(r, self.params, lang) for r in policy.rules)

    def evaluate(self, sheet: FactSheet) -> Evaluation:
        ctx = _Ctx(sheet.facts)
        owners = sheet.owner_labels
        env: dict = {}  # every rule leaves it empty again
        results = tuple([_run_rule(rule, ctx, env, owners) for rule in self._rules])
        verdict = combine_verdict([(r.level, r.outcome) for r in results])
        return Evaluation(verdict, results, sheet, self.policy, self.params, self.lang)


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


def _run_rule(rule: _CompiledRule, ctx: _Ctx, env: dict, owners: Mapping[str, str | None]) -> RuleResult:
    trace = ctx.trace = []
    q = rule.quantifier
    if q is None:
        value = rule.condition(ctx, env)
        slices = None
    else:
        slices = []  # (prefix, item, value, trace start, trace end) per item
        value = _run_top_quantifier(q, ctx, env, slices)
    if value is None:
        outcome = INDETERMINATE
    elif value is rule.forbid:
        outcome = FAIL
    else:
        return RuleResult(rule, PASS, "", (), trace, owners)

    # Which items decided the rule: those whose own value points the same way.
    witnesses: list[tuple] = []
    if slices:
        if outcome == INDETERMINATE:
            witnesses = [s for s in slices if s[2] is None]
        else:
            bad = q.kind != "all"
            witnesses = [s for s in slices if s[2] is bad]
    if witnesses:
        keep: list[tuple] = []
        covered = 0
        for s in slices:  # reads outside any item (whole-sheet facts) always count
            keep.extend(trace[covered:s[3]])
            covered = s[4]
        keep.extend(trace[covered:])
        for s in witnesses:
            keep.extend(trace[s[3]:s[4]])
        trace = keep
    if outcome == FAIL:
        if witnesses:
            message = "; ".join(_render(rule.message, ctx, {q.var: (s[1], s[0])}) for s in witnesses)
        else:
            message = _render(rule.message, ctx, env)
    else:
        unknown = _unknown(trace)
        message = ("cannot decide: " + ", ".join(f"`{u}`" for u in unknown) + " unknown") if unknown \
            else "cannot decide: a fact it needs is unknown"
    return RuleResult(rule, outcome, message, tuple(s[0] for s in witnesses), trace, owners)


def _run_top_quantifier(q: _TopQuantifier, ctx: _Ctx, env: dict, slices: list) -> Any:
    items = q.source(ctx, env)
    if items is None:
        return None
    trace = ctx.trace
    unknown = False
    hit = False
    kind = q.kind
    where, body, var, source_path = q.where, q.body, q.var, q.source_path
    settle = kind != "all"
    for i, item in enumerate(items):
        prefix = (source_path, i)  # made a string only if it is shown
        env[var] = (item, prefix)
        start = len(trace)
        value = body(ctx, env) if where is None else _item_value(kind, where, body, ctx, env)
        slices.append((prefix, item, value, start, len(trace)))
        if value is None:
            unknown = True
        elif value is settle:
            hit = True
    env.pop(var, None)
    if hit:
        return kind == "any"
    if unknown:
        return None
    return kind != "any"


def _base(source_path: str, env: dict) -> str:
    """The sheet path of a list a quantifier goes through: `c.match.layers` with `c` the
    second component is `components[1].match.layers`."""
    root, dot, rest = source_path.partition(".")
    if root in env:
        return _prefix(env[root][1]) + dot + rest
    return source_path


def _prefix(prefix: Any) -> str:
    """An item's path in the sheet: kept as (list path, index) until it is shown."""
    if prefix.__class__ is tuple:
        return f"{prefix[0]}[{prefix[1]}]"
    return prefix


def _filtered_value(kind: str, f: Any, b: Any) -> Any:
    """`F and B` (any/none) or `F implies B` (all) for a filter F that is not false."""
    if f is True:
        return b
    if kind == "all":
        return True if b is True else None
    return False if b is False else None


def _item_value(kind: str, where: Fn | None, body: Fn, ctx: _Ctx, env: dict) -> Any:
    """The value of one item under a quantifier: `F and B` for any/none, `F implies B`
    for all (F the `where` filter, true when absent), in Kleene's logic."""
    if where is None:
        return body(ctx, env)
    f = where(ctx, env)
    if f is False:
        return kind == "all"
    return _filtered_value(kind, f, body(ctx, env))


def _path(entry: tuple) -> str:
    return _path_of(entry[0], entry[1])


# (item prefix, suffix) -> "components[1].match.relation": the same few paths recur in
# every sheet, so each is built once.
_PATHS: dict[tuple, str] = {}


def _path_of(prefix: Any, suffix: str) -> str:
    key = (prefix, suffix)
    path = _PATHS.get(key)
    if path is None:
        head = f"{prefix[0]}[{prefix[1]}]" if prefix.__class__ is tuple else prefix
        path = (f"{head}.{suffix}" if head else suffix) if suffix else head
        if len(_PATHS) > 100_000:
            _PATHS.clear()
        _PATHS[key] = path
    return path


def _unknown(trace: list[tuple]) -> tuple[str, ...]:
    # A detector writes "unknown" where it could not decide (see `decided`).
    return tuple(sorted({_path(t) for t in trace if (t[2] is None or t[2] == "unknown") and not t[4]}))


_SHOWN_THROUGH_ITEMS = (dict, list)
_new_evidence = tuple.__new__


def _evidence(trace: list[tuple], owners: Mapping[str, str | None]) -> tuple[Evidence, ...]:
    unique = {}
    for entry in trace:  # a fact read twice is the same fact
        unique[entry[0], entry[1]] = entry
    out = []
    paths = _PATHS
    for key, (prefix, suffix, value, parent, _guarded, top) in unique.items():
        if value.__class__ in _SHOWN_THROUGH_ITEMS:
            continue  # groups and lists are shown through their items
        method = parent.get("method") if parent.__class__ is dict else None
        path = paths.get(key) or _path_of(prefix, suffix)
        out.append(_new_evidence(Evidence, (path, value, owners.get(top),
                                            method if method.__class__ is str else None)))
    out.sort()  # by path: paths are unique, so no value is ever compared
    return tuple(out)


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
        comp.bind(cond.var, cond.source)  # stays bound for the message, shown once per witness
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
        self.vars: dict[str, str] = {}  # bound variable -> the fact sheet key its list is under
        self.guarded = 0  # > 0 inside known(...) or the left of `otherwise`

    def bind(self, var: str, source: ast.Expr) -> None:
        root = source.root if isinstance(source, ast.Path) else ""
        self.vars[var] = self.vars.get(root, root)

    def unbind(self, var: str) -> None:
        self.vars.pop(var, None)

    def expr(self, e: ast.Expr) -> Fn:
        return getattr(self, "_" + type(e).__name__)(e)

    _NO = object()

    def constant(self, e: ast.Expr) -> Any:
        """The value of an expression fixed at compile time (literals and parameters),
        else `_NO`."""
        if isinstance(e, ast.Literal):
            return e.value
        if isinstance(e, ast.Path) and not e.fields and e.root in self.params and e.root not in self.vars:
            v = self.params[e.root]
            return tuple(v) if isinstance(v, list) else v
        if isinstance(e, ast.ListLit):
            items = tuple(self.constant(i) for i in e.items)
            return self._NO if self._NO in items else items
        return self._NO

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
            top = self.vars[root]
            suffix = ".".join(fields)
            if not fields:
                return lambda ctx, env: env[root][0]
            if len(fields) == 1:
                (f1,) = fields

                def read1(ctx, env):
                    item, prefix = env[root]
                    v = item.get(f1) if item.__class__ is dict else None
                    ctx.trace.append((prefix, suffix, v, item, guarded, top))
                    return v
                return read1
            if len(fields) == 2:
                f1, f2 = fields

                def read2(ctx, env):
                    item, prefix = env[root]
                    p = item.get(f1) if item.__class__ is dict else None
                    v = p.get(f2) if p.__class__ is dict else None
                    ctx.trace.append((prefix, suffix, v, p, guarded, top))
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
                ctx.trace.append((prefix, suffix, v, parent, guarded, top))
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
        top = e.root
        if len(keys) == 2:
            k1, k2 = keys

            def read_fact2(ctx, env):
                p = ctx.facts.get(k1)
                v = p.get(k2) if p.__class__ is dict else None
                ctx.trace.append(("", path, v, p, guarded, top))
                return v
            return read_fact2
        if len(keys) == 3:
            k1, k2, k3 = keys

            def read_fact3(ctx, env):
                g = ctx.facts.get(k1)
                p = g.get(k2) if g.__class__ is dict else None
                v = p.get(k3) if p.__class__ is dict else None
                ctx.trace.append(("", path, v, p, guarded, top))
                return v
            return read_fact3

        def read_fact(ctx, env):
            parent = None
            v = ctx.facts
            for k in keys:
                parent = v
                v = v.get(k) if v.__class__ is dict else None
                if v is None:
                    break
            ctx.trace.append(("", path, v, parent, guarded, top))
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
        op = _COMPARE[e.op]
        c = self.constant(e.right)
        if c is not self._NO:  # the common `fact == "value"`, `fact >= limit`
            left = self.expr(e.left)
            if e.op == "==":
                def equals_const(ctx, env):
                    a = left(ctx, env)
                    return None if a is None else a == c
                return equals_const

            def compare_const(ctx, env):
                a = left(ctx, env)
                return None if a is None else op(a, c)
            return compare_const
        left, right = self.expr(e.left), self.expr(e.right)

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
        const = self.constant(e.collection)
        if const is not self._NO:
            const = frozenset(const) if isinstance(const, tuple) else const

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
        if len(fns) == 1:
            (arg,) = fns

            def call1(ctx, env):
                a = arg(ctx, env)
                return None if a is None else impl(a)
            return call1

        def call(ctx, env):
            args = [f(ctx, env) for f in fns]
            if any(a is None for a in args):
                return None
            return impl(*args)
        return call

    def _Quantifier(self, e: ast.Quantifier) -> Fn:
        source = self.expr(e.source)
        source_path = _static_path(e.source)
        self.bind(e.var, e.source)
        where = self.expr(e.where) if e.where is not None else None
        body = self.expr(e.body)
        self.unbind(e.var)
        var, kind = e.var, e.kind
        # Inner quantifiers stop at the first item that settles them.
        settle = kind != "all"

        def quantify(ctx, env):
            items = source(ctx, env)
            if items is None:
                return None
            base = _base(source_path, env)
            saved = env.get(var)
            unknown = False
            result = None
            trace = ctx.trace
            for i, item in enumerate(items):
                env[var] = (item, (base, i))
                if where is None:
                    v = body(ctx, env)
                else:
                    start = len(trace)
                    f = where(ctx, env)
                    if f is False:
                        # An item the filter leaves out decides nothing: its reads are
                        # not evidence (in a join, most pairs are left out).
                        del trace[start:]
                        continue
                    v = _filtered_value(kind, f, body(ctx, env))
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
        self.bind(e.var, e.source)
        where = self.expr(e.where) if e.where is not None else None
        self.unbind(e.var)
        var = e.var

        def count(ctx, env):
            items = source(ctx, env)
            if items is None:
                return None
            if where is None:
                return len(items)
            base = _base(source_path, env)
            saved = env.get(var)
            n = 0
            unknown = False
            for i, item in enumerate(items):
                env[var] = (item, (base, i))
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
