"""More test documents made in the test by the libraries that read them: PPTX, XLSX, ODT, and
EPUB (a zip written here), e-mail (the standard email package), RTF (written by hand, as
RTF is text). Plus a zip part padded into a bomb. Nothing is downloaded."""

import io
import zipfile
from email.message import EmailMessage


def make_pptx(slides: list[tuple[str, list[str], str]],
              table: list[list[str]] | None = None) -> bytes:
    """One slide per (title, body lines, notes); ``table`` goes on the last slide."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    slide = None
    for title, lines, notes in slides:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = lines[0] if lines else ""
        for line in lines[1:]:
            body.add_paragraph().text = line
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    if table and slide is not None:
        shape = slide.shapes.add_table(len(table), len(table[0]), Inches(1), Inches(4),
                                       Inches(6), Inches(2))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                shape.table.cell(r, c).text = value
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_odt(blocks: list[tuple[str, str]], table: list[list[str]] | None = None) -> bytes:
    """(style, text) blocks: "h1".."h3" a heading, anything else a paragraph; then ``table``."""
    from odf.opendocument import OpenDocumentText
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, P

    document = OpenDocumentText()
    for style, text in blocks:
        if style.startswith("h"):
            document.text.addElement(H(outlinelevel=int(style[1:]), text=text))
        else:
            document.text.addElement(P(text=text))
    if table:
        grid = Table(name="Table1")
        grid.addElement(TableColumn(numbercolumnsrepeated=len(table[0])))
        for row in table:
            line = TableRow()
            for value in row:
                cell = TableCell()
                cell.addElement(P(text=value))
                line.addElement(cell)
            grid.addElement(line)
        document.text.addElement(grid)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def make_epub(chapters: list[tuple[str, str]], *, drm: bool = False) -> bytes:
    """An EPUB 3 of (title, XHTML body) chapters, in spine order."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # stored, first
        book.writestr("META-INF/container.xml",
                      '<?xml version="1.0"?><container version="1.0" '
                      'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                      '<rootfile full-path="OEBPS/content.opf" '
                      'media-type="application/oebps-package+xml"/></rootfiles></container>')
        items, refs = [], []
        for number, (title, body) in enumerate(chapters, start=1):
            name = f"text/chapter {number}.xhtml"
            items.append(f'<item id="c{number}" href="text/chapter%20{number}.xhtml" '
                         'media-type="application/xhtml+xml"/>')
            refs.append(f'<itemref idref="c{number}"/>')
            book.writestr(f"OEBPS/{name}",
                          '<?xml version="1.0" encoding="utf-8"?><html '
                          f'xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title>'
                          f"</head><body>{body}</body></html>")
        book.writestr("OEBPS/content.opf",
                      '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" '
                      'version="3.0"><metadata/><manifest>' + "".join(items) +
                      '</manifest><spine>' + "".join(refs) + "</spine></package>")
        if drm:
            book.writestr("META-INF/encryption.xml",
                          '<encryption><EncryptedData><CipherData/></EncryptedData></encryption>')
    return out.getvalue()


def make_eml(subject: str, body: str, *, html: str | None = None,
             attachments: list[tuple[str, bytes, str]] = ()) -> bytes:  # type: ignore[assignment]
    """A message with a plain body (and an HTML alternative), attachments as (file name,
    bytes, MIME type)."""
    message = EmailMessage()
    message["From"] = "Ada Keeper <ada@example.org>"
    message["To"] = "harbour@example.org"
    message["Subject"] = subject
    message["Date"] = "Tue, 01 Dec 2026 09:30:00 +0000"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data, mime in attachments:
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def make_enclosing_eml(innermost: bytes, levels: int, *, encoding: str = "8bit") -> bytes:
    """``innermost`` (a message) enclosed ``levels`` times, each time as the message/rfc822
    attachment of a forwarding message; ``encoding`` "base64" encodes each enclosed message
    (which RFC 2046 forbids and some mailers do all the same)."""
    import base64

    data = innermost
    for level in range(1, levels + 1):
        boundary = f"fwd{level}".encode()
        body = base64.encodebytes(data) if encoding == "base64" else data
        data = (b"From: relay@example.org\r\nSubject: Fwd level %d\r\nMIME-Version: 1.0\r\n"
                b'Content-Type: multipart/mixed; boundary="%s"\r\n\r\n--%s\r\n'
                b"Content-Type: text/plain\r\n\r\nForwarded.\r\n--%s\r\n"
                b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: %s\r\n\r\n"
                % (level, boundary, boundary, boundary, encoding.encode())
                + body + b"\r\n--%s--\r\n" % boundary)
    return data


def make_rtf(paragraphs: list[str]) -> bytes:
    """An RTF document, one \\par per paragraph; non-ASCII as \\'hh in cp1252."""
    def escape(text: str) -> str:
        out = []
        for char in text:
            if char in "\\{}":
                out.append("\\" + char)
            elif ord(char) < 128:
                out.append(char)
            else:
                out.append(f"\\'{char.encode('cp1252')[0]:02x}")
        return "".join(out)

    body = "".join(f"{{\\pard {escape(p)}\\par}}\n" for p in paragraphs)
    return ("{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}\n"
            + body + "}").encode("ascii")


def pad_zip_part(data: bytes, part: str, inflated_bytes: int) -> bytes:
    """The zip with ``part`` padded by ``inflated_bytes`` of spaces (about 1000:1)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == part:
                with bomb.open(part, "w", force_zip64=True) as entry:
                    entry.write(content)
                    block = b" " * (1 << 20)
                    for _ in range(inflated_bytes // len(block)):
                        entry.write(block)
                continue
            bomb.writestr(info, content)
    return out.getvalue()
