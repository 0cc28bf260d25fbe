"""Hostile files sent to a real Celery worker: each job fails with its reason, the worker and
its pool process survive, and a good document queued behind them is done."""

from pathlib import Path

import pytest

from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.documents import encrypt_pdf, make_docx_bomb, make_pdf
from tests.support.workers import celery_worker, pool_children, producer, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROSE = "The keeper climbed the spiral stairs and lit the lamp before the storm came in. "


def test_hostile_files_fail_with_reasons_and_the_worker_survives(env, tmp_path):
    services, _ = producer(env)
    files = {
        "bomb.docx": make_docx_bomb(300 * 1024 * 1024),
        "locked.pdf": encrypt_pdf(make_pdf([["Secret figures."]]), "s3cret"),
        "broken.pdf": make_pdf([[PROSE]])[:300],
        "scan.pdf": make_pdf([[]], text_layer=False),
        "good.pdf": make_pdf([[PROSE * 3], [PROSE * 3]]),
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
    for name, reason in [("bomb.docx", "zip bomb"), ("locked.pdf", "encrypted PDF"),
                         ("broken.pdf", "corrupt PDF"), ("scan.pdf", "no text layer")]:
        job = by_name[name]
        assert job.status is JobStatus.FAILED, name
        assert job.error.stage is Stage.EXTRACT
        assert reason in job.error.message
    assert by_name["good.pdf"].status is JobStatus.DONE
    hits = search(services, "default", "keeper lit the lamp", top_k=3)
    assert {hit.page for hit in hits} <= {1, 2}
    assert hits[0].source.endswith("good.pdf")
