"""ODT (``odfpy``): paragraphs, headings as sections, tables as rows named by their header.
The element tree is walked with an explicit stack, so hostile nesting cannot overflow it."""

import io
from typing import Any

from adapters.parsing.textblocks import Limits, TextBuilder, corrupt_as, table_text
from adapters.parsing.zipguard import check_zip
from domain.parsing import ParsedDocument

ODT = "application/vnd.oasis.opendocument.text"
_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"


def parse_odt(data: bytes, limits: Limits) -> ParsedDocument:
    from odf.opendocument import load

    check_zip(data, "ODT", limits)
    builder = TextBuilder(limits.max_text_chars)
    with corrupt_as("ODT"):  # zipfile's, the XML parser's and odfpy's own errors
        document = load(io.BytesIO(data))
        stack: list[Any] = [document.text]
        while stack:
            node = stack.pop()
            qname = getattr(node, "qname", None)
            if qname == (_TEXT_NS, "h"):
                builder.block(_inline_text(node), heading=True)
            elif qname == (_TEXT_NS, "p"):
                builder.block(_inline_text(node))
            elif qname == (_TABLE_NS, "table"):
                builder.block(table_text(_table_rows(node)))
            else:
                stack.extend(reversed(getattr(node, "childNodes", [])))
    return builder.build(ODT)


def _inline_text(element: Any) -> str:
    """The text of a paragraph and its spans, links, spaces, tabs and line breaks."""
    parts: list[str] = []
    stack: list[Any] = [element]
    while stack:
        node = stack.pop()
        if node.nodeType == node.TEXT_NODE:
            parts.append(str(node.data))
            continue
        qname = getattr(node, "qname", None)
        if qname == (_TEXT_NS, "s"):
            parts.append(" " * int(node.getAttribute("c") or 1))
        elif qname == (_TEXT_NS, "tab"):
            parts.append("\t")
        elif qname == (_TEXT_NS, "line-break"):
            parts.append("\n")
        elif qname == (_TEXT_NS, "note"):
            continue
        stack.extend(reversed(node.childNodes))
    return "".join(parts)


def _table_rows(table: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    stack: list[Any] = [table]
    while stack:
        node = stack.pop()
        qname = getattr(node, "qname", None)
        if qname == (_TABLE_NS, "table-row"):
            rows.append([_inline_text(cell) for cell in node.childNodes
                         if getattr(cell, "qname", None) == (_TABLE_NS, "table-cell")])
        elif qname != (_TABLE_NS, "table") or node is table:
            stack.extend(reversed(getattr(node, "childNodes", [])))
    return rows
