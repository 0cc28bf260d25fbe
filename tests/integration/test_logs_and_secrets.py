"""Structured JSON logs with each stage's ids on every line, and neither a secret from the
settings nor a sentence from a document in the logs, the broker's messages or the result
backend."""

import base64
import json

import pytest
import redis

from adapters.celery.topology import STAGE_QUEUES
from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from tests.support.workers import celery_worker, producer, stack_env, wait_terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "sk-sentinel-7f3c9e1d2b4a6c8e0f1a3b5c7d9e1f3a"
SENTENCE = "The violet zebra sentinel crossed the moonlit harbour at exactly noon"
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 20


@pytest.fixture
def env(redis_url, mongo_url, mongo_database_name, tmp_path):
    redis.Redis.from_url(redis_url).flushall()
    env = stack_env(redis_url, mongo_url, mongo_database_name, tmp_path / "data")
    env.update({"CONVERSA_LOG_FORMAT": "json", "CONVERSA_OPENAI__API_KEY": SECRET,
                "CONVERSA_S3__SECRET_ACCESS_KEY": SECRET})
    return env


def redis_contents(url: str) -> str:
    """Every value in the broker's Redis, with message bodies decoded from base64."""
    client = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key).decode()
        if kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = list(client.hgetall(key).values())
        elif kind == "string":
            values = [client.get(key)]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        else:
            values = []
        for raw in values:
            text = raw.decode("utf-8", "replace")
            parts.append(text)
            parts.extend(_decoded_bodies(text))
    return "\n".join(parts)


def _decoded_bodies(text: str) -> list[str]:
    try:
        loaded = json.loads(text)
    except ValueError:
        return []
    messages = loaded if isinstance(loaded, list) else [loaded]
    found = []
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("body"), str):
            try:
                found.append(base64.b64decode(message["body"]).decode("utf-8", "replace"))
            except ValueError:
                found.append(message["body"])
    return found


def test_json_logs_carry_stage_ids_and_nothing_secret_leaks(env, tmp_path):
    services, app = producer(env)
    document = tmp_path / "harbour.txt"
    document.write_text(f"{SENTENCE}. " + PROSE)
    job = enqueue(services, file_event(document, "acme", 10**6))
    early = enqueue(services, file_event(document, "zeta", 10**6))
    # An embed message ahead of its job: retried (attempts 2 and 3), a stage with several tries.
    app.send_task(STAGE_QUEUES[Stage.EMBED].task_name, args=(early.job_id,),
                  queue=STAGE_QUEUES[Stage.EMBED].queue)
    queued = redis_contents(env["CONVERSA_BROKER_URL"])
    assert job.job_id in queued  # the messages were read, and they carry the job id
    log = tmp_path / "worker.log"

    with celery_worker(env, log, concurrency=2):
        finished = wait_terminal(services, [job.job_id, early.job_id], timeout=180)
    assert [j.status for j in finished] == [JobStatus.DONE, JobStatus.DONE]
    after = redis_contents(env["CONVERSA_BROKER_URL"])
    keys = redis.Redis.from_url(env["CONVERSA_BROKER_URL"]).scan_iter("celery-task-meta-*")
    assert list(keys)  # the result backend holds the stage results that were read

    text = log.read_text()
    for where, content in (("broker messages", queued), ("broker and results", after),
                           ("worker log", text)):
        assert SECRET not in content, where
        assert "violet zebra" not in content, where

    # Only Celery's start-up banner and its shutdown notice are printed, not logged.
    plain = [line for line in text.splitlines() if not line.startswith("{")]
    assert not [line for line in plain if "conversa.stage." in line and "Task" in line]
    assert not [line for line in plain if job.job_id in line or early.job_id in line]
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    in_stage = [r for r in records if r.get("stage")]
    by_job = {(r["job_id"], r["tenant"]) for r in in_stage}
    assert by_job == {(job.job_id, "acme"), (early.job_id, "zeta")}
    assert {r["stage"] for r in in_stage if r["job_id"] == job.job_id} == {
        s.value for s in Stage}
    assert {r["attempt"] for r in in_stage if r["job_id"] == early.job_id
            and r["stage"] == "embed"} >= {1, 2}
    task_lines = [r for r in records if r["process"].startswith("ForkPoolWorker")
                  and r["message"].startswith("Task conversa.stage.")]
    assert task_lines
    for record in task_lines:  # Celery's own "succeeded"/"retry" lines carry the ids too
        assert {"job_id", "tenant", "stage", "attempt", "task_id"} <= set(record), record
        assert record["task_id"] in record["message"]
