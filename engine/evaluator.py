"""Three-valued evaluation of a checked policy over fact sheets, with explanations.

`prepare_policy` compiles each rule once into Python closures (no eval, no exec: a closed
set of operators); `Program.evaluate` runs them over one fact sheet. Unknown is `None`:
a missing or null fact. `and`/`or`/`not` follow Kleene's logic, so an unknown fact
decides nothing it cannot decide, and a rule it leaves open is `indeterminate`.
"""

from __future__ import annotations

import math
import operator
from functools import partial
from typing import Any, Callable, Iterable, Mapping, NamedTuple, get_args

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


_new_tuple = tuple.__new__  # a named tuple, made without its Python-level __new__


class RuleResult:
    """One rule's outcome and why. Evidence and unknown facts are read off the trace of
    fact reads when first asked for, so a caller who needs only outcomes pays little."""

    __slots__ = ("_rule", "outcome", "message", "witnesses", "_trace", "_ctx", "_evidence", "_unknown")

    def __init__(self, rule: "_CompiledRule", outcome: str, message: str, witnesses: tuple[str, ...],
                 trace: list, ctx: "_Ctx") -> None:
        self._rule = rule
        self.outcome = outcome
        self.message = message
        self.witnesses = witnesses  # list items that decided the rule, e.g. `components[1]`
        self._trace = trace
        self._ctx = ctx
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
    def evidence(self) -> tuple[Evidence, ...]:
        """Each fact the rule read (of the items that decided it), sorted by path."""
        ev = self._evidence
        if ev is None:
            ctx = self._ctx
            key = tuple(self._trace)
            pick = _PICKS.get(key)
            if pick is None:
                if len(_PICKS) > 10_000:
                    _PICKS.clear()
                pick = _PICKS[key] = _pick(key)
            shown = ctx.shown
            if shown is None:
                shown = ctx.shown = _show(ctx)
            ev = pick(shown)
            if ctx.hidden:
                ev = tuple(filter(None, ev))
            self._evidence = ev
        return ev

    @property
    def unknown(self) -> tuple[str, ...]:
        """Facts whose absence (or a detector's `unknown`) left the rule open (none when
        the rule is decided, whatever else it read)."""
        if self._unknown is None:
            self._unknown = _unknown(self._trace, self._ctx.reads) if self.outcome == INDETERMINATE else ()
        return self._unknown

    def __repr__(self) -> str:
        return f"RuleResult({self.id!r}, {self.outcome!r}, {self.message!r})"


# A trace (the paths a rule read, in order) -> fn(shown): their evidence, each once, sorted
# by path (see `_show`). A rule's reads take few shapes, and sheets repeat them.
_PICKS: dict[tuple[str, ...], Callable[[dict], tuple]] = {}


def _pick(trace: tuple[str, ...]) -> Callable[[Any], tuple]:
    return _getter(sorted(set(trace)))


def _getter(keys: list) -> Callable[[Any], tuple]:
    """fn(container) -> the items under these keys, as a tuple (`itemgetter` that is one
    for any number of keys)."""
    if len(keys) > 1:
        return operator.itemgetter(*keys)
    if keys:
        (key,) = keys
        return lambda container: (container[key],)
    return lambda container: ()


_OUTCOME = operator.attrgetter("outcome")


class Evaluation(NamedTuple):
    verdict: str
    rules: tuple[RuleResult, ...]
    sheet: FactSheet
    policy: CheckedPolicy
    params: Mapping[str, Any]
    lang: str | None = None  # the language messages were chosen in


def combine_verdict(outcomes: Iterable[tuple[str, str]]) -> str:
    """(level, outcome) pairs -> verdict: fail if a blocking rule fails, else
    indeterminate if a blocking rule is, else pass."""
    return _verdict(o for level, o in outcomes if level == "blocking")


def _verdict(blocking: Iterable[str]) -> str:
    """The verdict from the outcomes of the blocking rules (see `combine_verdict`)."""
    seen = set(blocking)
    return FAIL if FAIL in seen else INDETERMINATE if INDETERMINATE in seen else PASS


def format_value(value: Any) -> str:
    """How a fact's value reads in a message."""
    if value.__class__ is str:
        return value
    if value is None:
        return "unknown"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"  # as the sheet holds it, to 12 digits: arithmetic noise (7.000000000000001) gone
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "{…}"
    return str(value)


# -- compiled program ----------------------------------------------------------------

# A compiled expression: fn(ctx, env) -> value. `ctx` carries the facts and the trace of
# fact reads; `env` maps a bound variable to (item, its path in the sheet).
Fn = Callable[["_Ctx", dict], Any]


