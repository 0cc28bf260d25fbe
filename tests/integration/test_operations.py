"""Operator commands against real Valkey, the MongoDB-wire server and real Celery workers:
`conversa queues`, `conversa retry --failed`, `conversa jobs --status failed`,
`conversa doctor` and the worker liveness probe."""

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from adapters.celery.topology import STAGE_QUEUES
from adapters.redis.queues import priority_lists
from domain.events import UploadEvent
from domain.status import JobStatus, Stage
from localstack.servers import free_port
from pipeline.producer import enqueue, file_event
from pipeline.sources import file_uri
from tests.support.workers import (
    celery_worker,
    producer,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 20


@pytest.fixture
def services(env):
    built, _ = producer(env)
    return built


def conversa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def depths(env) -> dict[str, tuple[int, int]]:
    import json

    out = conversa(env, "queues", "--json")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return {row["stage"] or row["queue"]: (row["waiting"], row["unacked"]) for row in rows}


def fifo_event(tmp_path: Path, tenant: str = "default") -> tuple[UploadEvent, Path]:
    fifo = tmp_path / "slow-upload.txt"
    os.mkfifo(fifo)
    return UploadEvent(tenant=tenant, source=str(fifo), source_uri=file_uri(fifo),
                       source_name=fifo.name), fifo


def feed(fifo: Path, data: bytes) -> None:
    def write() -> None:
        with fifo.open("wb") as writer:
            writer.write(data)

    threading.Thread(target=write, daemon=True).start()


def test_queues_counts_waiting_and_unacknowledged_messages(env, services, tmp_path):
    event, fifo = fifo_event(tmp_path)
    blocked = enqueue(services, event)  # first in line: its store stage blocks on the FIFO
    others = [enqueue(services, file_event(_write(tmp_path / f"{i}.txt", PROSE), "default",
                                           10**6)) for i in range(2)]
    table = conversa(env, "queues")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["queue", "stage", "waiting", "unacked",
                                                    "consumers"]
    assert depths(env)["store"] == (3, 0)
    assert depths(env)["record"] == (0, 0)

    with celery_worker(env, tmp_path / "worker.log", queues="store", concurrency=1):
        wait_for(lambda: services.jobs.get(blocked.job_id).attempts.get("store"), 60,
                 "the store stage to start on the FIFO")
        assert depths(env)["store"] == (2, 1)  # one taken and running, two waiting

        feed(fifo, PROSE.encode())
        # Nobody consumes record: the three jobs' next messages wait there.
        wait_for(lambda: depths(env)["record"] == (3, 0), 60, "three record messages")
        assert depths(env)["store"] == (0, 0)
    assert {services.jobs.get(j.job_id).status for j in [blocked, *others]} == {
        JobStatus.STORED}


def test_reconcile_skips_jobs_whose_message_waits_and_re_enqueues_lost_ones(
        env, services, tmp_path):
    jobs = [enqueue(services, file_event(_write(tmp_path / f"{i}.txt", PROSE), "default",
                                         10**6)) for i in range(2)]
    waiting = conversa(env, "reconcile", "--older-than", "0")
    assert waiting.returncode == 0, waiting.stderr
    assert waiting.stdout.splitlines() == ["0 stuck jobs re-enqueued"]

    redis.Redis.from_url(env["CONVERSA_BROKER_URL"]).delete(
        *priority_lists(STAGE_QUEUES[Stage.STORE].queue))  # every priority step's list
    lost = conversa(env, "reconcile", "--older-than", "0")
    assert lost.returncode == 0, lost.stderr
    assert sorted(lost.stdout.splitlines()[:-1]) == sorted(
        f"{job.job_id} re-enqueued at store" for job in jobs)
    assert depths(env)["store"] == (2, 0)


def test_retry_failed_re_runs_only_the_chosen_jobs_from_their_failed_stage(
        env, services, tmp_path):
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"GIF89a" + bytes(range(256)) * 20)
    late = _write(tmp_path / "late.txt", PROSE)
    late_event = file_event(late, "acme", 10**6)
    late.unlink()  # gone before the store stage runs: fails at store

    with celery_worker(env, tmp_path / "worker.log", concurrency=2):
        at_extract = {t: enqueue(services, file_event(binary, t, 10**6)) for t in ("acme", "zeta")}
        at_store = enqueue(services, late_event)
        ids = [at_store.job_id, *(job.job_id for job in at_extract.values())]
        first = {job.job_id: job for job in wait_terminal(services, ids)}
        assert {job.status for job in first.values()} == {JobStatus.FAILED}

        listed = conversa(env, "jobs", "--status", "failed")
        assert listed.returncode == 0, listed.stderr
        lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
        assert set(lines) == set(ids)
        assert "extract PermanentError: unsupported content type: " in (
            lines[at_extract["acme"].job_id])
        assert f"store {first[at_store.job_id].error.type}: " in lines[at_store.job_id]

        refused = conversa(env, "retry", "--stage", "extract")
        assert refused.returncode != 0
        assert "--failed" in refused.stderr

        out = conversa(env, "retry", "--failed", "--stage", "extract", "--tenant", "acme")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [f"{at_extract['acme'].job_id} re-queued at recorded",
                                           "1 failed jobs re-queued"]
        [again] = wait_terminal(services, [at_extract["acme"].job_id])
        wait_for(lambda: services.jobs.get(at_extract["acme"].job_id).attempts.get("extract")
                 == 2, 30, "the retried extract stage")
        again = services.jobs.get(at_extract["acme"].job_id)
        assert again.status is JobStatus.FAILED
        assert again.error.stage is Stage.EXTRACT
        assert again.attempts["store"] == 1
        assert again.attempts["record"] == 1
        untouched = services.jobs.get(at_extract["zeta"].job_id)
        assert untouched.attempts == first[at_extract["zeta"].job_id].attempts

        late.write_text(PROSE)
        out = conversa(env, "retry", "--failed", "--stage", "store")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "1 failed jobs re-queued"
        [done] = wait_terminal(services, [at_store.job_id])
    assert done.status is JobStatus.DONE
    assert done.error is None


