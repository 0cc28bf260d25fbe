"""The new formats on a real Celery worker (Valkey, the MongoDB-wire server, the local
stores): a deck, a workbook and an e-mail with an attachment are done and found by search,
and a zip bomb dressed as a workbook fails with its reason while the worker survives."""

from pathlib import Path

import pytest

from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.documents import make_docx
from tests.support.office_documents import make_eml, make_pptx, make_xlsx, pad_zip_part
from tests.support.workers import celery_worker, pool_children, producer, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FILLER = "The harbour log records every vessel that comes and goes through the long season. "


def test_new_formats_on_a_real_worker(env, tmp_path):
    services, _ = producer(env)
    workbook = make_xlsx({"Stock": [["Part", "Quantity", "Shelf"]]
                          + [[f"Bolt {n}", n, f"C{n}"] for n in range(40)]
                          + [["Brass wick trimmer", 7, "Z9"]]})
    files = {
        "deck.pptx": make_pptx([("Intro", [FILLER * 6], ""),
                                ("Lamp", ["The paraffin lamp burns for twelve hours."], "")]),
        "stock.xlsx": workbook,
        "note.eml": make_eml("Fog signal", "The fog horn sounds every thirty seconds.",
                             attachments=[("rota.docx", make_docx(
                                 [("p", "Ada keeps the Tuesday night watch.")]),
                                 "application/octet-stream")]),
        "bomb.xlsx": pad_zip_part(workbook, "xl/worksheets/sheet1.xml", 16 * 1024 * 1024),
    }
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)

    with celery_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
        pool_before = pool_children(worker.pid)
        jobs = [enqueue(services, file_event(p, "default", 10**8)) for p in paths]
        finished = wait_terminal(services, [j.job_id for j in jobs], timeout=180)
        assert worker.poll() is None
        assert pool_children(worker.pid) == pool_before

    by_name = {Path(job.source).name: job for job in finished}
    for name in ("deck.pptx", "stock.xlsx", "note.eml"):
        assert by_name[name].status is JobStatus.DONE, (name, by_name[name].error)
    bomb = by_name["bomb.xlsx"]
    assert bomb.status is JobStatus.FAILED
    assert bomb.error.stage is Stage.EXTRACT
    assert "(a zip bomb?)" in bomb.error.message

    lamp = search(services, "default", "paraffin lamp twelve hours", top_k=3)
    assert lamp[0].source.endswith("deck.pptx")
    assert lamp[0].page == 2
    rows = search(services, "default", "Brass wick trimmer quantity shelf", top_k=3)
    assert any("Part: Brass wick trimmer | Quantity: 7 | Shelf: Z9" in hit.text for hit in rows)
    watch = search(services, "default", "who keeps the Tuesday night watch", top_k=3)
    assert any("Tuesday night watch" in hit.text and hit.source.endswith("note.eml")
               for hit in watch)
