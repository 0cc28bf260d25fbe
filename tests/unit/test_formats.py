"""The office, e-book, e-mail and RTF formats, made in the test by their own libraries: each
is detected from its bytes, keeps its structure (slides as pages, sheets and chapters as
sections, table rows as lines named by their header), and is found by search after an
ingest through the pipeline."""

from pathlib import Path

import pytest

from adapters.parsing.parsers import (
    DOCX,
    EML,
    EPUB,
    HTML,
    ODT,
    PPTX,
    RTF,
    XLSX,
    LibraryParser,
)
from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.documents import make_docx, make_pdf, make_table_pdf
from tests.support.inline import memory_services
from tests.support.office_documents import (
    make_eml,
    make_epub,
    make_odt,
    make_pptx,
    make_rtf,
    make_xlsx,
)


@pytest.fixture
def parser() -> LibraryParser:
    return LibraryParser()


def test_pptx_a_page_per_slide_with_titles_and_notes(parser):
    data = make_pptx([("Harbour lights", ["The lamp is lit at dusk."], "Mention the storm."),
                      ("Keepers", ["Three keepers share the watch."], ""),
                      ("Budget", ["Figures below."], "")],
                     table=[["Item", "Cost"], ["Lens polish", "40 EUR"]])

    parsed = parser.parse(data)

    assert parsed.content_type == PPTX
    assert len(parsed.page_starts) == 3
    assert parsed.page_at(parsed.text.index("lamp is lit")) == 1
    assert parsed.page_at(parsed.text.index("Notes: Mention the storm.")) == 1
    assert parsed.page_at(parsed.text.index("Three keepers")) == 2
    assert [s.title for s in parsed.sections] == ["Harbour lights", "Keepers", "Budget"]
    assert "Item: Lens polish | Cost: 40 EUR" in parsed.text.splitlines()
    assert parsed.page_at(parsed.text.index("Lens polish")) == 3


def test_xlsx_a_section_per_sheet_and_rows_with_their_header(parser):
    data = make_xlsx({"Stock": [["Part", "Quantity", "Shelf"], ["Wick", 12, "B3"],
                                ["Lens", 2.0, "A1"]],
                      "Staff": [["Name", "Shift"], ["Ada", "night"]]})

    parsed = parser.parse(data)

    assert parsed.content_type == XLSX
    lines = parsed.text.splitlines()
    assert "Part | Quantity | Shelf" in lines
    assert "Part: Wick | Quantity: 12 | Shelf: B3" in lines
    assert "Part: Lens | Quantity: 2 | Shelf: A1" in lines
    assert [s.title for s in parsed.sections] == ["Stock", "Staff"]
    assert parsed.section_at(parsed.text.index("Name: Ada")) == "Staff"


def test_epub_chapters_in_spine_order_as_sections(parser):
    data = make_epub([("Landfall", "<h1>Landfall</h1><p>The ship came in at dawn.</p>"),
                      ("Second", "<p>No heading here; the keeper wrote the log.</p>")])

    parsed = parser.parse(data)

    assert parsed.content_type == EPUB
    assert [s.title for s in parsed.sections] == ["Landfall", "Second"]
    assert parsed.section_at(parsed.text.index("ship came in")) == "Landfall"
    assert parsed.section_at(parsed.text.index("wrote the log")) == "Second"


def test_email_headers_body_and_attachments_parsed_in_place(parser):
    attachment = make_docx([("p", "The attached inventory lists forty wicks.")])
    data = make_eml("Lamp inventory", "Please see the inventory attached.",
                    attachments=[("inventory.docx", attachment, f"application/{DOCX[12:]}"),
                                 ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
                                  "image/png")])

    parsed = parser.parse(data)

    assert parsed.content_type == EML
    assert "From: Ada Keeper <ada@example.org>" in parsed.text
    assert "Subject: Lamp inventory" in parsed.text
    assert "Please see the inventory attached." in parsed.text
    assert "forty wicks" in parsed.text
    assert parsed.section_at(parsed.text.index("forty wicks")) == "Attachment: inventory.docx"
    assert "Attachment photo.png: not read (image/png needs OCR, which is off" in parsed.text


