"""Tables in PDF pages (``pdfplumber``, on ``pdfminer.six``): a table drawn with ruling lines
becomes its rows, one a line, cells named by their header (``table_text``), and the page's
other lines keep their place around it, top to bottom.

pdfplumber reads a page some 20-50 times slower than pypdf, so it only sees the pages whose
content stream draws lines or rectangles (a page of prose draws none), at most
``max_pdf_table_pages`` of them per document; every other page keeps pypdf's text. A page
pdfplumber cannot read keeps pypdf's text too: tables add structure, never a failure."""

import io
import logging
import re
from collections.abc import Iterator

from adapters.parsing.textblocks import table_text

_LOG = logging.getLogger(__name__)
# path operators: a rectangle (``re``) or a line segment (``l``), the stuff of cell borders
_DRAWS_LINES = re.compile(rb"\s(?:re|l)\s")


def pages_with_ruling(contents: Iterator[tuple[int, bytes]]) -> list[int]:
    """The numbers of the pages whose content stream draws lines or rectangles."""
    return [number for number, stream in contents if _DRAWS_LINES.search(stream)]


def tables_in_pages(data: bytes, pages: list[int]) -> dict[int, str]:
    """The text of each of ``pages`` (0-based) that holds a table: its lines and its tables
    in reading order. Pages without a table are left out."""
    import pdfplumber

    found: dict[int, str] = {}
    if not pages:
        return found
    try:
        with pdfplumber.open(io.BytesIO(data), pages=[number + 1 for number in pages]) as pdf:
            for number, page in zip(pages, pdf.pages, strict=True):
                tables = page.find_tables()
                if not tables:
                    continue
                outside = page
                for table in tables:
                    outside = outside.outside_bbox(table.bbox)
                blocks = [(float(line["top"]), str(line["text"]))
                          for line in outside.extract_text_lines(return_chars=False)]
                blocks += [(float(table.bbox[1]),
                            table_text([[cell or "" for cell in row] for row in table.extract()]))
                           for table in tables]
                found[number] = "\n".join(text for _, text in sorted(blocks, key=_top))
    except Exception as exc:  # pdfminer's own errors: pypdf's text stands
        _LOG.warning("PDF tables not read, the plain text stands: %s: %s",
                     type(exc).__name__, exc)
    return found


def _top(block: tuple[float, str]) -> float:
    return block[0]