class _Ctx:
    """One sheet's evaluation: its facts, the current rule's trace of fact reads (their
    paths, in the order read), and what its rules share."""

    __slots__ = ("facts", "trace", "owners", "reads", "shown", "hidden", "joins", "no_value")

    def __init__(self, facts: dict, owners: Mapping[str, str | None]) -> None:
        self.facts = facts
        self.trace: list[str] = []
        self.owners = owners
        self.reads: dict[str, tuple] = {}  # path read -> what its first read found (value, parent object, site)
        self.shown: dict[str, Evidence | None] | None = None  # see `_show`
        self.hidden = False  # whether some path read holds a group or a list (see `_show`)
        self.joins: dict[tuple, tuple] = {}  # see `_joined`
        # Arithmetic that gave no value (a division by zero): (the rule's trace, why)
        self.no_value: tuple[list, str] | None = None


def _show(ctx: _Ctx) -> dict[str, Evidence | None]:
    """Each fact the sheet's rules read, as evidence: its value, who wrote it, and how (the
    `method` beside it). Groups and lists of objects are shown through their items: they
    get none (and `ctx.hidden` says there are some); a list of values is shown as it is.
    Made once per sheet, when first asked for."""
    owners = ctx.owners
    shown: dict[str, Evidence | None] = {}
    for path, (value, parent, site) in ctx.reads.items():
        cls = value.__class__
        if cls is dict or (cls is list and value and value[0].__class__ is dict):
            shown[path] = None
            ctx.hidden = True
            continue
        method = parent.get("method") if parent.__class__ is dict and not site.is_method else None
        shown[path] = _new_tuple(Evidence, (str(path) if site.guarded else path, value, owners.get(site.top),
                                            method if method.__class__ is str else None))
    return shown


class _Guarded(str):
    """The path of a read inside known(...) or left of `otherwise`: the same path, marked
    so that its absence is not reported as what left a rule open."""

    __slots__ = ()


class _Site:
    """A place in a policy that reads a fact. For a field of a bound item it keeps the
    field's path for each item path (`components[1]` -> `components[1].kind`), made once."""

    __slots__ = ("suffix", "top", "guarded", "paths", "is_method")

    def __init__(self, suffix: str, top: str, guarded: bool) -> None:
        self.suffix = _Guarded(suffix) if guarded else suffix  # also the path of a read from the root
        self.top = top  # the fact sheet key the value is under: who wrote it
        self.guarded = guarded  # inside known(...) or the left of `otherwise`
        # A fact named `method` (`declared.init.method`) is no detection method of its own.
        self.is_method = suffix.rsplit(".", 1)[-1] == "method"
        self.paths: dict[str, str] = {}  # item path -> full path

    def path(self, prefix: str) -> str:
        path = self.paths.get(prefix)
        if path is None:
            if not prefix:
                path = str(self.suffix)
            else:  # a field of an item, or (no suffix) the item itself
                path = f"{prefix}.{self.suffix}" if self.suffix else prefix
            if self.guarded:
                path = _Guarded(path)
            if len(self.paths) > 10_000:
                self.paths.clear()
            self.paths[prefix] = path
        return path


# list path -> its items' paths, ("components[0]", "components[1]", ...): the same few
# recur in every sheet, so each is made once, and paths that are dictionary keys
# (see `_Site`) compare by identity. A tuple handed out is never changed: a longer one
# replaces it.
_ITEM_PATHS: dict[str, tuple[str, ...]] = {}


def _item_paths(base: str, n: int) -> tuple[str, ...]:
    """The paths of (at least) the first n items of the list at `base`."""
    paths = _ITEM_PATHS.get(base, ())
    if len(paths) < n:
        if len(_ITEM_PATHS) > 10_000:
            _ITEM_PATHS.clear()
        paths = _ITEM_PATHS[base] = paths + tuple(f"{base}[{i}]" for i in range(len(paths), n))
    return paths


class _CompiledRule(NamedTuple):
    checked: CheckedRule
    id: str
    level: str
    params: tuple[tuple[str, Any], ...]


# A compiled rule's run: run(ctx, env) -> its result on the sheet of ctx.
Run = Callable[["_Ctx", dict], RuleResult]


