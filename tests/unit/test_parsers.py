"""The document parser: types from content, encodings detected, structure kept."""

import io
import json

import pytest
from PIL import Image

from adapters.parsing.parsers import (
    CSV,
    DOCX,
    HTML,
    JSON,
    MARKDOWN,
    PDF,
    TEXT,
    LibraryParser,
    decode_text,
)
from adapters.ports import DocumentParser
from domain.errors import PermanentError
from tests.support.documents import make_docx, make_pdf

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00"


@pytest.fixture
def parser() -> LibraryParser:
    return LibraryParser()


def test_implements_the_port(parser):
    assert isinstance(parser, DocumentParser)


def test_pdf_text_layer_with_page_starts(parser):
    data = make_pdf([["Page one talks about lighthouses."], ["Page two is about keepers."],
                     ["Page three ends the story."]])

    parsed = parser.parse(data)

    assert parsed.content_type == PDF
    assert "lighthouses" in parsed.text
    assert "keepers" in parsed.text
    assert len(parsed.page_starts) == 3
    assert parsed.page_at(parsed.text.index("lighthouses")) == 1
    assert parsed.page_at(parsed.text.index("keepers")) == 2
    assert parsed.page_at(parsed.text.index("story")) == 3


def test_docx_paragraphs_tables_and_headings_as_sections(parser):
    data = make_docx([("h1", "Annual report"), ("p", "Revenue grew in Europe."),
                      ("h2", "Risks"), ("p", "Currency moves hurt margins.")],
                     table=[["Region", "Growth"], ["Europe", "8%"]])

    parsed = parser.parse(data)

    assert parsed.content_type == DOCX
    assert "Revenue grew in Europe." in parsed.text
    assert "Region: Europe | Growth: 8%" in parsed.text.splitlines()
    assert [s.title for s in parsed.sections] == ["Annual report", "Risks"]
    assert parsed.section_at(parsed.text.index("Currency")) == "Risks"
    assert parsed.section_at(parsed.text.index("Revenue")) == "Annual report"


def test_html_drops_scripts_navigation_and_boilerplate(parser):
    html = """<!DOCTYPE html><html><head><title>Shop</title><style>p{color:red}</style>
    <script>var tracking = "SECRET_SCRIPT";</script></head><body>
    <header>Site header LOGO</header><nav><a href="/">Home</a> <a href="/x">MENU_LINK</a></nav>
    <main><h1>Repairing a puncture</h1><p>Find the hole with <b>soapy</b> water.</p>
    <h2>Patching</h2><p>Roughen the tube, then apply the patch.</p>
    <form><input name="q"> SEARCH_FORM</form></main>
    <footer>Copyright FOOTER_TEXT</footer><script>alert(1)</script></body></html>"""

    parsed = parser.parse(html.encode())

    assert parsed.content_type == HTML
    assert "Find the hole with soapy water." in parsed.text
    for boilerplate in ("SECRET_SCRIPT", "MENU_LINK", "LOGO", "FOOTER_TEXT", "SEARCH_FORM",
                        "color:red", "alert"):
        assert boilerplate not in parsed.text
    assert [s.title for s in parsed.sections] == ["Repairing a puncture", "Patching"]
    assert parsed.section_at(parsed.text.index("Roughen")) == "Patching"


def test_html_nested_ten_thousand_deep_does_not_overflow(parser):
    html = "<html><body>" + "<div>" * 10_000 + "deep text" + "</div>" * 10_000 + "</body></html>"
    assert "deep text" in parser.parse(html.encode()).text


def test_markdown_keeps_the_source_and_its_headings(parser):
    text = ("# Sourdough\n\nFlour and water.\n\n## Starter\n\nFeed it daily.\n\n"
            "```\n# not a heading inside code\n```\n")

    parsed = parser.parse(text.encode())

    assert parsed.content_type == MARKDOWN
    assert parsed.text == text
    assert [s.title for s in parsed.sections] == ["Sourdough", "Starter"]
    assert parsed.section_at(text.index("Feed")) == "Starter"


def test_csv_and_json_are_read_as_text(parser):
    csv_text = "city,country,population\nLisbon,Portugal,545000\nOslo,Norway,709000\n"
    parsed_csv = parser.parse(csv_text.encode())
    json_text = json.dumps({"title": "Heat pumps", "body": "They move heat uphill."})
    parsed_json = parser.parse(json_text.encode())

    assert (parsed_csv.content_type, parsed_csv.text) == (CSV, csv_text)
    assert (parsed_json.content_type, parsed_json.text) == (JSON, json_text)


def test_plain_prose_is_plain_text(parser):
    text = "Plain words, with a comma.\nAnother line, also with one.\nNo markup here.\n"
    assert parser.parse(text.encode()).content_type == TEXT


def test_type_comes_from_content_not_a_name(parser):
    # The parser never sees a name: a PDF is a PDF, a PNG is an image for OCR (off here) and
    # a GIF is refused, by their bytes.
    assert parser.parse(make_pdf([["Hello from a PDF."]])).content_type == PDF
    with pytest.raises(PermanentError, match=r"image/png needs OCR, which is off"):
        parser.parse(PNG + b"\x00" * 100)
    gif = io.BytesIO()
    Image.new("L", (40, 20), 255).save(gif, "GIF")
    with pytest.raises(PermanentError, match=r"unsupported content type: image/gif"):
        parser.parse(gif.getvalue())


def test_other_zip_formats_are_named_and_refused(parser):
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(PermanentError, match=r"corrupt XLSX"):
        parser.parse(out.getvalue())


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva de crapaüter en canoë. " * 3,
         "cp1252"),
        ("Съешь же ещё этих мягких французских булок да выпей чаю. " * 3, "cp1251"),
        ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig. " * 3, "cp1250"),
        ("Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Καλημέρα σας. " * 3, "iso-8859-7"),
        ("Plain UTF-8 with an emoji 🚀 and accents: café.", "utf-8"),
        ("UTF-16 with its byte order mark: naïve café.", "utf-16"),
        ("UTF-16 little endian without a byte order mark.", "utf-16-le"),
    ],
)
def test_text_encoding_is_detected_not_assumed(parser, text, encoding):
    parsed = parser.parse(text.encode(encoding))
    assert parsed.text == text


def test_undecodable_text_fails_with_the_reason():
    with pytest.raises(PermanentError, match="invalid utf-32 text"):
        decode_text(b"\xff\xfe\x00\x00garbage")
