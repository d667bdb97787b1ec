"""A policy as the criteria document people read: each rule's demand in words, in Markdown."""

from __future__ import annotations

from . import ast, markdown as md
from .catalogue import FactCatalogue
from .checker import FUNCTIONS, CheckedPolicy
from .formatter import format_expr, format_string, precedence

__all__ = ["render_policy", "describe_condition"]

_COMPARE_WORDS = {
    "==": "is", "!=": "is not", "<": "is less than", "<=": "is at most", ">": "is more than",
    ">=": "is at least",
}


def _code(text: str) -> str:
    return md.code(text)


class _Words:
    """Turns a condition into an English sentence a non-programmer can check."""

    def __init__(self, policy: CheckedPolicy) -> None:
        self.policy = policy

    def say(self, e: ast.Expr, min_prec: int = 0) -> str:
        """The words for an expression, in parentheses where it sits inside an operator
        that binds more tightly (the same places the formatter puts them)."""
        text = getattr(self, "_" + type(e).__name__)(e)
        return f"({text})" if precedence(e) < min_prec else text

    def _Literal(self, e: ast.Literal) -> str:
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        return md.text(format_expr(e))

    def _ListLit(self, e: ast.ListLit) -> str:
        return "[" + ", ".join(self.say(i) for i in e.items) + "]"

    def _Path(self, e: ast.Path) -> str:
        if not e.fields and e.root in self.policy.params:
            p = self.policy.params[e.root]
            return f"{_code(e.root)} ({_code(_value(p.default))})"
        return _code(e.dotted)

    def _Not(self, e: ast.Not) -> str:
        inner = e.operand
        if isinstance(inner, ast.Call) and inner.function == "known":
            return f"{self.say(inner.args[0])} is unknown"
        return f"not ({self.say(inner)})"

    def _BoolChain(self, e: ast.BoolChain) -> str:
        # `and` inside `or` binds tighter, but a reader of English does not know it: any
        # chain inside the other kind is bracketed.
        inner = precedence(e) + 1
        return f" {e.op} ".join(f"({self.say(o)})" if isinstance(o, ast.BoolChain) else self.say(o, inner)
                                for o in e.operands)

    def _Implies(self, e: ast.Implies) -> str:
        return f"if {self.say(e.left, 2)}, then {self.say(e.right)}"

    def _Compare(self, e: ast.Compare) -> str:
        return f"{self.say(e.left, 6)} {_COMPARE_WORDS[e.op]} {self.say(e.right, 6)}"

    def _Member(self, e: ast.Member) -> str:
        coll = e.collection
        if isinstance(coll, ast.ListLit):
            where = "one of [" + ", ".join(self.say(i) for i in coll.items) + "]"
        else:
            where = f"in {self.say(coll, 6)}"
        return f"{self.say(e.item, 6)} is {'not ' if e.negated else ''}{where}"

    def _Arith(self, e: ast.Arith) -> str:
        left, right = (7, 8) if e.op in "+-" else (8, 9)
        return f"{self.say(e.left, left)} {e.op} {self.say(e.right, right)}"

    def _Neg(self, e: ast.Neg) -> str:
        return f"-{self.say(e.operand, 9)}"

    def _Otherwise(self, e: ast.Otherwise) -> str:
        return f"{self.say(e.value, 7)} (taken as {self.say(e.default, 7)} when unknown)"

    def _Call(self, e: ast.Call) -> str:
        args = [self.say(a) for a in e.args]
        if e.function == "known":
            return f"{args[0]} is known"
        if e.function == "decided":
            return f"{args[0]} (a detector's `unknown` left open)"
        if e.function == "size":
            return f"the number of items in {args[0]}"
        return f"{e.function}({', '.join(args)})"

    def _Count(self, e: ast.Count) -> str:
        # Bracketed, so that what follows is not read as part of its filter.
        where = f" for which {self.say(e.where, 2)}" if e.where is not None else ""
        return f"(the number of items {_code(e.var)} in {self.say(e.source, 2)}{where})"

    def _Quantifier(self, e: ast.Quantifier) -> str:
        lead = {"any": "for some", "all": "for every", "none": "for no"}[e.kind]
        where = f" where {self.say(e.where, 2)}" if e.where is not None else ""
        return f"{lead} {_code(e.var)} in {self.say(e.source, 2)}{where}: {self.say(e.body)}"


