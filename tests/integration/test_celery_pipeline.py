"""The pipeline on real Celery workers, Valkey and the MongoDB-wire server: the happy path,
bad input, retries, duplicate deliveries and workers killed mid-stage."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from adapters.celery.topology import STAGE_QUEUES
from domain.documents import vector_ids
from domain.events import UploadEvent
from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.sources import file_uri
from tests.support.workers import (
    celery_worker,
    pool_children,
    producer,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 40


@pytest.fixture
def services(env):
    built, _ = producer(env)
    return built


def expected_ids(job) -> list[str]:
    return sorted(vector_ids(job.document_id, job.job_id, job.chunk_count))


def objects_under(env) -> list[str]:
    root = Path(env["CONVERSA_DATA_DIR"]) / "objects"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not p.relative_to(root).parts[0].startswith("."))


def lance_rows(services, tenant: str) -> int:
    """Rows in the tenant's table, duplicates included (count() of the port may dedupe)."""
    return services.vectors.count(tenant)


def test_sample_documents_end_done_and_searchable(env, services, tmp_path):
    files = sorted(SAMPLES.iterdir())
    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        jobs = [enqueue(services, file_event(f, "default", 10**8)) for f in files]
        finished = wait_terminal(services, [j.job_id for j in jobs], timeout=180)

    assert [job.status for job in finished] == [JobStatus.DONE] * len(files)
    all_ids = sorted(i for job in finished for i in expected_ids(job))
    assert services.vectors.list_ids("default") == all_ids
    assert lance_rows(services, "default") == len(all_ids)
    from pipeline.search import search

    hits = search(services, "default", "how do I keep a sourdough starter alive", top_k=3)
    assert "sourdough" in hits[0].source.lower() or "bread" in hits[0].source.lower()


def test_bad_input_fails_with_a_reason_and_the_worker_keeps_going(env, services, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"GIF89a" + bytes(range(256)) * 20)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("na\xefve caf\xe9".encode("latin-1") * 50)
    good = tmp_path / "good.txt"
    good.write_text(PROSE)

    with celery_worker(env, tmp_path / "worker.log", concurrency=1) as worker:
        pids_before = pool_children(worker.pid)
        jobs = [enqueue(services, file_event(p, "default", 10**8))
                for p in (empty, binary, latin, good)]
        finished = wait_terminal(services, [j.job_id for j in jobs])
        assert worker.poll() is None
        assert pool_children(worker.pid) == pids_before

    reasons = {Path(j.source).name: (j.status, j.error) for j in finished}
    assert reasons["empty.txt"][0] is JobStatus.FAILED
    assert "empty file" in reasons["empty.txt"][1].message
    assert reasons["image.txt"][1].message == "unsupported content type: image/gif"
    assert reasons["image.txt"][1].stage is Stage.EXTRACT
    assert reasons["latin1.txt"][0] is JobStatus.DONE  # the encoding is detected
    assert reasons["good.txt"][0] is JobStatus.DONE


def test_a_transient_error_is_retried_with_backoff_then_fails_the_job(env, services, tmp_path):
    event = file_event(_write(tmp_path / "a.txt", PROSE), "default", 10**8)
    job = services.jobs.create(_job(event, "transient0001"))
    _, app = producer(env)
    # The embed stage of a job that is still queued waits for it: a transient condition.
    app.send_task(STAGE_QUEUES[Stage.EMBED].task_name, args=(job.job_id,),
                  queue=STAGE_QUEUES[Stage.EMBED].queue)

    with celery_worker(env, tmp_path / "worker.log"):
        [failed] = wait_terminal(services, [job.job_id], timeout=60)

    assert failed.status is JobStatus.FAILED
    assert failed.error.stage is Stage.EMBED
    assert failed.error.type == "TransientError"
    assert failed.attempts["embed"] == 3  # the first try and max_retries=2 retries