class Program:
    """A policy compiled with fixed parameter values, ready to evaluate many sheets."""

    def __init__(self, policy: CheckedPolicy, params: Mapping[str, Any], lang: str | None) -> None:
        self.policy = policy
        self.params = dict(params)
        self.lang = lang
        self._runs = tuple(_compile_rule(r, self.params, lang) for r in policy.rules)
        self._blocking = _getter([i for i, r in enumerate(policy.rules) if r.level == "blocking"])

    def evaluate(self, sheet: FactSheet) -> Evaluation:
        ctx = _Ctx(sheet.facts, sheet.owner_labels)
        # A variable is read only inside its quantifier, which binds it first (the checker
        # refuses shadowing), so bindings left behind are never seen.
        env: dict = {}
        results = tuple([run(ctx, env) for run in self._runs])
        verdict = _verdict(map(_OUTCOME, self._blocking(results)))
        return _new_tuple(Evaluation, (verdict, results, sheet, self.policy, self.params, self.lang))


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


def _plain_rule(rule: _CompiledRule, condition: Fn, forbid: bool, message: tuple) -> Run:
    def run(ctx, env):
        trace = ctx.trace = []
        value = condition(ctx, env)
        if value is None or value is forbid:
            return _explain(rule, value, ctx, trace, message)
        return RuleResult(rule, PASS, "", (), trace, ctx)
    return run


def _quantified_rule(rule: _CompiledRule, q: ast.Quantifier, comp: "_Compiler", forbid: bool,
                     template: ast.Template | None) -> Run:
    """A rule that is a quantifier. Unlike an inner one it goes through every item (the
    rule's explanation names them all), and notes each item's value and reads."""
    source, record = comp.source(q.source)
    base = _static_path(q.source)
    paths = _item_paths(base, 0)  # of the longest list yet
    comp.bind(q.var, q.source)  # stays bound for the message, shown once per witness
    where = comp.expr(q.where) if q.where is not None else None
    body = comp.expr(q.body)
    message = _message(template, comp)
    var, kind = q.var, q.kind
    is_all = kind == "all"
    settle = not is_all  # an item's value that settles the quantifier

    def run(ctx, env):
        nonlocal paths
        trace = ctx.trace = []
        items = source(ctx, env)
        if record is not None and (items.__class__ is not list or not items):
            record(ctx, env)  # an unknown or empty list is evidence; other lists show through their items
        if items is None:
            return _explain(rule, None, ctx, trace, message)
        if len(paths) < len(items):
            paths = _item_paths(base, len(items))
        prefixes = paths
        values = []
        marks = [len(trace)]  # item i's reads are trace[marks[i]:marks[i + 1]]
        hit = unknown = False
        for binding in zip(items, prefixes):
            env[var] = binding
            if where is None:
                v = body(ctx, env)
            else:
                f = where(ctx, env)
                if f is True:
                    v = body(ctx, env)
                else:
                    v = is_all if f is False else _filtered_value(is_all, f, body(ctx, env))
            values.append(v)
            marks.append(len(trace))
            if v is settle:
                hit = True
            elif v is None:
                unknown = True
        value = (kind == "any") if hit else (None if unknown else kind != "any")
        if value is None or value is forbid:
            return _explain(rule, value, ctx, trace, message, (var, kind, items, prefixes, values, marks))
        return RuleResult(rule, PASS, "", (), trace, ctx)
    return run


def _explain(rule: _CompiledRule, value: Any, ctx: _Ctx, trace: list, message: tuple,
             quantified: tuple | None = None) -> RuleResult:
    """The result of a rule that did not pass: the items that decided it (those whose own
    value points the same way), their reads, and the message."""
    outcome = INDETERMINATE if value is None else FAIL
    whole = trace
    chosen: list[int] = []
    if quantified is not None:
        var, kind, items, prefixes, values, marks = quantified
        want = None if value is None else kind != "all"
        chosen = [i for i, v in enumerate(values) if v is want]
    if chosen:
        # Reads outside any item (whole-sheet facts) always count.
        keep = trace[:marks[0]]
        for i in chosen:
            keep += trace[marks[i]:marks[i + 1]]
        trace = keep
    if outcome == FAIL:
        if chosen:
            text = "; ".join([_render(message, ctx, {var: (items[i], prefixes[i])}) for i in chosen])
        else:
            text = _render(message, ctx, {})  # no item to name: its variable is unbound
    else:
        unknown = _unknown(trace, ctx.reads)
        if unknown:
            text = "cannot decide: `" + "`, `".join(unknown) + "` unknown"
        elif ctx.no_value is not None and ctx.no_value[0] is whole:
            text = "cannot decide: " + ctx.no_value[1]
        else:
            text = "cannot decide: a fact it needs is unknown"
    return RuleResult(rule, outcome, text, tuple([prefixes[i] for i in chosen]), trace, ctx)


def _filtered_value(is_all: bool, f: Any, b: Any) -> Any:
    """`F and B` (any/none) or `F implies B` (all) for a filter F that is not false."""
    if f is True:
        return b
    if is_all:
        return True if b is True else None
    return False if b is False else None


