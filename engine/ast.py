"""The policy language's syntax tree: frozen dataclasses; spans ride along, compare=False."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .source import Span

__all__ = [
    "Expr", "Literal", "ListLit", "Path", "Not", "BoolChain", "Implies", "Compare",
    "Member", "Arith", "Neg", "Otherwise", "Call", "Quantifier", "Count",
    "Template", "TypeRef", "Param", "Rule", "Removal", "Title", "Policy",
]


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Literal:
    value: bool | float | str
    span: Span | None = _span()


@dataclass(frozen=True)
class ListLit:
    items: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Path:
    """A name (a bound variable, a parameter or a fact root) followed by fields."""

    root: str
    fields: tuple[str, ...] = ()
    span: Span | None = _span()
    # Span of each field name, for pointing at the one that is wrong.
    field_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)

    @property
    def dotted(self) -> str:
        return ".".join((self.root, *self.fields))


@dataclass(frozen=True)
class Not:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class BoolChain:
    op: str  # "and" | "or"
    operands: tuple["Expr", ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class Implies:
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()
    op_span: Span | None = _span()


@dataclass(frozen=True)
class Member:
    negated: bool
    item: "Expr"
    collection: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Arith:
    op: str  # + - * /
    left: "Expr"
    right: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Otherwise:
    value: "Expr"
    default: "Expr"
    span: Span | None = _span()


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple["Expr", ...]
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True)
class Quantifier:
    kind: str  # "any" | "all" | "none"
    var: str
    source: "Expr"
    where: "Expr | None"
    body: "Expr"
    span: Span | None = _span()
    var_span: Span | None = _span()


@dataclass(frozen=True)
class Count:
    var: str
    source: "Expr"
    where: "Expr | None"
    span: Span | None = _span()
    var_span: Span | None = _span()


Expr = Union[Literal, ListLit, Path, Not, BoolChain, Implies, Compare, Member, Arith, Neg,
             Otherwise, Call, Quantifier, Count]


@dataclass(frozen=True)
class Template:
    """A message: literal text and `{expression}` holes, in order."""

    parts: tuple["str | Expr", ...]
    raw: str  # the string as written, between the quotes
    span: Span | None = _span()


@dataclass(frozen=True)
class TypeRef:
    name: str  # "number" | "string" | "boolean" | "list[string]" | "list[number]"
    span: Span | None = _span()


@dataclass(frozen=True)
class Param:
    name: str
    type: TypeRef
    default: Expr
    doc: str | None = None
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True)
class Title:
    lang: str | None
    text: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Rule:
    id: str
    level: str | None
    titles: tuple[Title, ...]
    cite: str | None
    mode: str | None  # "require" | "forbid"
    condition: Expr | None
    messages: tuple[tuple[str | None, Template], ...]  # (lang, template)
    notes: tuple[str, ...] = ()
    span: Span | None = _span()
    id_span: Span | None = _span()
    level_span: Span | None = _span()
    # (field keyword, span of the whole field) in the order written.
    field_spans: tuple = field(default=(), compare=False, repr=False)
    # Which file the rule came from, once `extends` is resolved.
    origin: str | None = field(default=None, compare=False)

    @property
    def title(self) -> str | None:
        return _pick(self.titles)


@dataclass(frozen=True)
class Removal:
    """`remove rule <id>` or `remove param <name>`: drops an inherited one."""

    kind: str  # "rule" | "param"
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Policy:
    id: str | None
    version: str | None
    language: str | None = None
    effective: str | None = None
    extends: str | None = None
    supersedes: str | None = None
    titles: tuple[Title, ...] = ()
    params: tuple[Param, ...] = ()
    rules: tuple[Rule, ...] = ()
    removals: tuple[Removal, ...] = ()
    # Header items in the order written, for spans in diagnostics: name -> span.
    header_spans: dict = field(default_factory=dict, compare=False, repr=False)
    # (keyword, span of the whole line) of each header item, in the order written.
    header_items: tuple = field(default=(), compare=False, repr=False)
    source: object = field(default=None, compare=False, repr=False)

    @property
    def title(self) -> str | None:
        return _pick(self.titles)


def _pick(titles: tuple[Title, ...]) -> str | None:
    for t in titles:
        if t.lang in (None, "en"):
            return t.text
    return titles[0].text if titles else None
