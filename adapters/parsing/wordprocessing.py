"""DOCX (``python-docx``): paragraphs, headings (``Heading n``/``Title`` styles) as sections,
tables as rows named by their header (see ``table_text``). The zip is checked before it is
opened (``check_zip``)."""

import io
import zipfile

from adapters.parsing.textblocks import Limits, TextBuilder, table_text
from adapters.parsing.zipguard import check_zip
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def parse_docx(data: bytes, limits: Limits) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(data, "DOCX", limits)
    try:
        document = docx.Document(io.BytesIO(data))
        builder = TextBuilder(limits.max_text_chars)
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                style = (block.style.name if block.style is not None else "") or ""
                heading = style.startswith("Heading") or style == "Title"
                builder.block(block.text, heading=heading)
            elif isinstance(block, Table):
                builder.block(table_text([[cell.text for cell in row.cells]
                                          for row in block.rows]))
    except PermanentError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RecursionError) as exc:
        raise PermanentError(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # lxml's XMLSyntaxError and python-docx's own errors
        raise PermanentError(f"corrupt DOCX: {type(exc).__name__}: {exc}") from None
    return builder.build(DOCX)