def test_doctor_gives_one_verdict_per_check_and_fails_on_a_missing_server(env):
    healthy = conversa(env, "doctor")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    names = [line.split()[1] for line in healthy.stdout.splitlines()]
    assert names == ["settings", "broker", "mongodb", "objects", "vectors", "embedder",
                     "keywords"]
    assert all(line.startswith("ok ") for line in healthy.stdout.splitlines())

    broken = conversa({**env, "CONVERSA_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"},
                      "doctor")
    assert broken.returncode == 1
    verdicts = {line.split()[1]: line.split()[0] for line in broken.stdout.splitlines()}
    assert verdicts == {"settings": "ok", "broker": "FAIL", "mongodb": "ok", "objects": "ok",
                        "vectors": "ok", "embedder": "ok", "keywords": "ok"}

    invalid = conversa({**env, "CONVERSA_WORKER__TIME_LIMIT": "1"}, "doctor")
    assert invalid.returncode == 1
    assert invalid.stdout.splitlines()[0].startswith("FAIL  settings")
    assert "CONVERSA_WORKER" in invalid.stdout.splitlines()[0]


def test_the_probe_fails_a_worker_that_is_alive_but_no_longer_consuming(
        env, services, tmp_path):
    hostname = f"probe@{socket.gethostname()}"
    queue = STAGE_QUEUES[Stage.STORE].queue
    _, app = producer(env)
    no_worker = conversa(env, "probe")
    assert no_worker.returncode == 1
    assert "no running worker" in no_worker.stdout

    with celery_worker(env, tmp_path / "worker.log", name="probe", queues="store") as worker:
        healthy = conversa(env, "probe", "--stalled-after", "2")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert healthy.stdout.startswith(f"ok    {hostname}: consuming")

        # The worker stays alive and answers pings, but stops taking messages.
        app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=10)
        job = enqueue(services, file_event(_write(tmp_path / "a.txt", PROSE), "default", 10**6))
        assert app.control.ping(destination=[hostname], timeout=5)
        stuck = wait_for(lambda: (r := conversa(env, "probe", "--stalled-after", "2"))
                         .returncode == 1 and r, 60, "the probe to fail")
        assert f"FAIL  {hostname}: 1 messages wait on its queues" in stuck.stdout
        assert "not consuming" in stuck.stdout
        assert services.jobs.get(job.job_id).status is JobStatus.QUEUED
        assert worker.poll() is None

        app.control.add_consumer(queue, destination=[hostname], reply=True, timeout=10)
        wait_for(lambda: services.jobs.get(job.job_id).status is JobStatus.STORED, 60,
                 "the store stage after consuming again")
        recovered = conversa(env, "probe", "--stalled-after", "2")
        assert recovered.returncode == 0, recovered.stdout


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
