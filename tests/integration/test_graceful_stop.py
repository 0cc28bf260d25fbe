"""SIGTERM to a worker mid-stage under load (what a scale-in or a rolling update sends): the
running stage finishes, the messages it had reserved go back to the queue, and another worker
takes over with nothing lost and nothing done twice."""

import os
import re
import signal
import threading
from pathlib import Path

import pytest

from domain.events import UploadEvent
from domain.status import STAGES, JobStatus
from pipeline.producer import enqueue, file_event
from pipeline.sources import file_uri
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOAD = 8
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 30


def test_sigterm_mid_stage_under_load_loses_and_repeats_nothing(env, tmp_path):
    services, _ = producer(env)
    fifo = tmp_path / "slow-upload.txt"
    os.mkfifo(fifo)
    slow = UploadEvent(tenant="default", source=str(fifo), source_uri=file_uri(fifo),
                       source_name=fifo.name)
    log = tmp_path / "worker.log"
    with celery_worker(env, log, name="leaving", concurrency=2) as worker:
        blocked = enqueue(services, slow)
        jobs = [blocked]
        for i in range(LOAD):
            path = tmp_path / f"log-{i}.txt"
            path.write_text(f"Logbook {i}. " + PROSE)
            jobs.append(enqueue(services, file_event(path, "default", 10**6)))
        wait_for(lambda: services.jobs.get(blocked.job_id).attempts.get("store"), 60,
                 "the store stage to block on the FIFO")

        worker.send_signal(signal.SIGTERM)  # to the main process only, as Kubernetes does
        wait_for(lambda: b"worker: Warm shutdown" in log.read_bytes(), 30,
                 "the worker to begin its warm shutdown")
        assert worker.poll() is None  # still finishing the stage it runs
        _feed(fifo, PROSE.encode())
        assert worker.wait(timeout=60) == 0
    stopped = {job.job_id: services.jobs.get(job.job_id) for job in jobs}
    assert stopped[blocked.job_id].status is not JobStatus.QUEUED  # its stage completed

    with celery_worker(env, log, name="arriving", concurrency=2):
        finished = wait_terminal(services, [job.job_id for job in jobs], timeout=240)

    assert [job.status for job in finished] == [JobStatus.DONE] * len(jobs)
    for job in finished:  # every stage ran exactly once: nothing repeated, nothing skipped
        assert job.attempts == {stage.value: 1 for stage in STAGES}, job.job_id
    assert len(services.jobs.list_jobs(limit=100)) == len(jobs)
    vector_ids = services.vectors.list_ids("default")  # one vector per chunk, none twice
    assert len(vector_ids) == len(set(vector_ids)) == sum(job.chunk_count for job in finished)
    assert services.vectors.count("default") == len(vector_ids)
    assert {re.split(r"[.#]", i, maxsplit=1)[0] for i in vector_ids} == {
        job.document_id for job in finished}
    root = Path(env["CONVERSA_DATA_DIR"]) / "objects" / "default"
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == sorted(
        {job.object_key.rsplit("/", 1)[1] for job in finished})


def _feed(fifo: Path, data: bytes) -> None:
    def write() -> None:
        with fifo.open("wb") as writer:
            writer.write(data)

    threading.Thread(target=write, daemon=True).start()


