"""HTML (``selectolax``'s Lexbor parser): ``<main>``/``<article>`` when present; scripts,
styles, navigation, headers, footers, asides and forms dropped; headings as sections; each
table as its rows, one a line, cells named by their header (see ``table_text``)."""

from typing import TYPE_CHECKING

from adapters.parsing.textblocks import TextBuilder, table_text
from domain.parsing import ParsedDocument

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

HTML = "text/html"
_DROP = ("script, style, noscript, template, nav, header, footer, aside, form, iframe, svg, "
         "button, select, [role=navigation], [role=banner], [role=contentinfo], "
         "[aria-hidden=true], [hidden]")
_BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "li", "ul", "ol", "pre", "blockquote",
    "tr", "td", "th", "dt", "dd", "dl", "figcaption", "caption", "br", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "title",
})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


def parse_html(text: str, content_type: str = HTML) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    builder = TextBuilder(len(text) + 1)
    if root is None:
        return builder.build(content_type)
    for node in root.css(_DROP):
        node.decompose()
    inline: list[str] = []

    def flush(heading: bool = False) -> None:
        builder.block("".join(inline), heading=heading)
        inline.clear()

    # An explicit stack, not recursion: hostile nesting depth cannot overflow it.
    stack: list[tuple[LexborNode, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        tag = node.tag or ""
        if closing:
            flush(heading=tag in _HEADINGS)
            continue
        if tag == "-text":
            inline.append(node.text_content or "")
            continue
        if tag == "table":
            flush()
            builder.block(table_text(_table_rows(node)))
            continue
        if tag in _BLOCKS:
            flush()
            stack.append((node, True))
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    flush()
    return builder.build(content_type)


def _table_rows(table: "LexborNode") -> list[list[str]]:
    """The rows of this table (not of tables nested in its cells), each a list of cell texts;
    a nested table's text stays inside its cell."""
    rows: list[list[str]] = []
    for row in table.css("tr"):
        owner = row.parent
        while owner is not None and owner.tag != "table":
            owner = owner.parent
        if owner is None or owner.mem_id != table.mem_id:
            continue
        rows.append([(cell.text(separator=" ") or "") for cell in row.iter()
                     if cell.tag in ("td", "th")])
    return rows
