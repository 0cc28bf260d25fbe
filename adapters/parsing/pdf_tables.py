"""Tables in PDF pages (``pdfplumber``, on ``pdfminer.six``): a table drawn with ruling lines
becomes its rows, one a line, cells named by their header (``table_text``), and the page's
other lines keep their place around it, top to bottom.

pdfplumber reads a page some 20-50 times slower than pypdf, so it only sees the pages whose
content stream draws lines or rectangles (a page of prose draws none), at most
``max_pdf_table_pages`` of them per document; every other page keeps pypdf's text. Finding
the cells costs more than linear time in the ruling's crossings (a 100 x 100 grid took 13 s
here), so a page whose merged ruling crosses over ``_MAX_PAGE_CROSSINGS`` times, or a document
past ``_MAX_DOCUMENT_CROSSINGS`` in all, keeps pypdf's text from there on; so do the pages
left when ``_MAX_SECONDS`` of table reading are spent (the extract task has a time limit).
A page pdfplumber cannot read keeps pypdf's text too: tables add structure, never a
failure."""

import io
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from adapters.parsing.textblocks import table_text

_LOG = logging.getLogger(__name__)
# path operators: a rectangle (``re``) or a line segment (``l``), the stuff of cell borders
_DRAWS_LINES = re.compile(rb"\s(?:re|l)\s")
# a 40-row, 8-column table crosses 369 times; a 70 x 70 grid about 5,000 (some 3 s here)
_MAX_PAGE_CROSSINGS = 5_000
_MAX_DOCUMENT_CROSSINGS = 50_000
_MAX_SECONDS = 60.0
_MAX_EDGE_PAIRS = 40_000  # horizontal x vertical merged rulings, counted before the crossings


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
            budget = _MAX_DOCUMENT_CROSSINGS
            deadline = time.monotonic() + _MAX_SECONDS
            for number, page in zip(pages, pdf.pages, strict=True):
                if time.monotonic() > deadline:
                    _LOG.warning("PDF tables: %.0f s spent, pages from %d on keep their plain "
                                 "text", _MAX_SECONDS, number + 1)
                    break
                crossings = _crossings(page)
                if crossings > min(_MAX_PAGE_CROSSINGS, budget):
                    _LOG.warning("PDF page %d: its ruling crosses itself too often to read "
                                 "for tables; its plain text stands", number + 1)
                    continue
                budget -= crossings
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


def _crossings(page: Any) -> int:
    """How often the page's rulings cross, merged as pdfplumber's table finder merges them
    (or a number over every bound when there are too many to count)."""
    from pdfplumber.table import (
        DEFAULT_JOIN_TOLERANCE,
        DEFAULT_SNAP_TOLERANCE,
        edges_to_intersections,
        merge_edges,
    )

    edges = merge_edges(list(page.edges), DEFAULT_SNAP_TOLERANCE, DEFAULT_SNAP_TOLERANCE,
                        DEFAULT_JOIN_TOLERANCE, DEFAULT_JOIN_TOLERANCE)
    horizontal = sum(1 for edge in edges if edge["orientation"] == "h")
    if horizontal * (len(edges) - horizontal) > _MAX_EDGE_PAIRS:
        return _MAX_EDGE_PAIRS
    return len(edges_to_intersections(edges, DEFAULT_SNAP_TOLERANCE, DEFAULT_SNAP_TOLERANCE))


def _top(block: tuple[float, str]) -> float:
    return block[0]
