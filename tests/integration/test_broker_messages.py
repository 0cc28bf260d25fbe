"""What travels on the broker: JSON messages carrying a job id, never content; pickle refused."""

import base64
import json
from pathlib import Path

import pytest
import redis

from adapters.celery.topology import STAGE_QUEUES
from adapters.redis.queues import priority_lists
from domain.events import MAX_MESSAGE_BYTES
from domain.status import JobStatus, Stage
from pipeline.maintenance import compact_index
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENTINEL = "Zanzibar-quartz-sentinel-7731"


def test_a_stage_message_is_small_json_with_the_job_id_only(env, tmp_path):
    services, _ = producer(env)
    document = tmp_path / "secret.txt"
    document.write_text(f"The vault code is {SENTINEL}. " * 200)

    job = enqueue(services, file_event(document, "default", 10**8))

    client = redis.Redis.from_url(env["CONVERSA_BROKER_URL"])
    raw = [message for key in priority_lists(STAGE_QUEUES[Stage.STORE].queue)
           for message in client.lrange(key, 0, -1)]  # one list per priority step
    assert len(raw) == 1
    envelope = json.loads(raw[0])
    body = base64.b64decode(envelope["body"])
    assert envelope["content-type"] == "application/json"
    assert len(raw[0]) < MAX_MESSAGE_BYTES
    assert SENTINEL.encode() not in raw[0]
    assert SENTINEL.encode() not in body
    args, kwargs, embed = json.loads(body)
    assert args == [job.job_id]
    assert kwargs == {}
    remaining = [signature["task"] for signature in embed["chain"]]
    assert remaining == [STAGE_QUEUES[s].task_name for s in reversed(list(Stage)[1:])]
    assert all(signature["args"] == [job.job_id] for signature in embed["chain"])


def test_the_worker_refuses_pickle_and_keeps_working(env, tmp_path):
    services, app = producer(env)
    app.conf.accept_content = ["json", "pickle"]
    poisoned = services.jobs.create(_queued_job(services, tmp_path, "pickled.txt"))
    spec = STAGE_QUEUES[Stage.STORE]
    app.send_task(spec.task_name, args=(poisoned.job_id,), queue=spec.queue,
                  serializer="pickle")
    log = tmp_path / "worker.log"

    with celery_worker(env, log) as worker:
        good = tmp_path / "good.txt"
        good.write_text("Compost heaps need air, water and a mix of green and brown. " * 20)
        [done] = wait_terminal(services, [enqueue(services, file_event(
            good, "default", 10**8)).job_id])
        wait_for(lambda: b"pickle" in log.read_bytes(), 30, "the refusal in the log")
        assert worker.poll() is None

    assert done.status is JobStatus.DONE
    refused = services.jobs.get(poisoned.job_id)
    assert refused.status is JobStatus.QUEUED
    assert refused.attempts == {}
    assert b"ContentDisallowed" in log.read_bytes() or b"untrusted" in log.read_bytes()


def test_compaction_keeps_every_vector(env, tmp_path):
    services, _ = producer(env)
    files = []
    for i in range(3):
        path = tmp_path / f"note{i}.txt"
        path.write_text(f"Note {i}: heat pumps move heat rather than making it. " * 60)
        files.append(path)
    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        jobs = wait_terminal(services, [enqueue(services, file_event(f, "default", 10**8)).job_id
                                        for f in files])
    before = services.vectors.list_ids("default")

    assert compact_index(services) >= 1
    assert services.vectors.list_ids("default") == before
    assert len(before) == sum(job.chunk_count for job in jobs)


def _queued_job(services, tmp_path: Path, name: str):
    from domain.documents import document_id
    from domain.job import IngestionJob

    path = tmp_path / name
    path.write_text("never read")
    event = file_event(path, "default", 10**8)
    return IngestionJob(job_id="pickled00001", tenant="default",
                        document_id=document_id("default", event.source), source=event.source,
                        source_uri=event.source_uri, source_name=event.source_name)
