"""Redis loses every message mid-run (FLUSHALL); the reconciler brings every job to `done`
with no duplicate record, object or vector."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 10
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 30


def reconcile(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "cli", "reconcile", "--older-than", "2"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_redis_flush_mid_run_is_recovered_by_the_reconciler(env, redis_url, tmp_path):
    services, _ = producer(env)
    files = []
    for i in range(BATCH):
        path = tmp_path / "docs" / f"log-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"Logbook {i}: the tide came in at {i} o'clock. " + PROSE)
        files.append(path)

    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        jobs = [enqueue(services, file_event(path, "default", 10**6)) for path in files]
        ids = [job.job_id for job in jobs]

        def statuses() -> list[JobStatus]:
            return [services.jobs.get(job_id).status for job_id in ids]

        wait_for(lambda: JobStatus.DONE in statuses(), 120, "the first job to finish")
        before_flush = statuses()
        assert before_flush.count(JobStatus.DONE) < BATCH  # mid-run
        redis.Redis.from_url(env["CONVERSA_BROKER_URL"]).flushall()
        flushed_at = time.monotonic()

        # What beat does on a schedule: reconcile until every job has finished.
        rounds = []

        def reconciled() -> bool:
            rounds.append(reconcile(env).splitlines()[-1])
            return all(status.is_terminal for status in statuses())

        wait_for(reconciled, 240, "every job to finish", interval=1.0)
        recovery = time.monotonic() - flushed_at

    finished = [services.jobs.get(job_id) for job_id in ids]
    assert [job.status for job in finished] == [JobStatus.DONE] * BATCH
    assert len(services.jobs.list_jobs(limit=10 * BATCH)) == BATCH
    vector_ids = services.vectors.list_ids("default")  # one vector per chunk, none twice
    assert len(vector_ids) == len(set(vector_ids)) == sum(job.chunk_count for job in finished)
    assert services.vectors.count("default") == len(vector_ids)
    assert {re.split(r"[.#]", i, maxsplit=1)[0] for i in vector_ids} == {
        job.document_id for job in finished}
    for job in finished:
        document = services.documents.get("default", job.document_id)
        assert document is not None
        assert services.documents.count_by_sha("default", document.sha256) == 1
    root = Path(env["CONVERSA_DATA_DIR"]) / "objects" / "default"
    content = sorted(p.name for p in root.iterdir() if p.is_file())
    assert content == sorted({job.object_key.rsplit("/", 1)[1] for job in finished})
    print(f"\n{before_flush.count(JobStatus.DONE)}/{BATCH} done at the flush; every job done "
          f"{recovery:.1f} s after it; reconciler rounds: {rounds}")
