"""Text assembly shared by the parsers: blocks, page and section starts, tables as rows."""

import itertools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from domain.errors import PermanentError
from domain.parsing import ParsedDocument, Section

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


@dataclass(frozen=True)
class Limits:
    """What one document may expand to; see pipeline.settings.ParsingSettings."""

    max_text_chars: int = 20_000_000
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_zip_ratio: int = 200
    max_pdf_pages: int = 5000
    max_pdf_table_pages: int = 500
    max_sheet_cells: int = 2_000_000
    max_part_depth: int = 20


class NestingError(PermanentError):
    """Parts nested deeper than ``Limits.max_part_depth``: raised once, never re-wrapped by
    each level it passes through."""


class TextBuilder:
    """Joins blocks into text with blank lines between, remembering where pages and headings
    start."""

    def __init__(self, max_chars: int) -> None:
        self._parts: list[str] = []
        self._sections: list[Section] = []
        self._pages: list[int] = []
        self._size = 0
        self._max = max_chars

    def _next_start(self) -> int:
        return self._size + 2 if self._parts else 0

    def page(self) -> None:
        """The next block begins a new page."""
        self._pages.append(self._next_start())

    def section(self, title: str) -> None:
        """A section titled ``title`` begins with the next block."""
        title = clean(title).replace("\n", " ")
        if title:
            self._sections.append(Section(start=self._next_start(), title=title[:200]))

    def block(self, text: str, *, heading: bool = False) -> None:
        text = clean(text)
        if not text:
            return
        if heading:
            self.section(text)
        self._append(text)

    def _append(self, text: str) -> None:
        if self._parts:
            self._size += 2
        self._parts.append(text)
        self._size += len(text)
        if self._size > self._max:
            raise PermanentError(f"too much text: over {self._max} characters")

    def document(self, other: ParsedDocument) -> None:
        """Appends a parsed document's text, shifting its sections."""
        start = self._next_start()
        self._sections.extend(Section(start=start + s.start, title=s.title)
                              for s in other.sections)
        text = other.text.strip("\n")
        if text:
            self._append(text)

    def build(self, content_type: str) -> ParsedDocument:
        return ParsedDocument(content_type, "\n\n".join(self._parts),
                              page_starts=tuple(self._pages), sections=tuple(self._sections))


@contextmanager
def corrupt_as(kind: str, errors: tuple[type[Exception], ...] = (Exception,)) -> Iterator[None]:
    """A parser's body: an error of ``errors`` (the library's own, on a damaged file) leaves
    as PermanentError("corrupt KIND: ..."); a PermanentError leaves as it is."""
    try:
        yield
    except PermanentError:
        raise
    except errors as exc:
        raise PermanentError(f"corrupt {kind}: {type(exc).__name__}: {exc}") from None


def table_text(rows: Sequence[Sequence[str]]) -> str:
    """A table as text: the header row, then one line per row with each cell named by its
    column's header (``Region: Europe | Growth: 8%``), so a row found alone still says what
    its cells are. Empty rows are dropped; a cell's own line breaks become spaces."""
    cells = [[_one_line(cell) for cell in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    header, body = cells[0], cells[1:]
    lines = [" | ".join(cell for cell in header if cell)]
    named = sum(1 for cell in header if cell) >= 2 or (len(header) == 1 and header[0])
    for row in body:
        if named:
            pairs = itertools.zip_longest(header, row, fillvalue="")
            line = " | ".join(f"{name}: {value}" if name else value
                              for name, value in pairs if value)
        else:
            line = " | ".join(cell for cell in row if cell)
        lines.append(line)
    return "\n".join(lines)


def _one_line(cell: str) -> str:
    return _SPACES.sub(" ", cell.replace("\n", " ")).strip()


def clean(text: str) -> str:
    """Runs of spaces as one, lines trimmed, no NULs."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\x00", "").splitlines())
    return "\n".join(line for line in lines if line)
