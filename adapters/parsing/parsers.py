"""The DocumentParser port on well-kept libraries: the type from the bytes, then text and structure.

- **Type** comes from the content, never the file name: ``%PDF-`` is a PDF; ``{\\rtf`` is RTF;
  a zip is named by its parts (``word/document.xml`` DOCX, ``ppt/presentation.xml`` PPTX,
  ``xl/workbook.xml`` XLSX) or its ``mimetype`` entry (EPUB, ODT); a leading block of mail
  headers is an e-mail; other binary content is named by ``puremagic``: PNG, JPEG and TIFF
  images are read by OCR (``ocr``), anything else (or ``application/octet-stream``) refused.
  Text is decoded first, then sniffed: JSON that parses, HTML by its leading tags, CSV by a
  delimiter that splits the first lines into the same number of fields,
  Markdown by headings, fences or links; else plain text.
- **Encoding** of text is detected, not assumed: a BOM, else strict UTF-8, else ``chardet``
  (7.x; on our checks it named windows-1250/1251/1252/iso-8859-7 text right where
  charset-normalizer 3.5 took French for cp1257 and found nothing for Polish).
- Each format is read in its own module: pdf_text, wordprocessing, slides, sheets, ebooks,
  opendocument, richtext, mail, html_text, ocr. The zip formats pass ``zipguard.check_zip`` first.
- **Markdown** (``markdown-it-py``): the source text kept as is, its headings as sections.

Every failure is PermanentError with a reason a user can act on; nothing is downloaded.
"""

import csv
import io
import itertools
import json
import re
import zipfile
from collections.abc import Callable, Iterator

from adapters.parsing.ebooks import EPUB, parse_epub
from adapters.parsing.html_text import HTML, parse_html
from adapters.parsing.mail import EML, is_email, parse_email
from adapters.parsing.ocr import IMAGES, TesseractOcr
from adapters.parsing.opendocument import ODT, parse_odt
from adapters.parsing.pdf_text import PDF, parse_pdf
from adapters.parsing.richtext import RTF, is_rtf, parse_rtf
from adapters.parsing.sheets import XLSX, parse_xlsx
from adapters.parsing.slides import PPTX, parse_pptx
from adapters.parsing.textblocks import Limits, NestingError
from adapters.parsing.wordprocessing import DOCX, parse_docx
from domain.errors import PermanentError
from domain.parsing import ParsedDocument, Section
from domain.uploads import check_size

MARKDOWN = "text/markdown"
CSV = "text/csv"
JSON = "application/json"
TEXT = "text/plain"
SUPPORTED = (PDF, DOCX, PPTX, XLSX, EPUB, ODT, RTF, EML, HTML, MARKDOWN, CSV, JSON, TEXT,
             *IMAGES)

_SNIFF = 8192
_ZIP_TYPES = {
    "word/document.xml": DOCX,
    "xl/workbook.xml": XLSX,
    "ppt/presentation.xml": PPTX,
}
_ZIP_MIMETYPES = {EPUB.encode(): EPUB, ODT.encode(): ODT}
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
_BINARY_PARSERS: dict[str, Callable[[bytes, Limits], ParsedDocument]] = {
    DOCX: parse_docx, PPTX: parse_pptx, XLSX: parse_xlsx, EPUB: parse_epub,
    ODT: parse_odt, RTF: parse_rtf,
}


class LibraryParser:
    """Parses every type in ``SUPPORTED``; see the module docstring.

    ``max_text_chars`` bounds the text of one document (more is refused, never cut quietly);
    ``max_unzipped_bytes`` and ``max_zip_ratio`` bound what a zip format may inflate to;
    ``max_pdf_pages`` bounds a PDF's pages and ``max_pdf_table_pages`` those read for
    tables; ``max_sheet_cells`` a workbook's cells;
    ``max_part_depth`` how deep e-mail parts, attachments in attachments and grouped slide
    shapes may nest. ``ocr`` reads images and PDF pages without a text layer; None turns
    OCR off (images are then refused, naming the setting).
    """

    def __init__(self, *, max_text_chars: int = 20_000_000,
                 max_unzipped_bytes: int = 200 * 1024 * 1024, max_zip_ratio: int = 200,
                 max_pdf_pages: int = 5000, max_pdf_table_pages: int = 500,
                 max_sheet_cells: int = 2_000_000,
                 max_part_depth: int = 20, ocr: TesseractOcr | None = None) -> None:
        self._ocr = ocr
        self._limits = Limits(max_text_chars=max_text_chars,
                              max_unzipped_bytes=max_unzipped_bytes, max_zip_ratio=max_zip_ratio,
                              max_pdf_pages=max_pdf_pages,
                              max_pdf_table_pages=max_pdf_table_pages,
                              max_sheet_cells=max_sheet_cells,
                              max_part_depth=max_part_depth)

    def parse(self, data: bytes) -> ParsedDocument:
        return self._parse(data, 1)

    def _parse(self, data: bytes, depth: int) -> ParsedDocument:
        check_size(len(data), None, complete=True)
        if depth > self._limits.max_part_depth:
            raise NestingError(
                f"attachments nested over {self._limits.max_part_depth} levels deep")
        kind = detect_binary_type(data)
        if kind == PDF:
            parsed = parse_pdf(data, self._limits, self._ocr)
        elif kind in IMAGES:
            if self._ocr is None:
                raise PermanentError(
                    f"{kind} needs OCR, which is off: CONVERSA_OCR__ENABLED=true turns it on")
            parsed = self._ocr.read_image(data, kind)
        elif kind in _BINARY_PARSERS:
            parsed = _BINARY_PARSERS[kind](data, self._limits)
        elif kind == EML:
            parsed = parse_email(data, self._limits, self._parse, depth)
        elif kind is not None:
            raise PermanentError(f"unsupported content type: {kind}")
        else:
            parsed = parse_text(decode_text(data))
        if not parsed.text.strip():
            raise PermanentError(
                f"no text to index: the {parsed.content_type} document is empty or whitespace")
        max_chars = self._limits.max_text_chars
        if len(parsed.text) > max_chars:
            raise PermanentError(
                f"too much text: {len(parsed.text)} characters, the limit is {max_chars}")
        return parsed


def detect_binary_type(data: bytes) -> str | None:
    """The content type of binary content, or None for what looks like text."""
    head = data[:_SNIFF]
    if head.lstrip(b"\x00\t\n\r\x0c ").startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                for name, kind in _ZIP_TYPES.items():
                    if name in names:
                        return kind
                if "mimetype" in names:
                    with archive.open("mimetype") as entry:
                        declared = entry.read(100).strip()
                    if declared in _ZIP_MIMETYPES:
                        return _ZIP_MIMETYPES[declared]
        except (zipfile.BadZipFile, ValueError, OSError, KeyError):
            return "application/zip"
        return "application/zip"
    if is_rtf(head):
        return RTF
    if is_email(head):
        return EML
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return None
    # NULs, or a first byte no UTF-8 text starts with (PNG's 0x89, JPEG's 0xFF)
    if (b"\x00" in head and not _looks_utf16(head)) or head[:1] in (b"\x89", b"\xff"):
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
        return parse_html(text)
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
