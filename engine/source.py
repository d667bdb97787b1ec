"""Source texts and spans: offsets into a text, turned into line:column only when shown."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["Source", "Span"]


@dataclass(frozen=True)
class Source:
    """A text with the name it is shown under (a path relative to where it was read)."""

    name: str
    text: str
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0]
        starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
        object.__setattr__(self, "_line_starts", tuple(starts))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of an offset."""
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line + 1, offset - self._line_starts[line] + 1

    def line_text(self, line: int) -> str:
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]


@dataclass(frozen=True)
class Span:
    """A half-open range [start, end) of character offsets into a source."""

    source: Source = field(repr=False)
    start: int
    end: int

    @property
    def line_col(self) -> tuple[int, int]:
        return self.source.line_col(self.start)

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    def location(self) -> str:
        line, col = self.line_col
        return f"{self.source.name}:{line}:{col}"