def test_email_with_only_an_html_body(parser):
    data = make_eml("Notice", "", html="<html><body><h1>Closure</h1><p>The pier is shut."
                    "</p><script>x()</script></body></html>")
    parsed = parser.parse(data)
    assert "The pier is shut." in parsed.text
    assert "x()" not in parsed.text


def test_rtf_text_with_its_code_page(parser):
    data = make_rtf(["The café by the lighthouse.", "It opens at nine {sharp}."])
    parsed = parser.parse(data)
    assert parsed.content_type == RTF
    assert "The café by the lighthouse." in parsed.text
    assert "It opens at nine {sharp}." in parsed.text
    assert "fonttbl" not in parsed.text
    assert "Times New Roman" not in parsed.text


def test_odt_headings_paragraphs_and_table_rows(parser):
    data = make_odt([("h1", "Tides"), ("p", "High water at noon."), ("h2", "Moorings")],
                    table=[["Berth", "Vessel"], ["4", "Petrel"]])
    parsed = parser.parse(data)
    assert parsed.content_type == ODT
    assert [s.title for s in parsed.sections] == ["Tides", "Moorings"]
    assert "High water at noon." in parsed.text
    assert "Berth: 4 | Vessel: Petrel" in parsed.text.splitlines()


def test_html_and_docx_tables_keep_rows_and_headers_one_a_line(parser):
    html = ("<html><body><h1>Tariffs</h1><table><thead><tr><th>Port</th><th>Fee</th></tr>"
            "</thead><tbody><tr><td>Brest</td><td>12 EUR</td></tr><tr><td>Cork</td>"
            "<td>9 EUR</td></tr></tbody></table></body></html>")
    lines = parser.parse(html.encode()).text.splitlines()
    assert parser.parse(html.encode()).content_type == HTML
    assert lines[-3:] == ["Port | Fee", "Port: Brest | Fee: 12 EUR", "Port: Cork | Fee: 9 EUR"]

    docx_lines = parser.parse(make_docx([("p", "Fees.")], table=[
        ["Port", "Fee"], ["Brest", "12 EUR"]])).text.splitlines()
    assert docx_lines[-2:] == ["Port | Fee", "Port: Brest | Fee: 12 EUR"]


def test_a_ruled_pdf_table_keeps_rows_and_headers_one_a_line(parser):
    data = make_table_pdf("Stock of the lighthouse stores.",
                          [["Part", "Quantity", "Shelf"], ["Brass wick trimmer", "7", "Z9"],
                           ["Lamp chimney", "12", "B3"]], "Counted in December.")
    lines = parser.parse(data).text.splitlines()
    assert lines == ["Stock of the lighthouse stores.", "Part | Quantity | Shelf",
                     "Part: Brass wick trimmer | Quantity: 7 | Shelf: Z9",
                     "Part: Lamp chimney | Quantity: 12 | Shelf: B3", "Counted in December."]


def test_a_pdf_of_prose_is_not_read_for_tables(parser):
    # No ruling lines: pypdf's text, as before (pdfplumber never sees the page).
    data = make_pdf([["Part Quantity Shelf", "Brass wick trimmer 7 Z9"]])
    assert parser.parse(data).text.splitlines() == ["Part Quantity Shelf",
                                                    "Brass wick trimmer 7 Z9"]


STOCK = [["Part", "Quantity", "Shelf"]] + [[f"Bolt {n}", str(n), f"C{n}"] for n in range(30)] + [
    ["Brass wick trimmer", "7", "Z9"]]
STORES = "The stores hold what the keepers need through the winter."


