"""PPTX (``python-pptx``): a page per slide, its title as a section, its text, tables and
speaker notes."""

import io
from typing import Any

from adapters.parsing.textblocks import Limits, TextBuilder, corrupt_as, table_text
from adapters.parsing.zipguard import check_zip
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def parse_pptx(data: bytes, limits: Limits) -> ParsedDocument:
    from pptx import Presentation

    check_zip(data, "PPTX", limits)
    builder = TextBuilder(limits.max_text_chars)
    with corrupt_as("PPTX"):  # lxml's XMLSyntaxError, zipfile's and python-pptx's own errors
        deck = Presentation(io.BytesIO(data))
        for slide in deck.slides:
            builder.page()
            title = slide.shapes.title
            title_text = title.text_frame.text if title is not None and title.has_text_frame \
                else ""
            if title_text.strip():
                builder.block(title_text, heading=True)
            for text in _shape_texts(slide.shapes, title, limits.max_part_depth):
                builder.block(text)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    builder.block("Notes: " + notes.text)
    return builder.build(PPTX)


def _shape_texts(shapes: Any, skip: Any, max_depth: int) -> list[str]:
    """The text of each shape in reading order, group shapes opened with an explicit stack."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    texts: list[str] = []
    stack: list[tuple[Any, int]] = [(shape, 1) for shape in reversed(list(shapes))]
    while stack:
        shape, depth = stack.pop()
        if skip is not None and shape.shape_id == skip.shape_id and depth == 1:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            if depth >= max_depth:
                raise PermanentError(
                    f"PPTX shapes are grouped over {max_depth} levels deep")
            stack.extend((child, depth + 1) for child in reversed(list(shape.shapes)))
        elif getattr(shape, "has_table", False) and shape.has_table:
            texts.append(table_text([[cell.text for cell in row.cells]
                                     for row in shape.table.rows]))
        elif shape.has_text_frame:
            texts.append(shape.text_frame.text)
    return texts
