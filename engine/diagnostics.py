"""Diagnostics: problems found in policies and fact sheets, with stable codes, for people."""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from .source import Span

__all__ = ["Diagnostic", "PolicyError", "InputError", "did_you_mean", "render_diagnostic", "sort_diagnostics"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem: a stable `code`, `severity` ("error" or "warning"), a lower-case
    message with the user's text in backticks, where it is, and an optional help."""

    code: str
    message: str
    span: Span | None = None
    severity: str = "error"
    help: str | None = None
    file: str | None = None  # when there is no span (a missing file, say)

    @property
    def location(self) -> str:
        if self.span is not None:
            return self.span.location()
        return self.file or "<input>"

    def one_line(self) -> str:
        text = f"{self.location}: {self.severity}[{self.code}]: {self.message}"
        if self.help:
            text += f" ({self.help})"
        return printable(text, breaks=True)

    def error_line(self) -> str:
        """The one line a command prints for an input it cannot use (after `error: `)."""
        text = f"{self.location}: {self.message} [{self.code}]"
        return printable(text + (f" ({self.help})" if self.help else ""), breaks=True)

    def sort_key(self) -> tuple:
        if self.span is None:
            return (self.file or "", 0, 0, self.code)
        return (self.span.source.name, self.span.start, self.span.end, self.code)

    def to_json(self) -> dict:
        out = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.span is not None:
            line, col = self.span.line_col
            out.update(file=self.span.source.name, line=line, column=col, text=self.span.text)
        elif self.file:
            out["file"] = self.file
        if self.help:
            out["help"] = self.help
        return out


def render_diagnostic(diag: Diagnostic) -> str:
    """The long form: a headline, the source line and a caret under the offending text."""
    head = f"{diag.severity}[{diag.code}]: {diag.message}"
    lines = [head, f"  --> {diag.location}"]
    if diag.span is not None:
        line, col = diag.span.line_col
        text = diag.span.source.line_text(line)
        width = max(1, min(diag.span.end, diag.span.start + len(text) - col + 1) - diag.span.start)
        gutter = " " * len(str(line))
        # The caret goes under the text as a terminal shows it: Hangul and other wide
        # characters take two columns, and a tab stays a tab.
        before = "".join(c if c == "\t" else " " * _columns(c) for c in text[: col - 1])
        lines += [
            f"{gutter} |",
            f"{line} | {text}",
            f"{gutter} | {before}{'^' * max(1, _columns(text[col - 1 : col - 1 + width]))}",
        ]
    if diag.help:
        lines.append(f"  = help: {diag.help}")
    return "\n".join(lines)


def _columns(text: str) -> int:
    """How many terminal columns a text takes."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple] = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.sort_key(), d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


class PolicyError(Exception):
    """A policy that cannot be used, with every diagnostic found."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        super().__init__(self.diagnostics[0].one_line() if self.diagnostics else "invalid policy")


class InputError(Exception):
    """A malformed input file (fact sheet, test file, override): `file: place: problem`."""

    def __init__(self, file: str, place: str | None, problem: str) -> None:
        # One printable line, whatever a library's message or an untrusted file held.
        self.file = printable(str(file))
        self.place = printable(place) if place is not None else None
        self.problem = printable(str(problem), breaks=True)
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}: {self.place}: {self.problem}" if self.place else f"{self.file}: {self.problem}"


_BREAKS = re.compile(r"\s*[\n\r\t\v\f\x1c-\x1f\x85\u2028\u2029]\s*")


# The same in detectors/base.py: the two packages share no code (their seam is the fact sheet).
def printable(text: str, breaks: bool = False) -> str:
    """Text safe to show on one line: with `breaks`, line breaks and tabs (a library's
    formatting) become one space; any other character that does not print (a control
    character from an untrusted file, an escape sequence) is shown escaped."""
    if breaks:
        text = _BREAKS.sub(" ", text).strip()
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)