def _unknown(trace: list[str], reads: dict[str, tuple]) -> tuple[str, ...]:
    # A detector writes "unknown" where it could not decide (see `decided`).
    return tuple(sorted({path for path in trace if path.__class__ is str
                         and ((v := reads[path][0]) is None or v == "unknown")}))


def _render(parts: tuple, ctx: _Ctx, env: dict) -> str:
    return "".join([part if part.__class__ is str else v if (v := part(ctx, env)).__class__ is str else format_value(v)
                    for part in parts])


# -- compiling expressions -----------------------------------------------------------


def _compile_rule(checked: CheckedRule, params: dict[str, Any], lang: str | None) -> Run:
    rule = checked.rule
    comp = _Compiler(params)
    used = tuple((name, params[name]) for name in checked.params_used)
    compiled = _CompiledRule(checked, rule.id, checked.level, used)
    forbid = rule.mode == "forbid"
    template = _pick_message(rule, lang)
    if isinstance(rule.condition, ast.Quantifier):
        return _quantified_rule(compiled, rule.condition, comp, forbid, template)
    return _plain_rule(compiled, comp.expr(rule.condition), forbid, _message(template, comp))


def _message(template: ast.Template | None, comp: "_Compiler") -> tuple:
    """A message's parts: text, or a compiled expression shown by its value."""
    comp.recording = False  # a message's reads are no evidence
    parts = tuple(p if isinstance(p, str) else comp.expr(p) for p in template.parts) if template else ()
    comp.recording = True
    return parts


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
        self.fact_vars: set[str] = set()  # bound variables whose items are a fact's (not a parameter's)
        self.guarded = 0  # > 0 inside known(...) or the left of `otherwise`
        self.recording = True  # whether reads leave trace entries (a message's do not)

    def bind(self, var: str, source: ast.Expr) -> None:
        root = source.root if isinstance(source, ast.Path) else ""
        self.vars[var] = self.vars.get(root, root)
        facts = isinstance(source, ast.Path) and (
            root in self.fact_vars if root in self.vars else root not in self.params)
        (self.fact_vars.add if facts else self.fact_vars.discard)(var)

    def unbind(self, var: str) -> None:
        self.vars.pop(var, None)
        self.fact_vars.discard(var)

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
        # A list, as a fact sheet's lists are, so that `==` compares the items.
        if all(isinstance(i, ast.Literal) for i in e.items):
            v = [i.value for i in e.items]
            return lambda ctx, env: v
        fns = [self.expr(i) for i in e.items]
        return lambda ctx, env: [f(ctx, env) for f in fns]

    def source(self, e: ast.Expr) -> tuple[Fn, Fn | None]:
        """A quantifier's list, read without a trace entry (a list is shown through its
        items), and when the list is a fact, a read that records it: for when the value is
        anything else (unknown)."""
        records = isinstance(e, ast.Path) and (
            e.root in self.vars and bool(e.fields) or e.root not in self.vars and e.root not in self.params)
        if not records:
            return self.expr(e), None
        recording, self.recording = self.recording, False
        value = self.expr(e)
        self.recording = recording
        return value, self.expr(e) if recording else None

    def _Path(self, e: ast.Path) -> Fn:
        if e.root in self.params and e.root not in self.vars:
            value = self.params[e.root]
            value = list(value) if isinstance(value, (list, tuple)) else value
            for f in e.fields:  # params are plain values: no fields (the checker saw to it)
                value = None
            return lambda ctx, env: value
        if e.root in self.vars and not e.fields:
            root = e.root
            if self.recording and root in self.fact_vars:
                # An item of a fact's list of values, e.g. `m` in `declared.members`: evidence.
                return _read_item(root, _Site("", self.vars[root], self.guarded > 0))
            return lambda ctx, env: env[root][0]
        return self.read(e)

    def read(self, e: ast.Path, test: Callable[[Any], Any] | None = None, negate: bool = False,
             decided: bool = False) -> Fn:
        """A closure that reads a fact (a field of a bound item, or a path from the sheet's
        root) and, when `recording`, records the read. With `test`, it also returns `test(value) is not
        negate` (unknown stays unknown; `decided` makes a detector's "unknown" unknown):
        a comparison and its operand in one call, the commonest leaf of a condition."""
        guarded = self.guarded > 0
        if not self.recording:
            return _value_of(e.root, e.fields, e.root in self.vars, test, negate, decided)
        if e.root in self.vars:
            root, fields = e.root, e.fields
            site = _Site(".".join(fields), self.vars[root], guarded)
            return _VAR_READS[min(len(fields), 3)](root, fields, site, test, negate, decided)
        keys = (e.root, *e.fields)
        site = _Site(".".join(keys), e.root, guarded)
        return _FACT_READS[min(len(keys), 3)](keys, site, test, negate, decided)

    def _Not(self, e: ast.Not) -> Fn:
        f = self.expr(e.operand)

        def not_(ctx, env):
            v = f(ctx, env)
            return None if v is None else not v
        return not_

    def _BoolChain(self, e: ast.BoolChain) -> Fn:
        fns = tuple(self.expr(o) for o in e.operands)
        stop = e.op == "or"  # the operand value that decides the chain
        if len(fns) == 2:  # the usual case, without the loop
            first, second = fns

            def chain2(ctx, env):
                a = first(ctx, env)
                if a is stop:
                    return stop
                b = second(ctx, env)
                if b is stop:
                    return stop
                return None if a is None or b is None else not stop
            return chain2

        def chain(ctx, env):
            unknown = False
            for f in fns:
                v = f(ctx, env)
                if v is stop:
                    return stop
                if v is None:
                    unknown = True
            return None if unknown else not stop
        return chain

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

    def fused(self, e: ast.Expr, test: Callable[[Any], Any], negate: bool = False) -> Fn | None:
        """`path OP constant` or `decided(path) OP constant` as one closure, else None."""
        decided = isinstance(e, ast.Call) and e.function == "decided"
        if decided:
            e = e.args[0]
        if isinstance(e, ast.Path) and e.fields and not (e.root in self.params and e.root not in self.vars):
            return self.read(e, test, negate, decided)
        return None

    def _Compare(self, e: ast.Compare) -> Fn:
        op = _COMPARE[e.op]
        counted = self.counted(e)
        if counted is not None:
            return counted
        c = self.constant(e.right)
        if isinstance(c, tuple):
            c = list(c)  # a list equals a fact's list with the same items
        if c is not self._NO:  # the common `fact == "value"`, `fact >= limit`
            # The constant goes first: `c <= v` is `v >= c`.
            fused = self.fused(e.left, partial(_REFLECTED[e.op], c))
            if fused is not None:
                return fused
            left = self.expr(e.left)
            if isinstance(c, list) and e.op in ("==", "!="):
                def equals_list(ctx, env):
                    a = left(ctx, env)
                    if a is None:
                        return None
                    same = _lists_equal(a, c) if a.__class__ is list else False
                    return None if same is None else same is (e.op == "==")
                return equals_list
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
        if e.op in ("==", "!="):
            def equals(ctx, env):
                a = left(ctx, env)
                b = right(ctx, env)
                if a is None or b is None:
                    return None
                same = _lists_equal(a, b) if a.__class__ is list and b.__class__ is list else a == b
                return None if same is None else same if e.op == "==" else not same
            return equals

        def compare(ctx, env):
            a = left(ctx, env)
            b = right(ctx, env)
            if a is None or b is None:
                return None
            return op(a, b)
        return compare

    def _Member(self, e: ast.Member) -> Fn:
        neg = e.negated
        const = self.constant(e.collection)
        if const is not self._NO:
            if const == ():  # `x in []` is an `or` of nothing: false, whatever x is
                item = self.expr(e.item)

                def member_of_nothing(ctx, env):
                    item(ctx, env)  # still read: it is what the rule looked at
                    return neg
                return member_of_nothing
            const = frozenset(const) if isinstance(const, tuple) else const
            fused = self.fused(e.item, const.__contains__, neg)
            if fused is not None:
                return fused
            item = self.expr(e.item)

            def member_const(ctx, env):
                v = item(ctx, env)
                if v is None:
                    return None
                return (v in const) is not neg
            return member_const
        item = self.expr(e.item)
        coll = self.expr(e.collection)

        def member(ctx, env):
            v = item(ctx, env)
            c = coll(ctx, env)
            if c is None:
                return None
            if c.__class__ is list and not c:
                return neg  # nothing to be found in
            if v is None:
                return None
            if v in c:
                return not neg
            # `v in [a, b]` is `v == a or v == b`: with an unknown item, not finding v is unknown
            if c.__class__ is list and None in c:
                return None
            return neg
        return member

    def _Arith(self, e: ast.Arith) -> Fn:
        left, right = self.expr(e.left), self.expr(e.right)
        op = e.op

        def arith(ctx, env):
            a = left(ctx, env)
            b = right(ctx, env)
            if a is None or b is None:
                return None
            try:
                if op == "+":
                    r = a + b
                elif op == "-":
                    r = a - b
                elif op == "*":
                    r = a * b
                elif b:
                    r = a / b
                else:
                    ctx.no_value = (ctx.trace, "it divides by zero")  # no value; the explanation says why
                    return None
            except OverflowError:
                r = math.inf
            if r.__class__ is float and not math.isfinite(r):  # past floating point: no value either
                ctx.no_value = (ctx.trace, "a number grows beyond what it can compute")
                return None
            return r
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

    def item_base(self, source: ast.Expr) -> tuple[str | None, Callable[[dict], str] | None]:
        """Where a quantifier's list is in the sheet: its path when fixed, else fn(env):
        `c.match.layers` with `c` the second component is `components[1].match.layers`."""
        if isinstance(source, ast.Path) and source.root in self.vars:
            root, rest = source.root, "".join("." + f for f in source.fields)
            return None, lambda env: env[root][1] + rest
        return _static_path(source), None

    def join(self, e: ast.Quantifier) -> tuple[tuple[str, ...], Fn, Fn] | None:
        """`d in LIST where d.X == K`, K not naming `d`, LIST not an item's field: X's
        fields, a read of X and K compiled. K is then evaluated once, not with each item,
        and when the list is long the items it keeps are looked up (see `_joined`)."""
        w = e.where
        if not (isinstance(w, ast.Compare) and w.op == "==" and isinstance(e.source, ast.Path)) \
                or e.source.root in self.vars:
            return None
        for side, other in ((w.left, w.right), (w.right, w.left)):
            if isinstance(side, ast.Path) and side.root == e.var and side.fields and not _names(other, e.var):
                return side.fields, self.read(side), self.expr(other)
        return None

    def _Quantifier(self, e: ast.Quantifier) -> Fn:
        source, record = self.source(e.source)
        base, base_of = self.item_base(e.source)
        paths = _item_paths(base, 0) if base is not None else ()  # of the longest list yet
        self.bind(e.var, e.source)
        join = self.join(e)
        where = self.expr(e.where) if e.where is not None and join is None else None
        body = self.expr(e.body)
        self.unbind(e.var)
        var, kind = e.var, e.kind
        is_all = kind == "all"
        # Inner quantifiers stop at the first item that settles them.
        settle = kind != "all"
        if join is not None:
            fields, read_x, key_of = join
            join_id = (_static_path(e.source), fields)

        def quantify(ctx, env):
            nonlocal paths
            items = source(ctx, env)
            if record is not None and (items.__class__ is not list or not items):
                record(ctx, env)
            if items is None:
                return None
            n = len(items)
            if base is None:
                prefixes = _item_paths(base_of(env), n)
            else:
                if len(paths) < n:
                    paths = _item_paths(base, n)
                prefixes = paths
            unknown = False
            trace = ctx.trace
            if join is not None:
                start = len(trace)
                key = key_of(ctx, env)
                key_reads = trace[start:]  # the filter's reads of K, with every item it keeps
                del trace[start:]
                pairs = enumerate(items)
                if n >= _JOIN_MIN_ITEMS and items.__class__ is list:
                    kept = _joined(ctx, join_id, items, key)
                    if kept is not None:
                        pairs = zip(kept, map(items.__getitem__, kept))
                for i, item in pairs:
                    env[var] = (item, prefixes[i])
                    start = len(trace)
                    x = read_x(ctx, env)
                    if x is None or key is None:
                        f = None
                    elif x == key:
                        f = True
                    else:
                        # An item the filter leaves out decides nothing: its reads are
                        # not evidence (in a join, most pairs are left out).
                        del trace[start:]
                        continue
                    trace += key_reads
                    v = body(ctx, env) if f else _filtered_value(is_all, f, body(ctx, env))
                    if v is None:
                        unknown = True
                    elif v is settle:
                        return kind == "any"
                return None if unknown else kind != "any"
            for binding in zip(items, prefixes):
                env[var] = binding
                if where is None:
                    v = body(ctx, env)
                else:
                    start = len(trace)
                    f = where(ctx, env)
                    if f is False:
                        del trace[start:]  # left out: see above
                        continue
                    v = body(ctx, env) if f is True else _filtered_value(is_all, f, body(ctx, env))
                if v is None:
                    unknown = True
                elif v is settle:
                    return kind == "any"
            if unknown:
                return None
            return kind != "any"
        return quantify

    def _Count(self, e: ast.Count) -> Fn:
        tally = self.tally(e)

        def count(ctx, env):
            t = tally(ctx, env)
            return None if t is None or t[1] else t[0]
        return count

    def counted(self, e: ast.Compare) -> Fn | None:
        """`count(...) OP constant` (either way round), decided whenever every number of
        hits the unknown items allow gives the same answer: with one backbone known,
        `count(c in components where c.kind in kinds) >= 1` holds whatever the others are."""
        if isinstance(e.left, ast.Count):
            count, other, op = e.left, e.right, _COMPARE[e.op]
        elif isinstance(e.right, ast.Count):
            count, other, op = e.right, e.left, _REFLECTED[e.op]
        else:
            return None
        c = self.constant(other)
        if c is self._NO or isinstance(c, (tuple, str, bool)) or c is None:
            return None
        tally = self.tally(count)

        def bounded(ctx, env):
            t = tally(ctx, env)
            if t is None:
                return None
            low, unknown = t
            at_low = op(low, c)
            if not unknown:
                return at_low
            # Each comparison is monotone in the count, except == and != (decided only
            # when c is outside the range).
            if op is operator.eq or op is operator.ne:
                inside = low <= c <= low + unknown
                return None if inside else op is operator.ne
            return at_low if op(low + unknown, c) == at_low else None
        return bounded

    def tally(self, e: ast.Count) -> Callable[["_Ctx", dict], tuple[int, int] | None]:
        """fn(ctx, env) -> (items the filter keeps, items it cannot decide), or None when
        the list is unknown."""
        source, record = self.source(e.source)
        base, base_of = self.item_base(e.source)
        paths = _item_paths(base, 0) if base is not None else ()  # of the longest list yet
        self.bind(e.var, e.source)
        where = self.expr(e.where) if e.where is not None else None
        self.unbind(e.var)
        var = e.var

        def tally(ctx, env):
            nonlocal paths
            items = source(ctx, env)
            if record is not None and (items.__class__ is not list or not items):
                record(ctx, env)
            if items is None:
                return None
            if where is None:
                return len(items), 0
            n = len(items)
            if base is None:
                prefixes = _item_paths(base_of(env), n)
            else:
                if len(paths) < n:
                    paths = _item_paths(base, n)
                prefixes = paths
            hits = unknown = 0
            for binding in zip(items, prefixes):
                env[var] = binding
                v = where(ctx, env)
                if v is True:
                    hits += 1
                elif v is None:
                    unknown += 1
            return hits, unknown
        return tally


