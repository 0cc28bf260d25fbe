"""The DocumentParser port on well-kept libraries: the type from the bytes, then text and structure.

- **Type** comes from the content, never the file name: ``%PDF-`` is a PDF; a zip holding
  ``word/document.xml`` is DOCX; other binary content is named by ``puremagic`` (or
  ``application/octet-stream``) and refused. Text is decoded first, then sniffed: JSON that
  parses, HTML by its leading tags, CSV by a delimiter that splits the first lines into the
  same number of fields, Markdown by headings, fences or links; else plain text.
- **Encoding** of text is detected, not assumed: a BOM, else strict UTF-8, else ``chardet``
  (7.x; on our checks it named windows-1250/1251/1252/iso-8859-7 text right where
  charset-normalizer 3.5 took French for cp1257 and found nothing for Polish).
- **PDF** (``pypdf``): the text layer page by page, page starts kept; an encrypted file is
  opened with the empty password or refused; no text on any page is "no text layer".
- **DOCX** (``python-docx``): paragraphs and table rows, headings (``Heading n``/``Title``
  styles) as sections. The zip is checked before it is opened: its declared sizes and
  compression ratios (a zip bomb), and zipfile never inflates past a declared size.
- **HTML** (``selectolax``'s Lexbor parser): ``<main>``/``<article>`` when present; scripts,
  styles, navigation, headers, footers, asides and forms dropped; headings as sections.
- **Markdown** (``markdown-it-py``): the source text kept as is, its headings as sections.

Every failure is PermanentError with a reason a user can act on; nothing is downloaded.
"""

import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Iterator

from domain.errors import PermanentError
from domain.parsing import ParsedDocument, Section

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
CSV = "text/csv"
JSON = "application/json"
TEXT = "text/plain"
SUPPORTED = (PDF, DOCX, HTML, MARKDOWN, CSV, JSON, TEXT)

