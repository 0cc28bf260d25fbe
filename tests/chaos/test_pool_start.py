"""Found by the chaos suite (pool processes killed under load): each new pool process warmed the
embedder inside ``worker_process_init``; when that took longer than the pool's alive timeout
(4 s: a slow embedding API, a model loading on a busy machine) the pool killed the process and
started another, which did the same, so the worker stopped working until the warm-up got fast
again. A pool process now reports itself up at once and warms up beside it."""

import os
import signal
from pathlib import Path

import pytest

from domain.status import JobStatus
from pipeline.producer import enqueue, upload_file_event
from tests.chaos.stack import production_env
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_pinecone import FakePinecone
from tests.support.moto_server import unique_bucket
from tests.support.workers import celery_worker, pool_children, producer, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEXT = "Harbour pilots read the tide tables before every crossing of the bar. " * 20


def test_a_slow_warm_up_does_not_kill_every_new_pool_process(env, s3_endpoint, tmp_path: Path
                                                             ) -> None:
    with FakePinecone(dimension=256) as pinecone, FakeOpenAI() as openai:
        env = production_env(env, s3_endpoint, unique_bucket(), pinecone, openai)
        env["CONVERSA_OPENAI__EMBEDDING_DIMENSION"] = "256"
        services, _ = producer(env)
        document = tmp_path / "tides.md"
        document.write_text(TEXT)
        log = tmp_path / "worker.log"
        with celery_worker(env, log, concurrency=2) as worker:
            openai.slow_next(2, 7.0)  # the next two pool processes' warm-up calls
            for child in pool_children(worker.pid):
                os.kill(child, signal.SIGKILL)
            job = enqueue(services, upload_file_event(services, document, "default"))
            [done] = wait_terminal(services, [job.job_id], timeout=90)
        text = log.read_text(errors="replace")

    assert done.status is JobStatus.DONE, done.error
    assert "Timed out waiting for UP message" not in text
    assert text.count("exited with 'signal 9") == 2  # only the two this test killed