def _lists_equal(a: list, b: list) -> bool | None:
    """Lists are equal when they hold equal items in the same order: an `and` of the items'
    equalities, so an unknown item leaves it unknown unless another pair differs."""
    if len(a) != len(b):
        return False
    unknown = False
    for x, y in zip(a, b):
        if x is None or y is None:
            unknown = True
        elif x != y:
            return False
    return None if unknown else True


def _names(e: Any, name: str) -> bool:
    """Whether an expression mentions a variable."""
    if isinstance(e, ast.Path):
        return e.root == name
    if isinstance(e, tuple):
        return any(_names(x, name) for x in e)
    if isinstance(e, _EXPRS):
        return any(_names(v, name) for v in vars(e).values())
    return False


_EXPRS = get_args(ast.Expr)
# Fewer items than this are as quickly tried one by one as looked up.
_JOIN_MIN_ITEMS = 3
# Values a text never equals (all a fact sheet holds besides text and null).
_NEVER_TEXT = frozenset({int, float, bool, list, dict})


def _joined(ctx: _Ctx, join_id: tuple, items: list, key: Any) -> list[int] | None:
    """The items a `where d.X == key` filter keeps, in order: those whose X is `key` and
    those whose X is unknown. None: no shortcut (key not a text, or some X not plain).
    The index is built once per sheet and list."""
    if key.__class__ is not str:
        return None
    cached = ctx.joins.get(join_id)
    if cached is None or cached[0] is not items:
        by_value: dict[str, list[int]] | None = {}
        unknown: list[int] = []
        for i, item in enumerate(items):
            v = item
            for f in join_id[1]:  # as a field read goes
                v = v.get(f) if v.__class__ is dict else None
            if v is None:
                unknown.append(i)
            elif v.__class__ is str:
                by_value.setdefault(v, []).append(i)
            elif v.__class__ not in _NEVER_TEXT:
                by_value = None
                break
        if by_value and unknown:
            by_value = {k: sorted(ix + unknown) for k, ix in by_value.items()}
        cached = ctx.joins[join_id] = (items, by_value, unknown)
    _, by_value, unknown = cached
    return None if by_value is None else by_value.get(key, unknown)