_SNIFF = 8192
_ZIP_TYPES = {
    "word/document.xml": DOCX,
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/presentation.xml":
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_HTML_START = re.compile(r"\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_HTML_TAGS = re.compile(r"<(p|div|h[1-6]|title|meta|table|ul|span|a)\b[^>]*>", re.I)
_MD_HINTS = re.compile(r"^(#{1,6}\s+\S|```|~~~|\s*[-*+]\s+\[[ x]\]|.*\[[^\]]+\]\([^)]+\))", re.M)
_DROP = ("script, style, noscript, template, nav, header, footer, aside, form, iframe, svg, "
         "button, select, [role=navigation], [role=banner], [role=contentinfo], "
         "[aria-hidden=true], [hidden]")
_BLOCKS = frozenset({
    "p", "div", "section", "article", "main", "li", "ul", "ol", "pre", "blockquote", "table",
    "tr", "td", "th", "dt", "dd", "dl", "figcaption", "caption", "br", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6", "title",
})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class LibraryParser:
    """Parses PDF, DOCX, HTML, Markdown, CSV, JSON and text; see the module docstring.

    ``max_text_chars`` bounds the text of one document (more is refused, never cut quietly);
    ``max_unzipped_bytes`` and ``max_zip_ratio`` bound what a DOCX may inflate to;
    ``max_pdf_pages`` bounds a PDF's pages.
    """

    def __init__(self, *, max_text_chars: int = 20_000_000,
                 max_unzipped_bytes: int = 200 * 1024 * 1024, max_zip_ratio: int = 200,
                 max_pdf_pages: int = 5000) -> None:
        self._max_chars = max_text_chars
        self._max_unzipped = max_unzipped_bytes
        self._max_ratio = max_zip_ratio
        self._max_pages = max_pdf_pages

    def parse(self, data: bytes) -> ParsedDocument:
        if not data:
            raise PermanentError("empty file: nothing to ingest")
        kind = detect_binary_type(data)
        if kind == PDF:
            parsed = self._pdf(data)
        elif kind == DOCX:
            parsed = self._docx(data)
        elif kind is not None:
            raise PermanentError(f"unsupported content type: {kind}")
        else:
            parsed = parse_text(decode_text(data))
        if not parsed.text.strip():
            raise PermanentError(
                f"no text to index: the {parsed.content_type} document is empty or whitespace")
        if len(parsed.text) > self._max_chars:
            raise PermanentError(
                f"too much text: {len(parsed.text)} characters, the limit is {self._max_chars}")
        return parsed

    def _pdf(self, data: bytes) -> ParsedDocument:
        from pypdf import PdfReader
        from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise PermanentError("encrypted PDF: it needs a password, which we do not have")
            if len(reader.pages) > self._max_pages:
                raise PermanentError(
                    f"PDF has {len(reader.pages)} pages, the limit is {self._max_pages}")
            texts = []
            size = 0
            for page in reader.pages:
                text = _clean(page.extract_text() or "")
                size += len(text)
                if size > self._max_chars:
                    raise PermanentError(
                        f"too much text: over {self._max_chars} characters in the PDF")
                texts.append(text)
        except PermanentError:
            raise
        except (FileNotDecryptedError, NotImplementedError) as exc:
            raise PermanentError(f"encrypted PDF: cannot decrypt it ({exc})") from None
        except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
                IndexError, RecursionError, ZeroDivisionError, OSError) as exc:
            raise PermanentError(f"corrupt PDF: {type(exc).__name__}: {exc}") from None
        if not any(text.strip() for text in texts):
            raise PermanentError(
                f"no text layer: the PDF's {len(texts)} page(s) hold no extractable text "
                "(a scan? OCR is not supported)")
        starts, parts, offset = [], [], 0
        for text in texts:
            starts.append(offset)
            parts.append(text)
            offset += len(text) + 2
        return ParsedDocument(PDF, "\n\n".join(parts), page_starts=tuple(starts))

    def _docx(self, data: bytes) -> ParsedDocument:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        self._check_zip(data)
        try:
            document = docx.Document(io.BytesIO(data))
            builder = _TextBuilder(self._max_chars)
            for block in document.iter_inner_content():
                if isinstance(block, Paragraph):
                    style = (block.style.name if block.style is not None else "") or ""
                    heading = style.startswith("Heading") or style == "Title"
                    builder.block(block.text, heading=heading)
                elif isinstance(block, Table):
                    for row in block.rows:
                        builder.block(" | ".join(cell.text.strip() for cell in row.cells))
        except PermanentError:
            raise
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, RecursionError) as exc:
            raise PermanentError(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # lxml's XMLSyntaxError and python-docx's own errors
            raise PermanentError(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
        return builder.build(DOCX)

    def _check_zip(self, data: bytes) -> None:
        """Refuse a zip that would inflate past the limits, before anything is inflated."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise PermanentError(f"corrupt DOCX: {exc}") from None
        total = sum(info.file_size for info in infos)
        if total > self._max_unzipped:
            raise PermanentError(
                f"DOCX would inflate to {total} bytes, the limit is {self._max_unzipped} "
                "(a zip bomb?)")
        for info in infos:
            if info.file_size > 1024 * 1024 and info.file_size > self._max_ratio * max(
                    info.compress_size, 1):
                raise PermanentError(
                    f"DOCX part {info.filename[:80]!r} is compressed "
                    f"{info.file_size // max(info.compress_size, 1)}:1, over "
                    f"{self._max_ratio}:1 (a zip bomb?)")


def detect_binary_type(data: bytes) -> str | None:
    """The content type of binary content, or None for what looks like text."""
    head = data[:_SNIFF]
    if head.lstrip(b"\x00\t\n\r\x0c ").startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return "application/zip"
        for name, kind in _ZIP_TYPES.items():
            if name in names:
                return kind
        return "application/zip"
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return None
    if b"\x00" in head and not _looks_utf16(head):
        return _magic_name(data)
    return None


def _looks_utf16(head: bytes) -> bool:
    """UTF-16 text without a BOM: NULs in every other byte, nowhere else."""
    even, odd = head[0::2], head[1::2]
    return len(head) >= 8 and (even.count(0) > 0.9 * len(even) or odd.count(0) > 0.9 * len(odd))


def _magic_name(data: bytes) -> str:
    import puremagic

    try:
        found = puremagic.magic_string(data[:_SNIFF])
    except (puremagic.PureError, ValueError):
        return "application/octet-stream"
    for match in found:
        if match.mime_type:
            return str(match.mime_type)
    return "application/octet-stream"


def decode_text(data: bytes) -> str:
    """Text in whatever common encoding it is in: BOM, else UTF-8, else chardet's guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise PermanentError(
                    f"invalid {encoding} text at byte {exc.start} (after its byte order mark)"
                ) from None
    if _looks_utf16(data[:_SNIFF]):
        odd_zeros = data[1:_SNIFF:2].count(0) > data[0:_SNIFF:2].count(0)
        encoding = "utf-16-le" if odd_zeros else "utf-16-be"
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise PermanentError(f"invalid {encoding} text at byte {exc.start}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        import chardet

        encoding = chardet.detect(data[:65536]).get("encoding") or ""
        if not encoding or encoding.lower().replace("-", "") == "utf8":
            raise PermanentError(
                f"invalid UTF-8 text at byte {utf8_error.start}, and no other encoding "
                "fits") from None
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise PermanentError(
                f"text is neither UTF-8 (bad byte at {utf8_error.start}) nor {encoding}: "
                f"{exc}") from None


def detect_text_type(text: str) -> str:
    """The type of decoded text, from its content."""
    sample = text[:_SNIFF]
    stripped = sample.lstrip()
    if stripped[:1] in ("{", "[") and _is_json(text):
        return JSON
    if _HTML_START.match(sample) or (stripped.startswith("<")
                                     and len(_HTML_TAGS.findall(sample)) >= 2):
        return HTML
    if _is_csv(sample):
        return CSV
    if _MD_HINTS.search(sample):
        return MARKDOWN
    return TEXT


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _is_csv(sample: str) -> bool:
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    if len(sample) == _SNIFF and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    if len(lines) < 2:
        return False
    for delimiter in (",", "\t", ";", "|"):
        try:
            rows = list(csv.reader(lines, delimiter=delimiter))
        except csv.Error:
            continue
        widths = {len(row) for row in rows}
        if len(widths) == 1 and widths.pop() >= 2 and all(
                len(field) <= 200 for row in rows for field in row):
            return True
    return False


def parse_text(text: str) -> ParsedDocument:
    """A parsed document from decoded text of any supported text type."""
    kind = detect_text_type(text)
    if kind == HTML:
        return _html(text)
    if kind == MARKDOWN:
        return ParsedDocument(MARKDOWN, text, sections=tuple(_markdown_sections(text)))
    return ParsedDocument(kind, text)


def _markdown_sections(text: str) -> Iterator[Section]:
    from markdown_it import MarkdownIt

    line_starts = [0]
    for match in re.finditer("\n", text):
        line_starts.append(match.end())
    tokens = MarkdownIt("commonmark").parse(text)
    for token, following in itertools.pairwise(tokens):
        if token.type == "heading_open" and token.map and following.type == "inline":
            yield Section(start=line_starts[token.map[0]], title=following.content.strip()[:200])


def _html(text: str) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

    tree = LexborHTMLParser(text)
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    builder = _TextBuilder(len(text) + 1)
    if root is None:
        return builder.build(HTML)
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
        if tag in _BLOCKS:
            flush()
            stack.append((node, True))
        children = list(node.iter(include_text=True))
        stack.extend((child, False) for child in reversed(children))
    flush()
    return builder.build(HTML)


class _TextBuilder:
    """Joins blocks into text with blank lines between, remembering where headings start."""

    def __init__(self, max_chars: int) -> None:
        self._parts: list[str] = []
        self._sections: list[Section] = []
        self._size = 0
        self._max = max_chars

    def block(self, text: str, *, heading: bool = False) -> None:
        text = _clean(text)
        if not text:
            return
        if self._parts:
            self._size += 2
        if heading:
            self._sections.append(Section(start=self._size, title=text[:200]))
        self._parts.append(text)
        self._size += len(text)
        if self._size > self._max:
            raise PermanentError(f"too much text: over {self._max} characters")

    def build(self, content_type: str) -> ParsedDocument:
        return ParsedDocument(content_type, "\n\n".join(self._parts),
                              sections=tuple(self._sections))


def _clean(text: str) -> str:
    """Runs of spaces as one, lines trimmed, no NULs."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\x00", "").splitlines())
    return "\n".join(line for line in lines if line)
