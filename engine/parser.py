"""Policy text -> AST. The one module that imports Lark; nothing downstream sees its trees."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path
from typing import get_args

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, PolicyError, did_you_mean
from .source import Source, Span
from .syntax_examples import SYNTAX_EXAMPLES

__all__ = ["parse_policy", "parse_expression", "parse_template"]

# How Lark's terminal names read to a person.
_TOKEN_WORDS = {
    "RBRACE": "`}`", "LBRACE": "`{`", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`",
    "COLON": "`:`", "COMMA": "`,`", "DOT": "`.`", "EQUAL": "`=`", "STRING": "a quoted text",
    "NAME": "a name", "NUMBER": "a number", "COMP_OP": "a comparison", "$END": "the end of the file",
    "LANG": "a language tag (`ko` or `en`)", "NOT_IN": "`not in`", "PLUS": "`+`", "MINUS": "`-`",
    "STAR": "`*`", "SLASH": "`/`", "ANY": "`any`", "ALL": "`all`", "NONE": "`none`",
}


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar" / "policy.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", start=["start", "expr"], propagate_positions=True,
                maybe_placeholders=False, cache=False)


def parse_policy(text: str, name: str = "<policy>") -> ast.Policy:
    """Parse a policy file's text. Raises PolicyError with every syntax diagnostic."""
    source = Source(name, text)
    try:
        tree = _lark().parse(text, start="start")
    except UnexpectedInput as err:
        raise PolicyError([_syntax_diagnostic(err, source)]) from None
    _check_nesting(tree, source)
    builder = _Builder(source)
    try:
        items = builder.transform(tree)
    except VisitError as err:  # unwrap: our own diagnostics travel inside
        if isinstance(err.orig_exc, PolicyError):
            raise PolicyError(err.orig_exc.diagnostics) from None
        raise
    if builder.diagnostics:
        raise PolicyError(builder.diagnostics)
    policy = _assemble(items, source)
    exprs = [p.default for p in policy.params]
    for rule in policy.rules:
        exprs.append(rule.condition)
        exprs += [part for _, t in rule.messages for part in t.parts if not isinstance(part, str)]
    for e in exprs:
        if isinstance(e, _EXPRS):  # (a rule missing its condition is reported by the checker)
            _check_depth(e)
    return policy


def parse_expression(text: str, name: str = "<expression>") -> ast.Expr:
    source = Source(name, text)
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput as err:
        raise PolicyError([_syntax_diagnostic(err, source)]) from None
    _check_nesting(tree, source)
    builder = _Builder(source)
    expr = builder.transform(tree)
    if builder.diagnostics:
        raise PolicyError(builder.diagnostics)
    _check_depth(expr)
    return expr


# How deep an expression may nest. Every part of the engine walks expressions
# recursively; these bounds keep each walk well inside Python's own (about 1,000 calls),
# and far beyond any condition a person writes (brackets 60 deep, a chain of 150 `+`).
_MAX_TREE_DEPTH = 300  # in the grammar's parse tree: each bracket costs several levels
_MAX_DEPTH = 150  # in the syntax tree
_EXPRS = get_args(ast.Expr)


def _too_deep(span: Span | None) -> PolicyError:
    return PolicyError([Diagnostic("too_deep", "this expression nests too deeply to be evaluated", span,
                                   help="split it into simpler conditions or parameters")])