# -- reading facts -------------------------------------------------------------------
# One closure per shape of path. Each records the read: its path goes on the trace, and
# the sheet's first read of a path walks the facts and keeps what it found (value, parent
# object, site: the makings of its evidence, see `_show`), which later reads take the
# value from. Each ends alike: the value, or with a test the test's answer (see `read`).


def _read_var1(root, fields, site, test, negate, decided) -> Fn:
    paths = site.paths
    (f1,) = fields

    def read(ctx, env):
        item, prefix = env[root]
        path = paths.get(prefix) or site.path(prefix)
        ev = ctx.reads.get(path)
        if ev is None:
            v = item.get(f1) if item.__class__ is dict else None
            ctx.reads[path] = (v, item, site)
        else:
            v = ev[0]
        ctx.trace.append(path)
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return read


def _read_var2(root, fields, site, test, negate, decided) -> Fn:
    paths = site.paths
    f1, f2 = fields

    def read(ctx, env):
        item, prefix = env[root]
        path = paths.get(prefix) or site.path(prefix)
        ev = ctx.reads.get(path)
        if ev is None:
            p = item.get(f1) if item.__class__ is dict else None
            v = p.get(f2) if p.__class__ is dict else None
            ctx.reads[path] = (v, p, site)
        else:
            v = ev[0]
        ctx.trace.append(path)
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return read


