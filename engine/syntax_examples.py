"""Malformed policy snippets and the plain-words problem each one shows.

The parser classifies a syntax error by finding the example that fails in the same
parser state (Lark's `match_examples`); the table is itself checked by a test.
"""

from __future__ import annotations

__all__ = ["SYNTAX_EXAMPLES"]

# code -> (message, snippets that fail that way)
SYNTAX_EXAMPLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "missing_brace": (
        "a rule's body is written between `{` and `}`",
        ('rule r level blocking }', 'rule r\n  level blocking'),
    ),
    "unclosed_rule": (
        "this rule is not closed with `}`",
        ('rule r { level blocking', 'rule r { require true\nrule s { }', 'rule r { message "m"',
         'rule r { cite "c"', 'rule r { require a == 1', 'rule r { require a', 'rule r { title "t"'),
    ),
    "missing_condition_operand": (
        "an expression ends too early; something is missing after the operator",
        ('rule r { require a == }', 'rule r { require a and }', 'rule r { require not }',
         'rule r { forbid a in }', 'rule r { require a + }', 'rule r { require a otherwise }',
         'rule r { require a implies }'),
    ),
    "missing_operator": (
        "two values follow each other without an operator between them",
        ('rule r { require a b }', 'rule r { require a == 1 2 }', 'rule r { require "x" "y" }',
         'rule r { require a.b c }', 'rule r { require a.b.c d.e }', 'rule r { require a.b "x" }'),
    ),
    "quantifier_syntax": (
        "a quantifier reads `any x in list: condition` (or `all`, `none`), with an optional `where` filter before the colon",
        ('rule r { require any in components: true }', 'rule r { require any c components: true }',
         'rule r { require all c in components true }', 'rule r { require none c in components where true true }',
         'rule r { require any c in components where c.kind == "v" c.x == 1 }',
         'rule r { require all c in components where c.kind in ["v"] c.x == 1 }'),
    ),
    "count_syntax": (
        "a count reads `count(x in list where condition)`",
        ('rule r { require count(components) > 1 }', 'rule r { require count(c in components where) > 1 }'),
    ),
    "unknown_rule_field": (
        "a rule holds `level`, `title`, `cite`, `require` or `forbid`, `message` and `note` lines",
        ('rule r { severity blocking }', 'rule r { level blocking explain "x" }'),
    ),
    "level_value": (
        "a level is a word: `blocking` or `advisory`",
        ('rule r { level "blocking" }', 'rule r { level }'),
    ),
    "header_value": (
        "a header line holds one quoted text, e.g. `version \"2.0\"`",
        ('policy msit', 'version 2.0', 'effective 2026-01-01', 'extends 1.0', 'title', 'policy "x" "y"'),
    ),
    "param_syntax": (
        "a parameter reads `param name: type = default \"what it means\"`",
        ('param x = 1', 'param x: number 1', 'param : number = 1', 'param x: number =', 'param x: list[] = []'),
    ),
    "unclosed_paren": (
        "a `(` or `[` is not closed",
        ('rule r { require (a == 1 }', 'rule r { require a in ["x" }', 'rule r { require known(a }'),
    ),
    "stray_top_level": (
        "expected `policy`, `version`, `param`, `rule` or another header line here",
        ('foo', 'require true', '}', 'rule r { } }', 'rule r { level blocking } }', 'rule r { require a } }'),
    ),
    "remove_syntax": (
        "a removal reads `remove rule <id>` or `remove param <name>`",
        ('remove r', 'remove rule', 'remove rule "r"', 'remove param'),
    ),
    "missing_field_path": (
        "a `.` must be followed by a field name",
        ('rule r { require c. == 1 }', 'rule r { require c.match. }'),
    ),
}
