"""The broker dies (kill -9) while jobs flow and comes back on the same port with its
append-only file: every job ends `done` with nobody running a command, within the visibility
timeout, with one record, one object and the expected vectors per upload."""

import os
import re
import signal
import time
from pathlib import Path

import pytest
from celery import Celery

from domain.documents import vector_ids
from domain.status import JobStatus
from localstack.servers import free_port, log_tail, start_valkey, stop_process
from pipeline.producer import enqueue, file_event
from tests.support.workers import (
    FAST_WORKER_ENV,
    celery_beat,
    celery_worker,
    producer,
    stack_env,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 16
#: How long the broker stays dead: longer than Celery's default publish retries (about a
#: second), as a real restart is.
DOWNTIME_SECONDS = 4.0
VISIBILITY_TIMEOUT = float(FAST_WORKER_ENV["CONVERSA_WORKER__VISIBILITY_TIMEOUT"])
PROSE = ("Lighthouse keepers trimmed the wicks, polished the lenses and logged the weather "
         "every night, climbing the spiral stairs long before dawn. ") * 80


def recovery_bound(seconds_per_job: float, remaining: int) -> float:
    """What the README promises: a lost job is back within the visibility timeout; then the
    remaining work takes what it took before the kill (twice that, for a noisy machine)."""
    return VISIBILITY_TIMEOUT + 2 * seconds_per_job * remaining + 30


def running_tasks(app: Celery) -> int:
    """Stage tasks the workers are running right now (asked over the broker)."""
    replies = app.control.inspect(timeout=1.0).active() or {}
    return sum(len(tasks) for tasks in replies.values())


def test_jobs_finish_by_themselves_after_the_broker_is_killed(
        mongo_url, mongo_database_name, tmp_path):
    port = free_port()
    valkey_dir = tmp_path / "valkey"
    env = stack_env(f"redis://127.0.0.1:{port}/0", mongo_url, mongo_database_name,
                    tmp_path / "data")
    files = []
    for i in range(BATCH):
        path = tmp_path / "docs" / f"log-{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"Logbook {i}: the tide came in at {i} o'clock. " + PROSE)
        files.append(path)

    broker = start_valkey(port, valkey_dir / "data", valkey_dir / "valkey.log", appendonly=True)
    restarted = None
    try:
        services, app = producer(env)
        with celery_worker(env, tmp_path / "worker.log", concurrency=2), \
                celery_beat(env, tmp_path):
            started = time.monotonic()
            jobs = [enqueue(services, file_event(path, "default", 10**6)) for path in files]
            ids = [job.job_id for job in jobs]

            def statuses() -> list[JobStatus]:
                return [services.jobs.get(job_id).status for job_id in ids]

            # a quarter done: enough to know the pace of the remaining work
            wait_for(lambda: statuses().count(JobStatus.DONE) >= BATCH // 4, 240,
                     "a quarter of the jobs to finish")
            wait_for(lambda: running_tasks(app) > 0, 30, "a stage task to be running")
            os.kill(broker.pid, signal.SIGKILL)
            broker.wait(timeout=10)
            at_kill = statuses()
            done_at_kill = at_kill.count(JobStatus.DONE)
            assert done_at_kill < BATCH  # mid-run
            bound = recovery_bound((time.monotonic() - started) / done_at_kill,
                                   BATCH - done_at_kill)
            time.sleep(DOWNTIME_SECONDS)
            restarted = start_valkey(port, valkey_dir / "data", valkey_dir / "valkey.log",
                                     appendonly=True)
            restarted_at = time.monotonic()

            # No reconcile, retry or restart from here on: the stack recovers by itself.
            def all_finished() -> bool:
                return all(status.is_terminal for status in statuses())

            try:
                wait_for(all_finished, bound, "every job to finish", interval=0.5)
            except AssertionError:
                stuck = [(job_id, status) for job_id, status in zip(ids, statuses(), strict=True)
                         if not status.is_terminal]
                raise AssertionError(
                    f"{len(stuck)} jobs not finished {bound:.0f} s after the broker "
                    f"came back: {stuck}\n--- worker log ---\n"
                    f"{log_tail(tmp_path / 'worker.log', 6000)}") from None
            recovery = time.monotonic() - restarted_at
    finally:
        for proc in (restarted, broker):
            if proc is not None:
                stop_process(proc)

    finished = [services.jobs.get(job_id) for job_id in ids]
    assert [job.status for job in finished] == [JobStatus.DONE] * BATCH
    assert len(services.jobs.list_jobs(limit=10 * BATCH)) == BATCH
    expected = sorted(i for job in finished
                      for i in vector_ids(job.document_id, job.job_id, job.chunk_count))
    assert services.vectors.list_ids("default") == expected
    assert services.vectors.count("default") == len(expected)
    root = Path(env["CONVERSA_DATA_DIR"]) / "objects" / "default"
    content = sorted(p.name for p in root.iterdir() if p.is_file())
    assert content == sorted({job.object_key.rsplit("/", 1)[1] for job in finished})
    log = (tmp_path / "worker.log").read_text()
    redriven = sum(int(n) for n in re.findall(r"maintenance\.reconcile\[[^]]+\] succeeded in "
                                               r"\S+: (\d+)", log))
    print(f"\n{done_at_kill}/{BATCH} done at the kill; every job done "
          f"{recovery:.1f} s after the broker came back (bound {bound:.0f} s); "
          f"{redriven} re-enqueued by the reconciler")