def _check_nesting(tree: Tree, source: Source) -> None:
    """Refuse a parse tree deeper than `_MAX_TREE_DEPTH`, pointing where it gets there."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_TREE_DEPTH:
            meta = node.meta
            raise _too_deep(None if getattr(meta, "empty", True) else Span(source, meta.start_pos, meta.end_pos))
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _check_depth(expr: ast.Expr) -> None:
    """Refuse a syntax tree deeper than `_MAX_DEPTH` (a long chain of `+` is flat to the
    grammar but deep here)."""
    stack = [(expr, 1)]
    while stack:
        e, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise _too_deep(expr.span)
        for value in vars(e).values():
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, _EXPRS):
                    stack.append((child, depth + 1))


def parse_template(raw: str, source: Source, offset: int) -> ast.Template:
    """Split a message into text and `{expression}` holes. `offset` is where `raw`
    (the text between the quotes) starts in `source`."""
    parts: list[str | ast.Expr] = []
    buf: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt == "u" and i + 5 < len(raw) + 1:
                buf.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            buf.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if ch == "{":
            end = _hole_end(raw, i + 1)
            if end < 0:
                raise PolicyError([Diagnostic(
                    "unclosed_placeholder", "a `{` in this message is not closed with `}`",
                    Span(source, offset + i, offset + i + 1),
                    help="write `\\{` for a literal brace")])
            inner = raw[i + 1 : end]
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(_parse_hole(inner, source, offset + i + 1))
            i = end + 1
            continue
        if ch == "}":
            raise PolicyError([Diagnostic(
                "unopened_placeholder", "a `}` in this message has no `{` before it",
                Span(source, offset + i, offset + i + 1), help="write `\\}` for a literal brace")])
        buf.append(ch)
        i += 1
    if buf:
        parts.append("".join(buf))
    return ast.Template(tuple(parts), raw, Span(source, offset - 1, offset + len(raw) + 1))


def _hole_end(raw: str, start: int) -> int:
    """Where the `{` hole starting at `start` closes: the first `}` outside the texts
    it quotes with `\"` (-1: nowhere)."""
    quoted = False
    i = start
    while i < len(raw):
        if raw.startswith('\\"', i):
            quoted = not quoted
            i += 2
            continue
        if raw[i] == "}" and not quoted:
            return i
        i += 1
    return -1


def _unquote_hole(inner: str) -> str:
    """A hole as an expression: a text in it is written `\"like this\"` (the message is
    itself quoted). Each `\"` becomes a quote and a space, on the side away from the
    text, so every offset stays where it is in the file."""
    out, quoted, i = [], False, 0
    while i < len(inner):
        if inner.startswith('\\"', i):
            out.append('"' + " " if quoted else " " + '"')
            quoted = not quoted
            i += 2
        else:
            out.append(inner[i])
            i += 1
    return "".join(out)


def _parse_hole(inner: str, source: Source, offset: int) -> ast.Expr:
    if not inner.strip():
        raise PolicyError([Diagnostic("empty_placeholder", "`{}` names no fact",
                                      Span(source, offset - 1, offset + 1))])
    # Parse the hole in place, so spans point into the policy file itself.
    padded = " " * offset + _unquote_hole(inner)
    try:
        tree = _lark().parse(padded, start="expr")
    except UnexpectedInput as err:
        raise PolicyError([_syntax_diagnostic(err, source, in_message=True, end=len(padded))]) from None
    _check_nesting(tree, source)
    builder = _Builder(source)
    expr = builder.transform(tree)
    if builder.diagnostics:
        raise PolicyError(builder.diagnostics)
    return expr


def _syntax_diagnostic(err: UnexpectedInput, source: Source, in_message: bool = False,
                       end: int | None = None) -> Diagnostic:
    """`end`: where the parsed text ends in `source` (a message hole ends before it)."""
    end_of_input = len(source.text) if end is None else end
    pos = getattr(err, "pos_in_stream", None)
    if (isinstance(err, UnexpectedToken) and err.token.type == "$END") or pos is None:
        pos = end_of_input
    token_text = ""
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        token_text = str(err.token)
    elif isinstance(err, UnexpectedCharacters):
        token_text = source.text[pos : pos + 1]
    end = pos + max(1, len(token_text))
    span = Span(source, min(pos, len(source.text)), min(end, max(len(source.text), pos + 1)))

    if isinstance(err, UnexpectedCharacters):
        ch = source.text[pos : pos + 1]
        if ch == '"':
            return Diagnostic("unterminated_string", "this text is not closed with `\"` on the same line",
                              span)
        if ch == "\\" or (ch and ord(ch) > 127):
            shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
            help = None
            if ch.isalpha():
                help = ("names (rule ids, parameters, levels) are plain letters, digits and `_`; "
                        "write other text in quotes, as a title or a message")
            return Diagnostic("unexpected_character", f"unexpected character `{shown}` outside quotes", span,
                              help=help)
        if ch in _OTHER_LANGUAGES:
            doubled = source.text[pos + 1 : pos + 2] == ch  # `&&`, `||`
            return Diagnostic("syntax_error", f"unexpected `{ch * (1 + doubled)}`", span, help=_OTHER_LANGUAGES[ch])
    before = re.search(r"(?:\b(?:and|or|implies|not|in)|==|!=|<=|>=|[<>+\-*/,(:])\s+"
                       r"(title|level|cite|note|require|forbid|message)\s*$", source.text[:pos])
    if before and not in_message:
        # A condition left unfinished (`… and` at a line's end) takes the next field's word
        # for a fact name, and the field's value then follows it.
        word = before.group(1)
        return Diagnostic("unfinished_condition", f"the condition before `{word}` is unfinished",
                          Span(source, before.start(1), before.end(1)),
                          help="complete the condition, or remove its last `and`/`or`")
    if token_text == "=" and "COMP_OP" in (getattr(err, "expected", None) or getattr(err, "accepts", None) or ()):
        return Diagnostic("single_equals", "`=` gives a parameter its default; to compare, write `==`", span)
    label = None if in_message else _classify(err)
    expected = _expected_words(err)
    keywords = [n.lower() for n in (getattr(err, "expected", None) or getattr(err, "accepts", None) or ())
                if n.isalpha() and n.isupper() and n not in _TOKEN_WORDS]
    if token_text and token_text.isidentifier():
        expected = _closest_keyword(token_text, keywords) or expected
    found = f"`{token_text}`" if token_text else ("end of the `{…}` placeholder" if in_message else "end of file")
    if label:
        message = f"unexpected {found}: {SYNTAX_EXAMPLES[label][0]}"
        return Diagnostic(label, message, span, help=expected)
    return Diagnostic("syntax_error", f"unexpected {found}", span, help=expected)


# Operators from other languages, and what this one writes instead.
_OTHER_LANGUAGES = {"&": "write `and`", "|": "write `or`", "!": "write `not`, or `!=` for \"is not\""}


def _parse_start(text: str):
    return _lark().parse(text, start="start")


def _closest_keyword(word: str, keywords: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(word, sorted(set(keywords)), n=1, cutoff=0.7)
    return f"did you mean `{close[0]}`?" if close else None


@functools.lru_cache(maxsize=1)
def _example_states() -> tuple[tuple[int, str, frozenset, str], ...]:
    """(parser state, token type, accepted tokens, label) of each example in the table."""
    out = []
    for label, (_message, snippets) in SYNTAX_EXAMPLES.items():
        for snippet in snippets:
            try:
                _parse_start(snippet)
            except UnexpectedInput as ut:
                state = getattr(ut, "state", None)
                if state is not None:
                    token = getattr(getattr(ut, "token", None), "type", "")
                    out.append((state.position, token, frozenset(getattr(ut, "accepts", None) or ()), label))
    return tuple(out)


def _classify(err: UnexpectedInput) -> str | None:
    """The label of the example that fails in the same parser state. Unlike Lark's
    `match_examples`, the depth of the parse stack is ignored, so an error after other
    rules or header lines is recognised too."""
    state = getattr(err, "state", None)
    if state is None:
        return None
    token = getattr(getattr(err, "token", None), "type", "")
    accepts = frozenset(getattr(err, "accepts", None) or ())
    # Same state and the same tokens acceptable there; the same unexpected token first.
    candidates = [(t != token, label) for pos, t, a, label in _example_states()
                  if pos == state.position and a == accepts]
    return min(candidates)[1] if candidates else None


def _expected_words(err: UnexpectedInput) -> str | None:
    names = getattr(err, "expected", None) or getattr(err, "allowed", None)
    if not names:
        return None
    words = sorted({_TOKEN_WORDS.get(n, f"`{n.lower()}`") for n in names if not n.startswith("__")})
    if len(words) > 8:
        return None
    return "expected " + ", ".join(words)


def _unquote(token: Token) -> str:
    raw = str(token)[1:-1]
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: _unescape(m.group(1)), raw)


def _unescape(code: str) -> str:
    if code.startswith("u") and len(code) == 5:
        return chr(int(code[1:], 16))
    return {"n": "\n", "t": "\t"}.get(code, code)


class _Builder(Transformer):
    """Lark tree -> AST nodes, with spans."""

    def __init__(self, source: Source) -> None:
        super().__init__(visit_tokens=False)
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(self.source, meta.start_pos, meta.end_pos)

    def _tok(self, token: Token) -> Span:
        return Span(self.source, token.start_pos, token.end_pos)

    # -- literals and paths --------------------------------------------------
    @v_args(meta=True)
    def string(self, meta, children):
        (tok,) = children
        return _StringTok(_unquote(tok), str(tok)[1:-1], self._tok(tok))

    @v_args(meta=True)
    def number(self, meta, children):
        value = float(children[0])
        if not math.isfinite(value):
            self.diagnostics.append(Diagnostic("invalid_number", f"`{children[0]}` is too large to be a number",
                                               self._span(meta)))
            value = 0.0
        return ast.Literal(value, self._span(meta))

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Literal(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Literal(False, self._span(meta))

    @v_args(meta=True)
    def path(self, meta, children):
        names = [str(t) for t in children]
        return ast.Path(names[0], tuple(names[1:]), self._span(meta),
                        tuple(self._tok(t) for t in children[1:]))

    @v_args(meta=True)
    def list_lit(self, meta, children):
        return ast.ListLit(tuple(self._expr(c) for c in children), self._span(meta))

    def _expr(self, node):
        """A string token used as a value becomes a literal."""
        if isinstance(node, _StringTok):
            return ast.Literal(node.value, node.span)
        return node

    # -- operators -------------------------------------------------------------
    @v_args(meta=True)
    def or_chain(self, meta, children):
        return self._chain("or", meta, children)

    @v_args(meta=True)
    def and_chain(self, meta, children):
        return self._chain("and", meta, children)

    def _chain(self, op, meta, children):
        operands = tuple(self._expr(c) for c in children)
        if len(operands) == 1:
            return operands[0]
        return ast.BoolChain(op, operands, self._span(meta))

    @v_args(meta=True)
    def implication(self, meta, children):
        left, right = (self._expr(c) for c in children)
        return ast.Implies(left, right, self._span(meta))

    @v_args(meta=True)
    def not_(self, meta, children):
        return ast.Not(self._expr(children[0]), self._span(meta))

    @v_args(meta=True)
    def comparison(self, meta, children):
        left, op, right = children
        return ast.Compare(str(op), self._expr(left), self._expr(right), self._span(meta), self._tok(op))

    @v_args(meta=True)
    def in_(self, meta, children):
        item, coll = (self._expr(c) for c in children)
        return ast.Member(False, item, coll, self._span(meta))

    @v_args(meta=True)
    def not_in(self, meta, children):
        item, _, coll = children
        return ast.Member(True, self._expr(item), self._expr(coll), self._span(meta))

    @v_args(meta=True)
    def otherwise_expr(self, meta, children):
        value, default = (self._expr(c) for c in children)
        return ast.Otherwise(value, default, self._span(meta))

    @v_args(meta=True)
    def arith(self, meta, children):
        node = self._expr(children[0])
        start = node.span.start if getattr(node, "span", None) else None
        for op, right in zip(children[1::2], children[2::2]):
            right = self._expr(right)
            end = right.span.end if right.span else op.end_pos
            span = Span(self.source, start, end) if start is not None else None
            node = ast.Arith(str(op), node, right, span)
        return node

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Neg(self._expr(children[1]), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        name, *args = children
        return ast.Call(str(name), tuple(self._expr(a) for a in args), self._span(meta), self._tok(name))

    @v_args(meta=True)
    def quantifier(self, meta, children):
        kind, var, source, *rest = children
        where = self._expr(rest[0]) if len(rest) == 2 else None
        body = self._expr(rest[-1])
        return ast.Quantifier(str(kind), str(var), self._expr(source), where, body,
                              self._span(meta), self._tok(var))

    @v_args(meta=True)
    def count(self, meta, children):
        var, source, *rest = children
        where = self._expr(rest[0]) if rest else None
        return ast.Count(str(var), self._expr(source), where, self._span(meta), self._tok(var))

    # -- declarations ------------------------------------------------------------
    @v_args(meta=True)
    def simple_type(self, meta, children):
        return ast.TypeRef(str(children[0]), self._span(meta))

    @v_args(meta=True)
    def list_type(self, meta, children):
        return ast.TypeRef(f"list[{children[0]}]", self._span(meta))

    @v_args(meta=True)
    def param(self, meta, children):
        name, type_ref, default, *doc = children
        return ast.Param(str(name), type_ref, self._expr(default), doc[0].value if doc else None,
                         self._span(meta), self._tok(name))

    def _header(key):
        @v_args(meta=True)
        def handler(self, meta, children):
            lang = None
            if len(children) == 2:
                lang = str(children[0])
            return _HeaderItem(key, lang, children[-1], self._span(meta))
        return handler

    h_policy = _header("policy")
    h_version = _header("version")
    h_language = _header("language")
    h_effective = _header("effective")
    h_extends = _header("extends")
    h_supersedes = _header("supersedes")
    h_title = _header("title")
    r_title = _header("title")
    r_cite = _header("cite")
    r_note = _header("note")

    @v_args(meta=True)
    def r_message(self, meta, children):
        lang = str(children[0]) if len(children) == 2 else None
        tok: _StringTok = children[-1]
        template = parse_template(tok.raw, self.source, tok.span.start + 1)
        return _HeaderItem("message", lang, template, self._span(meta))

    @v_args(meta=True)
    def r_level(self, meta, children):
        return _HeaderItem("level", None, _StringTok(str(children[0]), str(children[0]), self._tok(children[0])),
                           self._span(meta))

    @v_args(meta=True)
    def r_require(self, meta, children):
        return _HeaderItem("require", None, self._expr(children[0]), self._span(meta))

    @v_args(meta=True)
    def r_forbid(self, meta, children):
        return _HeaderItem("forbid", None, self._expr(children[0]), self._span(meta))

    @v_args(meta=True)
    def rule(self, meta, children):
        name, *fields = children
        span = self._span(meta)
        seen: dict[str, _HeaderItem] = {}
        titles, messages, notes = [], [], []
        for item in fields:
            key = item.key
            if key in ("require", "forbid"):
                key = "condition"
            if key in ("title", "message"):
                dup_key = (key, item.lang)
                if dup_key in seen:
                    self._duplicate(item, key)
                seen[dup_key] = item
                if key == "title":
                    titles.append(ast.Title(item.lang, item.value.value, item.span))
                else:
                    messages.append((item.lang, item.value))
                continue
            if key == "note":
                notes.append(item.value.value)
                continue
            if key in seen:
                self._duplicate(item, "condition" if key == "condition" else key)
            seen[key] = item
        cond = seen.get("condition")
        level = seen.get("level")
        cite = seen.get("cite")
        return ast.Rule(
            id=str(name),
            level=level.value.value if level else None,
            titles=tuple(titles),
            cite=cite.value.value if cite else None,
            mode=cond.key if cond else None,
            condition=cond.value if cond else None,
            messages=tuple(messages),
            notes=tuple(notes),
            span=span,
            id_span=self._tok(name),
            level_span=level.value.span if level else None,
            field_spans=tuple((item.key, item.span) for item in fields),
        )

    def _duplicate(self, item, key):
        what = {"condition": "a `require` or `forbid` condition"}.get(key, f"a `{key}`")
        self.diagnostics.append(Diagnostic("duplicate_field", f"this rule already has {what}", item.span))

    @v_args(meta=True)
    def remove_rule(self, meta, children):
        return ast.Removal("rule", str(children[0]), self._span(meta))

    @v_args(meta=True)
    def remove_param(self, meta, children):
        return ast.Removal("param", str(children[0]), self._span(meta))

    def start(self, children):
        return children


class _StringTok:
    __slots__ = ("value", "raw", "span")

    def __init__(self, value: str, raw: str, span: Span) -> None:
        self.value, self.raw, self.span = value, raw, span


class _HeaderItem:
    __slots__ = ("key", "lang", "value", "span")

    def __init__(self, key, lang, value, span) -> None:
        self.key, self.lang, self.value, self.span = key, lang, value, span


def _assemble(items: list, source: Source) -> ast.Policy:
    header: dict[str, str] = {}
    header_spans: dict[str, Span] = {}
    titles, params, rules, removals = [], [], [], []
    diagnostics = []
    header_items = tuple((i.key, i.span) for i in items if isinstance(i, _HeaderItem))
    for item in items:
        if isinstance(item, _HeaderItem):
            if item.key == "title":
                if any(t.lang == item.lang for t in titles):
                    diagnostics.append(Diagnostic("duplicate_field", "the policy already has this title",
                                                  item.span))
                titles.append(ast.Title(item.lang, item.value.value, item.span))
                continue
            if item.key in header:
                diagnostics.append(Diagnostic("duplicate_field", f"the policy already has a `{item.key}` line",
                                              item.span))
                continue
            header[item.key] = item.value.value
            header_spans[item.key] = item.value.span
        elif isinstance(item, ast.Param):
            params.append(item)
        elif isinstance(item, ast.Rule):
            rules.append(item)
        elif isinstance(item, ast.Removal):
            removals.append(item)
    if diagnostics:
        raise PolicyError(diagnostics)
    return ast.Policy(
        id=header.get("policy"), version=header.get("version"), language=header.get("language"),
        effective=header.get("effective"), extends=header.get("extends"),
        supersedes=header.get("supersedes"), titles=tuple(titles), params=tuple(params),
        rules=tuple(rules), removals=tuple(removals), header_spans=header_spans,
        header_items=header_items, source=source,
    )
