"""The canonical layout of a policy file: `originality fmt`.

The layout is a function of the syntax tree alone, so formatting twice changes
nothing; comments are kept, each before the item it precedes or after the item on
its line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ast
from .parser import parse_policy

__all__ = ["format_policy", "format_expr", "format_string", "WIDTH"]

WIDTH = 92  # lines longer than this are broken at `and`, `or` and `implies`

_PREC = {
    "Quantifier": 0, "Implies": 1, "or": 2, "and": 3, "Not": 4, "Compare": 5, "Member": 5,
    "Otherwise": 6, "+": 7, "-": 7, "*": 8, "/": 8, "Neg": 9,
}
_HEADER_ORDER = ("policy", "version", "language", "effective", "extends", "supersedes")
_FIELD_ORDER = ("title", "level", "cite", "note", "condition", "message")


def precedence(e: ast.Expr) -> int:
    """How tightly an expression binds: lower binds less (a quantifier's body reaches
    furthest), as the grammar parses it."""
    name = type(e).__name__
    if isinstance(e, ast.BoolChain):
        return _PREC[e.op]
    if isinstance(e, ast.Arith):
        return _PREC[e.op]
    return _PREC.get(name, 10)


def format_string(text: str, template: bool = False) -> str:
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    if not out.isprintable():  # a control character or line separator: written as its escape
        out = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in out)
    if template:
        out = out.replace("{", "\\{").replace("}", "\\}")
    return f'"{out}"'


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def format_expr(e: ast.Expr, min_prec: int = 0) -> str:
    """An expression on one line, with the parentheses its structure needs; an
    `otherwise` inside a larger expression is always parenthesised, for the reader."""
    text = _flat(e)
    if precedence(e) < min_prec or (isinstance(e, ast.Otherwise) and min_prec > 0):
        return f"({text})"
    return text


def _flat(e: ast.Expr) -> str:
    if isinstance(e, ast.Literal):
        if isinstance(e.value, bool):
            return "true" if e.value else "false"
        if isinstance(e.value, float):
            return _number(e.value)
        return format_string(e.value)
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, ast.Path):
        return e.dotted
    if isinstance(e, ast.Not):
        return "not " + format_expr(e.operand, 4)
    if isinstance(e, ast.BoolChain):
        p = _PREC[e.op] + 1
        return f" {e.op} ".join(format_expr(o, p) for o in e.operands)
    if isinstance(e, ast.Implies):
        return f"{format_expr(e.left, 2)} implies {format_expr(e.right, 0)}"
    if isinstance(e, ast.Compare):
        return f"{_operand(e.left)} {e.op} {_operand(e.right)}"
    if isinstance(e, ast.Member):
        return f"{_operand(e.item)} {'not in' if e.negated else 'in'} {_operand(e.collection)}"
    if isinstance(e, ast.Otherwise):
        return f"{format_expr(e.value, 7)} otherwise {format_expr(e.default, 7)}"
    if isinstance(e, ast.Arith):
        lp, rp = (7, 8) if e.op in "+-" else (8, 9)
        return f"{format_expr(e.left, lp)} {e.op} {format_expr(e.right, rp)}"
    if isinstance(e, ast.Neg):
        return "-" + format_expr(e.operand, 9)
    if isinstance(e, ast.Call):
        return f"{e.function}(" + ", ".join(format_expr(a) for a in e.args) + ")"
    if isinstance(e, ast.Count):
        where = f" where {format_expr(e.where, 2)}" if e.where is not None else ""
        return f"count({e.var} in {format_expr(e.source, 2)}{where})"
    if isinstance(e, ast.Quantifier):
        where = f" where {format_expr(e.where, 2)}" if e.where is not None else ""
        return f"{e.kind} {e.var} in {format_expr(e.source, 2)}{where}: {format_expr(e.body, 0)}"
    raise TypeError(type(e).__name__)


def _operand(e: ast.Expr) -> str:
    return format_expr(e, 6)


def _layout(e: ast.Expr, indent: int, lead: str) -> list[str]:
    """Lines for a condition starting with `lead` at `indent` spaces: quantifier bodies
    go on their own lines; a line too long breaks before each `and`/`or`/`implies`."""
    pad = " " * indent
    if isinstance(e, ast.Quantifier):
        where = f" where {format_expr(e.where, 2)}" if e.where is not None else ""
        head = f"{pad}{lead}{e.kind} {e.var} in {format_expr(e.source, 2)}{where}:"
        return [head] + _layout(e.body, indent + 2, "")
    flat = pad + lead + format_expr(e)
    if len(flat) <= WIDTH:
        return [flat]
    if isinstance(e, ast.BoolChain):
        p = _PREC[e.op] + 1
        lines = [pad + lead + format_expr(e.operands[0], p)]
        lines += [f"{pad}  {e.op} {format_expr(o, p)}" for o in e.operands[1:]]
        return lines
    if isinstance(e, ast.Implies):
        left = _layout(e.left, indent, lead) if precedence(e.left) >= 2 else [pad + lead + format_expr(e.left, 2)]
        right = _layout(e.right, indent + 2, "implies ")
        return left + right
    return [flat]


def _template(t: ast.Template) -> str:
    out = []
    for part in t.parts:
        if isinstance(part, str):
            out.append(format_string(part, template=True)[1:-1])
        else:
            # A text in a hole is quoted \"…\"; a quote inside the text is written \u0022.
            out.append("{" + format_expr(part).replace('\\"', "\\u0022").replace('"', '\\"') + "}")
    return '"' + "".join(out) + '"'


# -- comments --------------------------------------------------------------------------

_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*')


@dataclass
class _Comments:
    leading: dict  # anchor key -> [comment text]
    trailing: dict  # anchor key -> comment text
    closing: dict  # rule id -> [comments before its `}`]
    closed: dict  # rule id -> the comment after its `}`, on that line
    end: list  # comments after everything
    head: list  # comments before everything


def _collect_comments(policy: ast.Policy) -> _Comments:
    source = policy.source
    text = source.text
    comments = [(m.start(), m.group()) for m in _TOKENS.finditer(text) if m.group().startswith("#")]
    anchors: list[tuple[int, int, object]] = []  # (start, end, key)
    for i, (key, span) in enumerate(policy.header_items):
        anchors.append((span.start, span.end, ("header", i)))
    for p in policy.params:
        anchors.append((p.span.start, p.span.end, ("param", p.name)))
    for r in policy.removals:
        anchors.append((r.span.start, r.span.end, ("remove", r.kind, r.name)))
    rules = []
    for rule in policy.rules:
        rules.append(rule)
        anchors.append((rule.span.start, rule.id_span.end, ("rule", rule.id)))
        for j, (_key, span) in enumerate(rule.field_spans):
            anchors.append((span.start, span.end, ("field", rule.id, j)))
    anchors.sort(key=lambda a: (a[0], a[1]))
    out = _Comments({}, {}, {}, {}, [], [])
    first = anchors[0][0] if anchors else len(text)
    for offset, comment in comments:
        if offset < first:  # the file's opening comments stay at its top
            out.head.append(comment)
            continue
        line, _ = source.line_col(offset)
        same_line = [a for a in anchors if a[1] <= offset and source.line_col(max(a[1] - 1, a[0]))[0] == line]
        if same_line and text[same_line[-1][1]:offset].strip() == "":
            key = same_line[-1][2]
            if key not in out.trailing:
                out.trailing[key] = comment
                continue
        after = [r for r in rules if r.span.end <= offset and text[r.span.end:offset].strip() == ""
                 and "\n" not in text[r.span.end:offset]]
        if after and after[-1].id not in out.closed:
            out.closed[after[-1].id] = comment
            continue
        # A comment inside an item that spans lines (a parameter's list, a condition
        # after its quantifier's `:`) stays with that item: above it.
        around = [a for a in anchors if a[0] < offset < a[1]]
        if around:
            out.leading.setdefault(around[-1][2], []).append(comment)
            continue
        following = [a for a in anchors if a[0] > offset]
        inside = [r for r in rules if r.span.start < offset < r.span.end]
        if inside and (not following or following[0][0] > inside[0].span.end):
            out.closing.setdefault(inside[0].id, []).append(comment)
        elif following:
            out.leading.setdefault(following[0][2], []).append(comment)
        else:
            out.end.append(comment)
    return out


# -- the file --------------------------------------------------------------------------


def format_policy(text: str, name: str = "<policy>") -> str:
    """The canonical text of a policy. Raises PolicyError when it does not parse."""
    policy = parse_policy(text, name)
    c = _collect_comments(policy)
    out: list[str] = list(c.head)
    if c.head:
        out.append("")

    def emit(key, line: str, indent: str = "") -> None:
        for comment in c.leading.get(key, ()):
            out.append(indent + comment)
        trail = c.trailing.get(key)
        out.append(line + (f"  {trail}" if trail else ""))

    header = list(enumerate(policy.header_items))
    values = {"policy": policy.id, "version": policy.version, "language": policy.language,
              "effective": policy.effective, "extends": policy.extends, "supersedes": policy.supersedes}
    for word in _HEADER_ORDER:
        for i, (key, _span) in header:
            if key == word:
                emit(("header", i), f"{word} {format_string(values[word])}")
    titles = iter(policy.titles)
    for i, (key, _span) in header:
        if key == "title":
            t = next(titles)
            emit(("header", i), "title " + (f"{t.lang} " if t.lang else "") + format_string(t.text))

    if policy.params:
        out.append("")
        for p in policy.params:
            line = f"param {p.name}: {p.type.name} = {format_expr(p.default)}"
            if p.doc is None:
                emit(("param", p.name), line)
                continue
            # The parameter ends with its doc line: a comment after it stays there.
            trail = c.trailing.get(("param", p.name))
            out.extend(c.leading.get(("param", p.name), ()))
            out.append(line)
            out.append("  " + format_string(p.doc) + (f"  {trail}" if trail else ""))
    if policy.removals:
        out.append("")
        for r in policy.removals:
            emit(("remove", r.kind, r.name), f"remove {r.kind} {r.name}")
    for rule in policy.rules:
        out.append("")
        emit(("rule", rule.id), f"rule {rule.id} {{")
        fields = _rule_fields(rule)
        for word in _FIELD_ORDER:
            for j, key in enumerate(k for k, _ in rule.field_spans):
                norm = "condition" if key in ("require", "forbid") else key
                if norm != word:
                    continue
                lines = fields[j]
                for comment in c.leading.get(("field", rule.id, j), ()):
                    out.append("  " + comment)
                trail = c.trailing.get(("field", rule.id, j))
                if trail:
                    lines = lines[:-1] + [lines[-1] + "  " + trail]
                out.extend(lines)
        for comment in c.closing.get(rule.id, ()):
            out.append("  " + comment)
        out.append("}" + (f"  {c.closed[rule.id]}" if rule.id in c.closed else ""))
    if c.end:
        out.append("")
        out.extend(c.end)
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out) + "\n"


def _rule_fields(rule: ast.Rule) -> list[list[str]]:
    """The lines of each field, in the order written (indexes match `field_spans`)."""
    titles = iter(rule.titles)
    messages = iter(rule.messages)
    notes = iter(rule.notes)
    out = []
    for key, _span in rule.field_spans:
        if key == "title":
            t = next(titles)
            out.append(["  title " + (f"{t.lang} " if t.lang else "") + format_string(t.text)])
        elif key == "level":
            out.append([f"  level {rule.level}"])
        elif key == "cite":
            out.append([f"  cite {format_string(rule.cite)}"])
        elif key == "note":
            out.append([f"  note {format_string(next(notes))}"])
        elif key in ("require", "forbid"):
            out.append(_layout(rule.condition, 2, f"{key} "))
        elif key == "message":
            lang, template = next(messages)
            out.append(["  message " + (f"{lang} " if lang else "") + _template(template)])
    return out
