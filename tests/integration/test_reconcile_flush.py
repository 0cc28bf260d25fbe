"""Redis loses every message mid-run (FLUSHALL); the reconciler, run by beat on the timing it
derives from the worker's limits, brings every job to `done` with no command run and no
duplicate record, object or vector."""

import re
import time
from pathlib import Path

import pytest
import redis

from domain.status import JobStatus
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_beat, celery_worker, producer, settings_from, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 10
#: Limits small enough that the derived timing is short: stuck after 20 + 2 s, beat every 3 s.
TIGHT_LIMITS = {
    "CONVERSA_WORKER__SOFT_TIME_LIMIT": "15",
    "CONVERSA_WORKER__TIME_LIMIT": "20",
    "CONVERSA_WORKER__RETRY_BACKOFF_MAX": "2",
    "CONVERSA_WORKER__VISIBILITY_TIMEOUT": "25",
}
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 30


def test_a_redis_flush_mid_run_is_recovered_by_the_reconciler(env, redis_url, tmp_path):
    env = {**env, **TIGHT_LIMITS}
    timing = settings_from(env).reconciler()
    assert timing.recovery_bound_seconds == 25  # the visibility timeout
    services, _ = producer(env)
    files = []
    for i in range(BATCH):
        path = tmp_path / "docs" / f"log-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"Logbook {i}: the tide came in at {i} o'clock. " + PROSE)
        files.append(path)

    with celery_worker(env, tmp_path / "worker.log", concurrency=2), \
            celery_beat(env, tmp_path):
        jobs = [enqueue(services, file_event(path, "default", 10**6)) for path in files]
        ids = [job.job_id for job in jobs]

        def statuses() -> list[JobStatus]:
            return [services.jobs.get(job_id).status for job_id in ids]

        wait_for(lambda: JobStatus.DONE in statuses(), 120, "the first job to finish")
        before_flush = statuses()
        assert before_flush.count(JobStatus.DONE) < BATCH  # mid-run
        redis.Redis.from_url(env["CONVERSA_BROKER_URL"]).flushall()
        flushed_at = time.monotonic()

        # Nobody runs a command: beat's reconciler finds the jobs that lost their messages.
        def all_finished() -> bool:
            return all(status.is_terminal for status in statuses())

        # the bound, plus the remaining work and the wait for a free worker process
        wait_for(all_finished, timing.recovery_bound_seconds + 60, "every job to finish",
                 interval=0.5)
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
        assert document.job_id == job.job_id
        assert [d.document_id for d in services.documents.using_content(
            "default", job.sha256)] == [job.document_id]
    root = Path(env["CONVERSA_DATA_DIR"]) / "objects" / "default"
    content = sorted(p.name for p in root.iterdir() if p.is_file())
    assert content == sorted({job.object_key.rsplit("/", 1)[1] for job in finished})
    print(f"\n{before_flush.count(JobStatus.DONE)}/{BATCH} done at the flush; every job done "
          f"{recovery:.1f} s after it (a lost job waits at most "
          f"{timing.recovery_bound_seconds:.0f} s)")
