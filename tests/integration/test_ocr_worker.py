"""OCR on a real Celery worker (Valkey, the MongoDB-wire server, the local stores): a sentence
drawn into a PNG and into a two-page image-only PDF is read by Tesseract, and search finds it
on the right page."""

import shutil
from pathlib import Path

import pytest

from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.scans import make_scan
from tests.support.workers import celery_worker, producer, wait_terminal

pytestmark = [
    pytest.mark.integration, pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tesseract") is None,
                       reason="needs Tesseract: scripts/system-packages installs "
                              "tesseract-ocr tesseract-ocr-eng"),
]


def test_scans_on_a_real_worker(env, tmp_path):
    services, _ = producer(env)
    files = {
        "receipt.png": make_scan([["Receipt 7731: two brass hinges for the lantern door."]],
                                 "PNG"),
        "minutes.pdf": make_scan([["The board met on Tuesday to review the harbour fees."],
                                  ["The fog bell will be recast by the Whitby foundry."]], "PDF"),
    }
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)

    with celery_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
        jobs = [enqueue(services, file_event(p, "default", 10**8)) for p in paths]
        finished = wait_terminal(services, [j.job_id for j in jobs], timeout=180)
        assert worker.poll() is None

    for job in finished:
        assert job.status is JobStatus.DONE, (Path(job.source).name, job.error)
    hinges = search(services, "default", "brass hinges for the lantern door", top_k=1)[0]
    assert hinges.source.endswith("receipt.png")
    assert "Receipt 7731" in hinges.text
    bell = search(services, "default", "who will recast the fog bell", top_k=1)[0]
    assert bell.source.endswith("minutes.pdf")
    assert "Whitby foundry" in bell.text
    assert bell.page == 2
