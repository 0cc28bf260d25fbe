"""OCR by Tesseract: sentences drawn into images and image-only PDFs are ingested and found by
search; without Tesseract (the setting pointed at a missing file), or without the language
asked for, or over the page bound, the job fails naming what to do. The pipeline runs in this
process on in-memory stores with the real parser and the real ``tesseract`` binary."""

import io
import shutil

import pytest

from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from pipeline.settings import OcrSettings
from tests.support.documents import make_pdf
from tests.support.inline import memory_services
from tests.support.scans import make_scan

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="needs Tesseract: scripts/system-packages installs tesseract-ocr tesseract-ocr-eng")

SENTENCE = "The lighthouse keeper counted 42 gulls on the north pier."
OTHER = "Fresh paint went on the lantern gallery railings in spring."


def ingest(tmp_path, name: str, data: bytes, **overrides):
    services = memory_services(tmp_path, **overrides)
    path = tmp_path / name
    path.write_bytes(data)
    job = enqueue(services, file_event(path, "default", services.settings.max_upload_bytes))
    return services, services.jobs.get(job.job_id)


@needs_tesseract
@pytest.mark.parametrize(("name", "image_format", "content_type"), [
    ("scan.png", "PNG", "image/png"),
    ("photo.jpg", "JPEG", "image/jpeg"),
    ("fax.tiff", "TIFF", "image/tiff"),
    ("scan.pdf", "PDF", "application/pdf"),
])
def test_a_scanned_sentence_is_read_and_found(tmp_path, name, image_format, content_type):
    data = make_scan([[OTHER], [SENTENCE]] if image_format in ("TIFF", "PDF")
                     else [[OTHER, SENTENCE]], image_format)

    services, job = ingest(tmp_path, name, data)

    assert job.status is JobStatus.DONE, job.error
    assert services.documents.get("default", job.document_id).content_type == content_type
    hit = search(services, "default", "how many gulls did the keeper count", top_k=1)[0]
    assert "counted 42 gulls on the north pier" in hit.text
    if image_format in ("TIFF", "PDF"):
        assert hit.page == 2


@needs_tesseract
def test_a_pdf_with_a_scanned_page_among_text_pages(tmp_path):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in (make_pdf([[OTHER]]), make_scan([[SENTENCE]], "PDF")):
        writer.append(PdfReader(io.BytesIO(part)))
    out = io.BytesIO()
    writer.write(out)

    services, job = ingest(tmp_path, "mixed.pdf", out.getvalue())

    assert job.status is JobStatus.DONE, job.error
    hit = search(services, "default", "gulls on the north pier", top_k=1)[0]
    assert "counted 42 gulls" in hit.text
    assert hit.page == 2


def test_without_tesseract_the_job_names_what_to_install(tmp_path):
    missing = tmp_path / "no-such-dir" / "tesseract"
    services, job = ingest(tmp_path, "scan.png", make_scan([[SENTENCE]], "PNG"),
                           ocr=OcrSettings(tesseract_cmd=str(missing)))

    assert job.status is JobStatus.FAILED
    assert job.error.stage is Stage.EXTRACT
    assert "apt-get install tesseract-ocr tesseract-ocr-eng" in job.error.message
    assert "CONVERSA_OCR__TESSERACT_CMD" in job.error.message
    assert services.vectors.count("default") == 0


def test_a_scanned_pdf_without_tesseract_names_it_too(tmp_path):
    missing = tmp_path / "tesseract"
    _, job = ingest(tmp_path, "scan.pdf", make_pdf([[], []], text_layer=False),
                    ocr=OcrSettings(tesseract_cmd=str(missing)))

    assert job.status is JobStatus.FAILED
    assert "OCR needs Tesseract" in job.error.message


def test_with_ocr_off_an_image_is_refused_naming_the_setting(tmp_path):
    _, job = ingest(tmp_path, "scan.png", make_scan([[SENTENCE]], "PNG"),
                    ocr=OcrSettings(enabled=False))

    assert job.status is JobStatus.FAILED
    assert "CONVERSA_OCR__ENABLED=true" in job.error.message


@needs_tesseract
def test_a_language_without_its_data_names_its_package(tmp_path):
    _, job = ingest(tmp_path, "scan.png", make_scan([[SENTENCE]], "PNG"),
                    ocr=OcrSettings(languages="eng+xyz"))

    assert job.status is JobStatus.FAILED
    assert "install Debian's tesseract-ocr-xyz" in job.error.message


def test_more_scanned_pages_than_the_bound(tmp_path):
    _, job = ingest(tmp_path, "scan.pdf", make_pdf([[]] * 5, text_layer=False),
                    ocr=OcrSettings(max_pages=3))

    assert job.status is JobStatus.FAILED
    assert "5 PDF pages have no text layer, over the OCR limit of 3 pages" in job.error.message


def test_an_image_too_large_for_ocr_is_refused_before_it_is_decoded(tmp_path):
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (12_000, 12_000), 1).save(out, "PNG")  # 144 Mpx, a few KB

    _, job = ingest(tmp_path, "huge.png", out.getvalue())

    assert job.status is JobStatus.FAILED
    assert "12000x12000 pixels, over the OCR limit" in job.error.message


@needs_tesseract
def test_ocr_past_its_time_bound_fails_naming_the_setting(tmp_path):
    _, job = ingest(tmp_path, "scan.pdf", make_scan([[SENTENCE]] * 3, "PDF"),
                    ocr=OcrSettings(max_seconds=0.01))

    assert job.status is JobStatus.FAILED
    assert "OCR took over 0.01 s for this document (CONVERSA_OCR__MAX_SECONDS" in job.error.message