def _value(v) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]" if v else "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    return format_string(v) if isinstance(v, str) else str(v)


def describe_condition(rule: ast.Rule, policy: CheckedPolicy) -> str:
    words = _Words(policy).say(rule.condition)
    if rule.mode == "forbid":
        return f"Not allowed: {words}."
    return f"Required: {words}."


def _titles(titles: tuple[ast.Title, ...]) -> list[str]:
    return [t.text for t in sorted(titles, key=lambda t: (t.lang != "ko", t.lang or ""))]


def render_policy(policy: CheckedPolicy, catalogue: FactCatalogue) -> str:
    """The criteria document of a checked policy, in Markdown."""
    titles = _titles(policy.titles) or [policy.id]
    lines = [f"# {md.text(titles[0])}", ""]
    lines += [f"*{md.text(t)}*  " for t in titles[1:]]
    lines += [
        "",
        f"Policy {_code(policy.id)}, version {_code(policy.version)}"
        + (f", effective {md.text(policy.effective)}" if policy.effective else "")
        + (f"; extends version {_code(policy.extends)}" if policy.extends else "")
        + (f"; supersedes {_code(policy.supersedes)}" if policy.supersedes else "") + ".",
        f"Digest `{policy.digest}`.",
        "",
        "A model is **not recognised** when a *blocking* criterion fails; it is **undecided** when a "
        "blocking criterion cannot be decided because a fact is unknown. *Advisory* criteria are "
        "reported and do not change the verdict.",
        "",
        "## Criteria",
    ]
    for n, checked in enumerate(policy.rules, 1):
        rule = checked.rule
        names = _titles(rule.titles) or [rule.id]
        lines += ["", f"### {n}. {md.text(names[0])}", ""]
        lines += [f"*{md.text(t)}*  " for t in names[1:]]
        if len(names) > 1:
            lines.append("")
        lines += [
            f"- Rule {_code(rule.id)} · {'**blocking**' if checked.level == 'blocking' else 'advisory'}"
            + (f" · since version {_code(rule.origin)}" if rule.origin else ""),
        ]
        if rule.cite:
            lines.append(f"- Source: {md.text(rule.cite)}")
        lines += ["", describe_condition(rule, policy)]
        for note in rule.notes:
            lines += ["", f"> {md.text(note)}"]
    if policy.params:
        lines += ["", "## Parameters", "", "| parameter | value | meaning |", "|---|---|---|"]
        for name, p in sorted(policy.params.items()):
            value = _value(p.default)
            value = _code(value).replace("|", "\\|") if p.default != () else value  # a `|` ends a cell, even in code
            lines.append(f"| {_code(name)} | {value} | {md.cell(p.doc or '')} |")
    used = sorted({f for r in policy.rules for f in r.facts_used})
    if used:
        lines += ["", "## Facts the criteria read", "", "| fact | meaning | detector |", "|---|---|---|"]
        for path in used:
            spec = catalogue.spec(path) or catalogue.spec(path + "[]")
            doc = spec.doc if spec else ""
            lines.append(f"| {_code(path)} | {md.cell(doc)} | {md.cell(spec.detector if spec else '')} |")
    lines += ["", "## Functions", ""]
    lines += [f"- {_code(f.name)}: {md.text(f.doc)}" for f in sorted(FUNCTIONS.values(), key=lambda f: f.name)
              if any(f"{f.name}(" in format_expr(r.rule.condition) for r in policy.rules)] or ["(none used)"]
    return "\n".join(lines) + "\n"
