"""PDF (``pypdf``): the text layer page by page, page starts kept; an encrypted file is opened
with the empty password or refused; no text on any page is "no text layer". A table comes
out as pypdf draws it: each row that is printed on one line stays one line, its cells
separated by spaces (the ruling between them is not text, so it is lost)."""

import io

from adapters.parsing.textblocks import Limits, clean
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

PDF = "application/pdf"


def parse_pdf(data: bytes, limits: Limits) -> ParsedDocument:
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
