"""Test documents made in the test: PDFs (with a text layer, without one, encrypted, broken),
DOCX files (and a zip bomb dressed as one), HTML. Nothing is downloaded."""

import io
import zipfile

import docx
from pypdf import PdfReader, PdfWriter


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], *, text_layer: bool = True) -> bytes:
    """A PDF with one page per item, each line of the page drawn as text in Helvetica.

    Without a text layer each page holds only a filled rectangle (what a scan looks like to
    a text extractor: no text operators).
    """
    objects: list[bytes] = []
    page_ids = [4 + 2 * n for n in range(len(pages))]
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for lines in pages:
        if text_layer:
            ops = ["BT", "/F1 11 Tf", "14 TL", "50 780 Td"]
            for line in lines:
                ops.append(f"({_pdf_escape(line)}) Tj T*")
            ops.append("ET")
        else:
            ops = ["0.5 g", "50 50 500 700 re f"]
        stream = "\n".join(ops).encode("latin-1", "replace")
        page_id = 4 + len(objects) - 3
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents {page_id + 1} 0 R "
            "/Resources << /Font << /F1 3 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _write_pdf(objects)


def make_table_pdf(before: str, rows: list[list[str]], after: str,
                   widths: tuple[int, ...] = (170, 90, 120)) -> bytes:
    """A one-page PDF: a line of text, a table drawn as word processors draw one (each cell's
    text placed on its own, a grid of ruling lines around the cells), another line of text."""
    ops = ["BT", "/F1 11 Tf", "50 800 Td", f"({_pdf_escape(before)}) Tj", "ET"]
    top, height, xs = 780, 18, [50]
    for width in widths:
        xs.append(xs[-1] + width)
    for number, row in enumerate(rows):
        y = top - (number + 1) * height
        for column, cell in enumerate(row):
            ops += ["BT", "/F1 10 Tf", f"{xs[column] + 4} {y + 5} Td",
                    f"({_pdf_escape(cell)}) Tj", "ET"]
    bottom = top - len(rows) * height
    ops += [f"{xs[0]} {top - n * height} m {xs[-1]} {top - n * height} l S"
            for n in range(len(rows) + 1)]
    ops += [f"{x} {top} m {x} {bottom} l S" for x in xs]
    ops += ["BT", "/F1 11 Tf", f"50 {bottom - 30} Td", f"({_pdf_escape(after)}) Tj", "ET"]
    stream = "\n".join(ops).encode("latin-1", "replace")
    return _write_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents 5 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ])


def make_grid_pdf(text: str, lines: int) -> bytes:
    """A one-page PDF: a line of text over a ruled grid of ``lines`` x ``lines`` empty cells."""
    ops = ["BT", "/F1 11 Tf", "50 800 Td", f"({_pdf_escape(text)}) Tj", "ET"]
    ops += [f"50 {50 + n * 700 / lines:.2f} m 550 {50 + n * 700 / lines:.2f} l S"
            for n in range(lines + 1)]
    ops += [f"{50 + n * 500 / lines:.2f} 50 m {50 + n * 500 / lines:.2f} 750 l S"
            for n in range(lines + 1)]
    stream = "\n".join(ops).encode("latin-1", "replace")
    return _write_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Contents 5 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ])


def _write_pdf(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def encrypt_pdf(data: bytes, password: str, *, algorithm: str = "AES-128") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password="owner-" + password,
                   algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: list[tuple[str, str]], table: list[list[str]] | None = None) -> bytes:
    """A DOCX of (style, text) blocks; style "h1".."h3" is a heading, anything else a
    paragraph; ``table`` rows are added at the end."""
    document = docx.Document()
    for style, text in blocks:
        if style.startswith("h"):
            document.add_heading(text, level=int(style[1:]))
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_docx_bomb(inflated_bytes: int) -> bytes:
    """A real DOCX whose document.xml is padded to ``inflated_bytes`` of whitespace
    (compressing about 1000:1)."""
    source = zipfile.ZipFile(io.BytesIO(make_docx([("p", "A tiny document.")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "word/document.xml":
                with bomb.open("word/document.xml", "w", force_zip64=True) as part:
                    part.write(data)
                    block = b" " * (1 << 20)
                    for _ in range(inflated_bytes // len(block)):
                        part.write(block)
                continue
            bomb.writestr(info, data)
    return out.getvalue()
