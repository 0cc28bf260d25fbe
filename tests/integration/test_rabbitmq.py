"""RabbitMQ as the broker (``CONVERSA_BROKER_URL=amqp://...``), on the RabbitMQ server this
machine runs (127.0.0.1:5672, guest/guest): queue counts and the probe from RabbitMQ's own
answers, the reconciler's view of what is in flight, and the whole pipeline, with metrics and
rate limits on a Redis named by CONVERSA_REDIS_URL.

Each run gets a virtual host of its own (created with rabbitmqctl, deleted afterwards), so
runs on the same server never see each other's queues; each test starts from empty queues.
"""

import contextlib
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from adapters.celery.broker_counts import jobs_in_flight as broker_jobs_in_flight
from adapters.celery.topology import ALL_QUEUES, STAGE_QUEUES
from adapters.rabbitmq.queues import queue_depths as amqp_queue_depths
from cli.metrics import registry_for
from domain.status import JobStatus, Stage
from pipeline.producer import enqueue, file_event
from pipeline.search import search
from tests.support.workers import celery_worker, producer, wait_for, wait_terminal

pytestmark = [pytest.mark.integration]

RABBITMQ = ("127.0.0.1", 5672)
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "--quiet", *args], check=True, capture_output=True,
                   timeout=120)


@pytest.fixture(scope="module")
def amqp_vhost_url() -> Iterator[str]:
    try:
        socket.create_connection(RABBITMQ, timeout=5).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not running on {RABBITMQ[0]}:{RABBITMQ[1]} ({exc}); this "
                    "kind of machine starts it (`rabbitmq-server -detached`)")
    vhost = f"conversa-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture
def amqp_url(amqp_vhost_url: str) -> str:
    """The run's vhost with every queue of ours empty."""
    with Connection(amqp_vhost_url, connect_timeout=5) as connection:
        for name in ALL_QUEUES:
            channel = connection.channel()
            try:
                channel.queue_purge(queue=name)
            except connection.channel_errors:
                pass  # not declared yet
            finally:
                with contextlib.suppress(*connection.channel_errors):
                    channel.close()
    return amqp_vhost_url


@pytest.fixture
def amqp_env(env: dict[str, str], amqp_url: str, redis_url: str) -> dict[str, str]:
    return {**env, "CONVERSA_BROKER_URL": amqp_url, "CONVERSA_REDIS_URL": redis_url}


def _enqueue_samples(services, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    files = sorted(SAMPLES.iterdir())[:count]
    return [enqueue(services, file_event(path, "default", services.settings.max_upload_bytes)
                    ).job_id for path in files]


def test_counts_and_jobs_in_flight_come_from_rabbitmq_and_leave_the_messages(amqp_env):
    services, _ = producer(amqp_env)
    job_ids = _enqueue_samples(services, 3)
    url = amqp_env["CONVERSA_BROKER_URL"]
    store = STAGE_QUEUES[Stage.STORE].queue

    wait_for(lambda: {d.queue: d.waiting for d in amqp_queue_depths(url)}[store] == 3, 30,
             "RabbitMQ to count the three messages")
    depths = {depth.queue: depth for depth in amqp_queue_depths(url)}
    assert depths[store].consumers == 0
    assert depths[store].unacked is None  # RabbitMQ does not tell, and we do not guess
    assert all(depths[q].waiting == 0 for q in ALL_QUEUES if q != store)

    assert broker_jobs_in_flight(url) == set(job_ids)
    # Reading them put them back: still three, and still the same jobs.
    assert {d.queue: d.waiting for d in amqp_queue_depths(url)}[store] == 3
    assert broker_jobs_in_flight(url) == set(job_ids)


def test_the_reconciler_re_enqueues_only_jobs_whose_messages_rabbitmq_lost(amqp_env):
    from workers.maintenance import reconcile_lost

    services, _ = producer(amqp_env)
    kept = _enqueue_samples(services, 2)
    url = amqp_env["CONVERSA_BROKER_URL"]
    store = STAGE_QUEUES[Stage.STORE].queue
    wait_for(lambda: {d.queue: d.waiting for d in amqp_queue_depths(url)}[store] == 2, 30,
             "RabbitMQ to count the two messages")
    assert reconcile_lost(services, older_than_seconds=0) == []  # their messages are there

    with Connection(url, connect_timeout=5) as connection:  # the broker loses them
        connection.default_channel.queue_purge(queue=store)
    redriven = reconcile_lost(services, older_than_seconds=0)

    assert sorted(redriven) == sorted((job_id, Stage.STORE) for job_id in kept)
    wait_for(lambda: {d.queue: d.waiting for d in amqp_queue_depths(url)}[store] == 2, 30,
             "the re-enqueued messages")


@pytest.mark.slow
def test_the_pipeline_runs_on_rabbitmq_with_metrics_and_probe(amqp_env, tmp_path):
    services, _ = producer(amqp_env)
    with celery_worker(amqp_env, tmp_path / "worker.log", concurrency=2, name="rabbit"):
        job_ids = _enqueue_samples(services, 3)
        finished = wait_terminal(services, job_ids, timeout=300)
        assert [job.status for job in finished] == [JobStatus.DONE] * 3, [
            job.error for job in finished]

        queues = subprocess.run([sys.executable, "-m", "cli", "queues", "--json"],
                                env=amqp_env, capture_output=True, text=True, timeout=120,
                                check=True)
        rows = {row["queue"]: row for row in map(json.loads, queues.stdout.splitlines())}
        assert set(rows) == set(ALL_QUEUES)
        assert all(row["waiting"] == 0 and row["consumers"] == 1 for row in rows.values())

        probe = wait_for(lambda: subprocess.run(
            [sys.executable, "-m", "cli", "probe"],
            env=amqp_env, capture_output=True, text=True, timeout=120, check=False
        ).returncode == 0, 60, "the probe to pass")
        assert probe

    hits = search(services, "default", "how do I keep a sourdough starter alive", top_k=3)
    assert hits

    # Stage timings went to the Redis of CONVERSA_REDIS_URL, queue counts came from RabbitMQ.
    assert redis.Redis.from_url(amqp_env["CONVERSA_REDIS_URL"]).exists(
        "conversa:metrics:stage_seconds")
    families = {family.name: family for family in registry_for(services.settings).collect()}
    up = {sample.labels["source"]: sample.value
          for sample in families["conversa_source_up"].samples}
    assert up == {"broker": 1.0, "redis": 1.0, "mongodb": 1.0}
    waiting = [s for s in families["conversa_queue_messages"].samples
               if s.labels["state"] == "waiting"]
    assert len(waiting) == len(ALL_QUEUES)
    assert not [s for s in families["conversa_queue_messages"].samples
                if s.labels["state"] == "unacked"]
    counts = [s for s in families["conversa_stage_duration_seconds"].samples
              if s.name.endswith("_count")]
    assert sum(s.value for s in counts) >= 3 * 5