def test_duplicate_deliveries_change_nothing(env, services, tmp_path):
    path = _write(tmp_path / "keepers.txt", PROSE)
    job = services.jobs.create(_job(file_event(path, "default", 10**8), "duplicate0001"))
    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        # Two complete chains for the same job at the same moment.
        services.dispatcher.dispatch(job.job_id, Stage.STORE)
        services.dispatcher.dispatch(job.job_id, Stage.STORE)
        [done] = wait_terminal(services, [job.job_id])
        assert done.status is JobStatus.DONE
        before = (services.jobs.get(job.job_id), objects_under(env),
                  services.vectors.list_ids("default"), lance_rows(services, "default"))

        # And every stage's message again, twice each, after the job is done.
        _, app = producer(env)
        for stage in Stage:
            spec = STAGE_QUEUES[stage]
            for _ in range(2):
                app.send_task(spec.task_name, args=(job.job_id,), queue=spec.queue)
        wait_for(lambda: services.jobs.get(job.job_id).attempts.get("index", 0) >= 4,
                 60, "the repeated index messages to run")
        time.sleep(1)

    after = (services.jobs.get(job.job_id), objects_under(env),
             services.vectors.list_ids("default"), lance_rows(services, "default"))
    assert after[1:] == before[1:]
    assert after[0].model_dump(exclude={"attempts", "updated_at"}) == before[0].model_dump(
        exclude={"attempts", "updated_at"})
    assert before[2] == expected_ids(done)
    assert before[3] == done.chunk_count


@pytest.mark.parametrize("victim", ["pool child", "whole worker"])
def test_a_worker_killed_mid_stage_loses_nothing(env, services, tmp_path, victim):
    """The store stage blocks reading a FIFO, so the kill lands while it runs."""
    fifo = tmp_path / "slow-upload.txt"
    os.mkfifo(fifo)
    event = UploadEvent(tenant="default", source=str(fifo), source_uri=file_uri(fifo),
                        source_name=fifo.name)
    log = tmp_path / "worker.log"
    with celery_worker(env, log, name="first") as worker:
        job = enqueue(services, event)
        wait_for(lambda: services.jobs.get(job.job_id).attempts.get("store"), 30,
                 "the store stage to start")
        killed_at = time.monotonic()
        if victim == "pool child":
            [child] = pool_children(worker.pid)
            os.kill(child, signal.SIGKILL)
            _feed_fifo_when_read(fifo, PROSE.encode())
            # Usually back in ~1 s (WorkerLostError, requeued); when the child dies before
            # its parent heard it accepted the task, the message returns only after the
            # visibility timeout (50 s here), then runs all five stages on a loaded machine.
            [done] = wait_terminal(services, [job.job_id], timeout=180)
        else:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    if victim == "whole worker":
        _feed_fifo_when_read(fifo, PROSE.encode())
        with celery_worker(env, log, name="second"):
            [done] = wait_terminal(services, [job.job_id], timeout=120)
    recovery = time.monotonic() - killed_at

    assert done.status is JobStatus.DONE
    assert services.jobs.list_jobs() == [done]
    assert done.attempts["store"] == 2
    content = [key for key in objects_under(env) if "/derived/" not in key]
    assert content == [done.object_key]
    assert services.vectors.list_ids("default") == expected_ids(done)
    assert lance_rows(services, "default") == done.chunk_count
    print(f"recovered from killing the {victim} in {recovery:.1f} s")


def _feed_fifo_when_read(fifo: Path, data: bytes) -> None:
    def feed() -> None:
        with fifo.open("wb") as writer:  # blocks until the redelivered stage opens it
            writer.write(data)

    threading.Thread(target=feed, daemon=True).start()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _job(event: UploadEvent, job_id: str):
    from domain.documents import document_id
    from domain.job import IngestionJob

    return IngestionJob(job_id=job_id, tenant=event.tenant,
                        document_id=document_id(event.tenant, event.source),
                        source=event.source, source_uri=event.source_uri,
                        source_name=event.source_name)