def _read_var(root, fields, site, test, negate, decided) -> Fn:
    paths = site.paths

    def read(ctx, env):
        item, prefix = env[root]
        path = paths.get(prefix) or site.path(prefix)
        ev = ctx.reads.get(path)
        if ev is None:
            parent = v = item
            for f in fields:
                parent = v
                v = v.get(f) if v.__class__ is dict else None
                if v is None:
                    break
            ctx.reads[path] = (v, parent, site)
        else:
            v = ev[0]
        ctx.trace.append(path)
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return read


def _read_item(root, site) -> Fn:
    paths = site.paths

    def read(ctx, env):
        item, prefix = env[root]
        path = paths.get(prefix) or site.path(prefix)
        if path not in ctx.reads:
            ctx.reads[path] = (item, None, site)
        ctx.trace.append(path)
        return item
    return read


def _read_fact2(keys, site, test, negate, decided) -> Fn:
    path = site.suffix
    k1, k2 = keys

    def read(ctx, env):
        ev = ctx.reads.get(path)
        if ev is None:
            p = ctx.facts.get(k1)
            v = p.get(k2) if p.__class__ is dict else None
            ctx.reads[path] = (v, p, site)
        else:
            v = ev[0]
        ctx.trace.append(path)
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return read


def _read_fact(keys, site, test, negate, decided) -> Fn:
    path = site.suffix

    def read(ctx, env):
        ev = ctx.reads.get(path)
        if ev is None:
            parent = None
            v = ctx.facts
            for k in keys:
                parent = v
                v = v.get(k) if v.__class__ is dict else None
                if v is None:
                    break
            ctx.reads[path] = (v, parent, site)
        else:
            v = ev[0]
        ctx.trace.append(path)
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return read


