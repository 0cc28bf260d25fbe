"""The DocumentParser contract, run against every adapter of the port (the library parser,
at its default limits and at smaller ones): the type from the bytes, a PermanentError
with the reason for what it cannot read, and the same result for the same bytes."""

from pathlib import Path

import pytest

from adapters.parsing.parsers import LibraryParser
from adapters.ports import DocumentParser
from domain.errors import PermanentError
from tests.support.documents import encrypt_pdf, make_docx, make_pdf

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PDF = make_pdf([["Lighthouse keepers trimmed the wicks every night."],
                ["They polished the lenses before dawn."]])
DOCX = make_docx([("Heading1", "Compost"), ("Normal", "Compost heaps need air and water.")])


@pytest.fixture(params=["library", "library-small-limits"])
def parser(request: pytest.FixtureRequest) -> DocumentParser:
    if request.param == "library":
        return LibraryParser()
    return LibraryParser(max_text_chars=1_000_000, max_pdf_pages=50)


def _sample(suffix: str) -> bytes:
    if suffix == ".pdf":
        return PDF
    if suffix == ".docx":
        return DOCX
    return next(p for p in sorted(SAMPLES.iterdir()) if p.suffix == suffix).read_bytes()


def test_implements_the_port(parser: DocumentParser) -> None:
    assert isinstance(parser, DocumentParser)


@pytest.mark.parametrize(("suffix", "content_type"), [
    (".pdf", "application/pdf"),
    (".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (".md", "text/markdown"),
    (".txt", "text/plain"),
])
def test_the_type_comes_from_the_bytes(parser: DocumentParser, suffix: str,
                                       content_type: str) -> None:
    parsed = parser.parse(_sample(suffix))
    assert parsed.content_type == content_type
    assert parsed.text.strip()


def test_the_same_bytes_give_the_same_document(parser: DocumentParser) -> None:
    for suffix in (".pdf", ".docx", ".md"):
        data = _sample(suffix)
        assert parser.parse(data) == parser.parse(data)


def test_sections_and_pages_index_the_text(parser: DocumentParser) -> None:
    parsed = parser.parse(_sample(".pdf"))
    assert len(parsed.page_starts) == 2
    assert list(parsed.page_starts) == sorted(parsed.page_starts)
    assert all(0 <= start <= len(parsed.text) for start in parsed.page_starts)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty file"),
    (b" \n\t \n", "no text to index"),
    (bytes(range(256)) * 8, "unsupported content type"),
    (b"%PDF-1.7\n" + b"\x00garbage" * 100, r"\S"),  # corrupt: a reason, never a crash
    (encrypt_pdf(PDF, "secret"), "(?i)encrypt"),
])
def test_what_it_cannot_read_is_a_permanent_error_with_the_reason(
        parser: DocumentParser, data: bytes, reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        parser.parse(data)
