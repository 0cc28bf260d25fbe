"""XLSX (``openpyxl``, read-only): a section per sheet, its rows as lines named by their
header (see ``table_text``). A sheet's cells are bounded: its declared size first, then the
cells actually read."""

import datetime
import io
from typing import Any

from adapters.parsing.textblocks import Limits, TextBuilder, corrupt_as, table_text
from adapters.parsing.zipguard import check_zip
from domain.errors import PermanentError
from domain.parsing import ParsedDocument

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def parse_xlsx(data: bytes, limits: Limits) -> ParsedDocument:
    import openpyxl

    check_zip(data, "XLSX", limits)
    builder = TextBuilder(limits.max_text_chars)
    cells = 0
    with corrupt_as("XLSX"):  # zipfile's, lxml's and openpyxl's own errors
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in book.worksheets:
                declared = (sheet.max_row or 0) * (sheet.max_column or 0)
                if cells + declared > limits.max_sheet_cells:
                    raise PermanentError(
                        f"XLSX sheet {sheet.title[:80]!r} declares {sheet.max_row} rows by "
                        f"{sheet.max_column} columns, over the limit of "
                        f"{limits.max_sheet_cells} cells")
                rows: list[list[str]] = []
                for row in sheet.iter_rows(values_only=True):
                    cells += max(len(row), 1)
                    if cells > limits.max_sheet_cells:
                        raise PermanentError(
                            f"XLSX holds over {limits.max_sheet_cells} cells (the limit)")
                    rows.append([_cell_text(value) for value in row])
                text = table_text(rows)
                if text:
                    builder.section(sheet.title)
                    builder.block(text)
        finally:
            book.close()
    return builder.build(XLSX)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return str(value)