def _value_of(root, fields, var, test, negate, decided) -> Fn:
    """A read that leaves no trace (a message's, a quantifier's list)."""
    if test is None and var and len(fields) == 2:
        f1, f2 = fields

        def field2(ctx, env):
            item = env[root][0]
            p = item.get(f1) if item.__class__ is dict else None
            return p.get(f2) if p.__class__ is dict else None
        return field2
    if test is None and var and len(fields) == 1:
        (f1,) = fields

        def field(ctx, env):
            item = env[root][0]
            return item.get(f1) if item.__class__ is dict else None
        return field
    if test is None and not var and len(fields) == 1:
        (f1,) = fields

        def fact(ctx, env):
            p = ctx.facts.get(root)
            return p.get(f1) if p.__class__ is dict else None
        return fact
    if test is None and not var and not fields:
        return lambda ctx, env: ctx.facts.get(root)

    def value(ctx, env):
        v = env[root][0] if var else ctx.facts.get(root)
        for f in fields:
            v = v.get(f) if v.__class__ is dict else None
        if test is None or v is None:
            return v
        return None if decided and v == "unknown" else test(v) is not negate
    return value


# By the number of fields after a variable, of keys from the sheet's root (more: a loop).
_VAR_READS = {1: _read_var1, 2: _read_var2, 3: _read_var}
_FACT_READS = {1: _read_fact, 2: _read_fact2, 3: _read_fact}

_COMPARE = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
# `v OP c` as `REFLECTED(c, v)`, so a constant can be bound first.
_REFLECTED = {
    "==": operator.eq, "!=": operator.ne, "<": operator.gt, "<=": operator.ge, ">": operator.lt, ">=": operator.le,
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
