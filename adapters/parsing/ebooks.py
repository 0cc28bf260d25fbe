"""EPUB (the zip, its OPF package read with ``selectolax``): the spine's chapters in reading
order, each a section titled by its first heading (or its ``<title>``, or its file name),
each chapter's XHTML read as HTML is. DRM-encrypted books are refused."""

import io
import posixpath
import zipfile
from urllib.parse import unquote

from adapters.parsing.html_text import parse_html
from adapters.parsing.textblocks import Limits, TextBuilder, corrupt_as
from adapters.parsing.zipguard import check_zip
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

EPUB = "application/epub+zip"


def parse_epub(data: bytes, limits: Limits) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    check_zip(data, "EPUB", limits)
    builder = TextBuilder(limits.max_text_chars)
    with corrupt_as("EPUB", (zipfile.BadZipFile, KeyError, ValueError, OSError,
                             RecursionError)), zipfile.ZipFile(io.BytesIO(data)) as book:
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names and b"EncryptedData" in book.read(
                "META-INF/encryption.xml"):
            raise PermanentError("encrypted EPUB (DRM): its chapters cannot be read")
        container = LexborHTMLParser(_read(book, "META-INF/container.xml"))
        rootfile = container.css_first("rootfile")
        opf_path = rootfile.attributes.get("full-path") if rootfile is not None else None
        if not opf_path:
            raise PermanentError("corrupt EPUB: META-INF/container.xml names no package")
        package = LexborHTMLParser(_read(book, opf_path))
        base = posixpath.dirname(opf_path)
        manifest = {item.attributes.get("id"): item.attributes.get("href")
                    for item in package.css("manifest item")}
        for itemref in package.css("spine itemref"):
            href = manifest.get(itemref.attributes.get("idref"))
            if not href:
                continue
            path = posixpath.normpath(posixpath.join(base, unquote(href)))
            if path not in names:
                raise PermanentError(f"corrupt EPUB: its spine names {path[:120]!r}, "
                                     "which the file does not hold")
            chapter = parse_html(_read(book, path))
            title = _chapter_title(chapter, _read(book, path), path)
            if chapter.text.strip():
                builder.section(title)
                builder.document(_without_leading_section(chapter))
    return builder.build(EPUB)


def _read(book: zipfile.ZipFile, name: str) -> str:
    try:
        return book.read(name).decode("utf-8", errors="replace")
    except KeyError:
        raise PermanentError(f"corrupt EPUB: it lacks {name[:120]!r}") from None


def _chapter_title(chapter: ParsedDocument, source: str, path: str) -> str:
    if chapter.sections and chapter.sections[0].start == 0:
        return chapter.sections[0].title
    from selectolax.lexbor import LexborHTMLParser

    title = LexborHTMLParser(source).css_first("title")
    text = title.text(strip=True) if title is not None else ""
    return text or posixpath.basename(path)


def _without_leading_section(chapter: ParsedDocument) -> ParsedDocument:
    """The chapter without a heading at its very start (the chapter's own section says it)."""
    sections = tuple(s for s in chapter.sections if s.start != 0)
    return ParsedDocument(chapter.content_type, chapter.text, sections=sections)
