"""Text put into Markdown shown as written: whatever a policy, a fact sheet or a team's
manifest holds (`*`, `|`, `<img …>`, a leading `#`) never turns into formatting, a
table column or HTML."""

from __future__ import annotations

import re

from .diagnostics import printable

__all__ = ["text", "cell", "paragraph", "code"]

# Characters that start inline formatting, links, HTML or entities, or end a table cell.
_INLINE = re.compile(r"([\\`*_\[\]<>&|~])")
# A line that would open a heading, quote, list, rule or setext underline.
_LEADING = re.compile(r"^(\s*)([#>+\-=]|\d+(?=[.)]))")


def text(value: str) -> str:
    """Inline text, on one line: its line breaks become spaces."""
    return _INLINE.sub(r"\\\1", printable(value, breaks=True))


def cell(value: str) -> str:
    """A table cell."""
    return text(value)


def paragraph(value: str) -> str:
    """Text that starts a line."""
    escaped = text(value)
    m = _LEADING.match(escaped)
    if m is None:
        return escaped
    if m.group(2)[0].isdigit():  # `1.` -> `1\.`
        end = m.end()
        return escaped[:end] + "\\" + escaped[end:]
    return escaped[:m.start(2)] + "\\" + escaped[m.start(2):]


def code(value: str) -> str:
    """A code span holding the text exactly, whatever backticks it holds."""
    value = printable(value, breaks=True)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
