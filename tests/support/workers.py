"""Real Celery workers in subprocesses, and the services a test uses beside them."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from adapters.celery.dispatcher import CeleryDispatcher
from domain.job import IngestionJob
from localstack.servers import log_tail, stop_process
from pipeline.bootstrap import Services, bootstrap
from pipeline.settings import Settings, load_settings

READY_TIMEOUT = 90.0

#: Worker settings small enough that retries and redeliveries happen within a test.
FAST_WORKER_ENV = {
    "CONVERSA_WORKER__SOFT_TIME_LIMIT": "40",
    "CONVERSA_WORKER__TIME_LIMIT": "45",
    "CONVERSA_WORKER__MAX_RETRIES": "2",
    "CONVERSA_WORKER__RETRY_BACKOFF_BASE": "1.2",
    "CONVERSA_WORKER__RETRY_BACKOFF_MAX": "2",
    "CONVERSA_WORKER__VISIBILITY_TIMEOUT": "50",
    "CONVERSA_WORKER__UNACKED_RESTORE_INTERVAL": "2",
}


def stack_env(broker_url: str, mongo_url: str, database: str, data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CONVERSA_")}
    env.update(FAST_WORKER_ENV)
    env.update({
        "CONVERSA_BROKER_URL": broker_url,
        "CONVERSA_MONGO_URL": mongo_url,
        "CONVERSA_MONGO_DATABASE": database,
        "CONVERSA_DATA_DIR": str(data_dir),
    })
    return env


def settings_from(env: dict[str, str]) -> Settings:
    """The same settings the workers read, built from the same variables."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def producer(env: dict[str, str]) -> tuple[Services, Celery]:
    """Services for the test process, dispatching to the workers' broker."""
    app = Celery("conversa-test", broker=env["CONVERSA_BROKER_URL"])
    app.conf.update(task_serializer="json", accept_content=["json"])
    return bootstrap(settings_from(env), dispatcher=CeleryDispatcher(app)), app


@contextmanager
def celery_worker(
    env: dict[str, str], log_path: Path, *, name: str = "test", concurrency: int = 1,
    queues: str | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker (``conversa worker``) until the block ends; waits until it is ready."""
    argv = [sys.executable, "-m", "cli", "worker", "-c", str(concurrency),
            "-n", f"{name}@%h"]
    if queues:
        argv += ["-Q", queues]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(proc, log_path, offset)
        yield proc
    finally:
        if proc.poll() is None:
            stop_process(proc, timeout=30)


@contextmanager
def celery_beat(env: dict[str, str], workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Celery beat on the settings' schedule until the block ends, as `conversa up` runs it."""
    log_path = workdir / "beat.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "beat", "--loglevel", "INFO",
             "-s", str(workdir / "beat-schedule")],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc, timeout=10)


def wait_ready(proc: subprocess.Popen[bytes], log_path: Path, offset: int = 0) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}:\n{log_tail(log_path)}")
        if b" ready." in log_path.read_bytes()[offset:]:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker not ready in {READY_TIMEOUT} s:\n{log_tail(log_path)}")


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_terminal(services: Services, job_ids: list[str], timeout: float = 120
                  ) -> list[IngestionJob]:
    def all_terminal() -> list[IngestionJob] | None:
        jobs = [services.jobs.get(job_id) for job_id in job_ids]
        return jobs if all(job.status.is_terminal for job in jobs) else None

    return wait_for(all_terminal, timeout, f"jobs {job_ids} to finish")  # type: ignore[no-any-return]