def _html_table(rows: list[list[str]]) -> bytes:
    head = "".join(f"<th>{cell}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows[1:])
    return (f"<html><body><h1>Stock</h1><p>{STORES}</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></body></html>").encode()


@pytest.mark.parametrize(("name", "data"), [
    ("stock.pdf", make_table_pdf("Stock of the lighthouse stores.", STOCK, "Counted.")),
    ("stock.docx", make_docx([("p", STORES)], table=STOCK)),
    ("stock.html", _html_table(STOCK)),
    ("stock.xlsx", make_xlsx({"Stock": STOCK})),
])
def test_a_question_about_a_table_cell_finds_its_row(tmp_path, name, data):
    services, job = _ingest(tmp_path, name, data)

    assert job.status is JobStatus.DONE, job.error
    hits = search(services, "default", "what quantity of brass wick trimmer", top_k=3)
    assert any("Part: Brass wick trimmer | Quantity: 7 | Shelf: Z9" in hit.text.splitlines()
               for hit in hits)


def test_a_nested_html_table_stays_inside_its_cell(parser):
    html = ("<html><body><table><tr><th>Port</th><th>Notes</th></tr><tr><td>Brest</td><td>"
            "<table><tr><td>inner</td></tr></table></td></tr></table></body></html>")
    lines = parser.parse(html.encode()).text.splitlines()
    assert lines == ["Port | Notes", "Port: Brest | Notes: inner"]


def _ingest(tmp_path: Path, name: str, data: bytes):
    services = memory_services(tmp_path)
    path = tmp_path / name
    path.write_bytes(data)
    job = enqueue(services, file_event(path, "default", services.settings.max_upload_bytes))
    return services, services.jobs.get(job.job_id)


FILLER = "The harbour log records every vessel that comes and goes through the long season. "


@pytest.mark.parametrize(("name", "data", "query", "expected"), [
    ("deck.pptx", make_pptx([("Intro", [FILLER * 4], ""),
                             ("Lens", ["The Fresnel lens weighs four tonnes."], "")]),
     "how heavy is the Fresnel lens", "four tonnes"),
    ("stock.xlsx", make_xlsx({"Stock": [["Part", "Quantity", "Shelf"]]
                              + [[f"Bolt {n}", n, f"C{n}"] for n in range(60)]
                              + [["Brass wick trimmer", 7, "Z9"]]}),
     "Brass wick trimmer quantity", "Part: Brass wick trimmer | Quantity: 7 | Shelf: Z9"),
    ("book.epub", make_epub([("One", f"<p>{FILLER * 4}</p>"),
                             ("Two", "<p>The albatross nested on the gallery rail.</p>")]),
     "albatross nested", "albatross nested on the gallery rail"),
    ("note.eml", make_eml("Fog signal", "The fog horn sounds every thirty seconds."),
     "fog horn thirty seconds", "fog horn sounds every thirty seconds"),
    ("memo.rtf", make_rtf([FILLER * 3, "The pilot boat leaves from the north quay."]),
     "pilot boat north quay", "pilot boat leaves from the north quay"),
    ("plan.odt", make_odt([("h1", "Plan"), ("p", FILLER * 3),
                           ("p", "Repaint the lantern room in May.")]),
     "repaint lantern room", "Repaint the lantern room in May."),
])
def test_each_format_is_ingested_and_found_by_search(tmp_path, name, data, query, expected):
    services, job = _ingest(tmp_path, name, data)

    assert job.status is JobStatus.DONE, job.error
    hits = search(services, "default", query, top_k=3)
    assert any(expected in hit.text for hit in hits)


def test_a_slide_found_by_search_names_its_page(tmp_path):
    data = make_pptx([("Intro", [FILLER * 6], ""), ("Lens", [FILLER * 6], ""),
                      ("Lamp", ["The paraffin lamp burns for twelve hours."], "")])
    services, job = _ingest(tmp_path, "deck.pptx", data)
    assert job.status is JobStatus.DONE
    hit = search(services, "default", "paraffin lamp twelve hours", top_k=1)[0]
    assert hit.page == 3
