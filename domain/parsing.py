"""What a parser makes of a file: its text, where its pages and sections begin, its type."""

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A heading: the section it titles begins at ``start`` (a character offset) and runs to
    the next section's start."""

    start: int
    title: str


@dataclass(frozen=True)
class ParsedDocument:
    """A document's text and structure.

    ``page_starts[n]`` is the offset where page ``n + 1`` begins (empty when the format has no
    pages); ``sections`` are in text order. Offsets index ``text``.
    """

    content_type: str
    text: str
    page_starts: tuple[int, ...] = ()
    sections: tuple[Section, ...] = field(default_factory=tuple)

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``offset``, or None for a format without pages."""
        if not self.page_starts:
            return None
        return max(bisect.bisect_right(self.page_starts, offset), 1)

    def section_at(self, offset: int) -> str | None:
        """The title of the section holding ``offset``, or None before the first heading."""
        starts = [s.start for s in self.sections]
        position = bisect.bisect_right(starts, offset)
        return self.sections[position - 1].title if position else None

    def boundaries(self) -> list[int]:
        """Offsets where a chunk must end: page and section starts, sorted, without 0."""
        return sorted({*self.page_starts, *(s.start for s in self.sections)} - {0})
