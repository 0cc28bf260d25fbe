"""PDF (``pypdf``): the text layer page by page, page starts kept; an encrypted file is opened
with the empty password or refused; no text on any page is "no text layer". A table drawn with
ruling lines is read by pdfplumber (``pdf_tables``): its rows one a line, cells named by their
header; a table without ruling comes out as pypdf draws it, each row printed on one line one
line, its cells separated by spaces.

Pages without a text layer (scans) are read by OCR when it is on (``ocr``): every page when
the PDF has no text at all, else the pages that have none."""

import io
from typing import TYPE_CHECKING

from adapters.parsing.pdf_tables import pages_with_ruling, tables_in_pages
from adapters.parsing.textblocks import Limits, clean
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

if TYPE_CHECKING:
    from pypdf import PageObject

    from adapters.parsing.ocr import TesseractOcr

PDF = "application/pdf"


def parse_pdf(data: bytes, limits: Limits, ocr: "TesseractOcr | None" = None) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise PermanentError("encrypted PDF: it needs a password, which we do not have")
        if len(reader.pages) > limits.max_pdf_pages:
            raise PermanentError(
                f"PDF has {len(reader.pages)} pages, the limit is {limits.max_pdf_pages}")
        texts = []
        size = 0
        for page in reader.pages:
            text = clean(page.extract_text() or "")
            size += len(text)
            if size > limits.max_text_chars:
                raise PermanentError(
                    f"too much text: over {limits.max_text_chars} characters in the PDF")
            texts.append(text)
        ruled = pages_with_ruling(
            (number, _content_bytes(page)) for number, page in enumerate(reader.pages)
            if texts[number].strip())[:limits.max_pdf_table_pages]
    except PermanentError:
        raise
    except (FileNotDecryptedError, NotImplementedError) as exc:
        raise PermanentError(f"encrypted PDF: cannot decrypt it ({exc})") from None
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError, ZeroDivisionError, OSError) as exc:
        raise PermanentError(f"corrupt PDF: {type(exc).__name__}: {exc}") from None
    for number, text in tables_in_pages(data, ruled).items():
        texts[number] = clean(text)
    blank = [number for number, text in enumerate(texts) if not text.strip()]
    if blank and ocr is not None:
        try:
            read = ocr.read_pdf_pages(data, blank)
        except PermanentError as exc:
            raise PermanentError(
                f"no text layer on {len(blank)} of the PDF's {len(texts)} page(s), and OCR "
                f"cannot read them: {exc}") from None
        for number, text in read.items():
            texts[number] = clean(text)
    if not any(text.strip() for text in texts):
        reason = ("OCR found no text on them either" if ocr is not None
                  else "a scan? OCR is off: CONVERSA_OCR__ENABLED=true turns it on")
        raise PermanentError(
            f"no text layer: the PDF's {len(texts)} page(s) hold no extractable text "
            f"({reason})")
    starts, parts, offset = [], [], 0
    for text in texts:
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 2
    return ParsedDocument(PDF, "\n\n".join(parts), page_starts=tuple(starts))


def _content_bytes(page: "PageObject") -> bytes:
    contents = page.get_contents()
    return bytes(contents.get_data()) if contents is not None else b""
