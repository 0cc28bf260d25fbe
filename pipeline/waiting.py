"""Waiting for jobs to end: one read per poll for every job still running, not one per job."""

import time
from collections.abc import Callable, Sequence

from domain.errors import ConversaError, NotFoundError
from domain.job import IngestionJob
from pipeline.bootstrap import Services

POLL_SECONDS = 0.3


def wait_for_jobs(
    services: Services,
    job_ids: Sequence[str],
    timeout: float,
    *,
    on_progress: Callable[[list[IngestionJob]], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[IngestionJob]:
    """The jobs, in the order of ``job_ids``, once every one is done or failed.

    Each poll reads only the jobs not yet ended, in one ``get_many``; ``on_progress`` sees the
    latest state of every job after each poll. A job that disappears is NotFoundError; jobs
    still running after ``timeout`` seconds are a ConversaError.
    """
    ids = list(dict.fromkeys(job_ids))
    latest: dict[str, IngestionJob] = {}
    running = list(ids)
    deadline = clock() + timeout
    while True:
        fetched = {job.job_id: job for job in services.jobs.get_many(running)}
        missing = [job_id for job_id in running if job_id not in fetched]
        if missing:
            raise NotFoundError(f"no job {missing[0]}")
        latest.update(fetched)
        running = [job_id for job_id in running if not fetched[job_id].status.is_terminal]
        jobs = [latest[job_id] for job_id in ids]
        if on_progress is not None:
            on_progress(jobs)
        if not running:
            return jobs
        if clock() > deadline:
            raise ConversaError(f"{len(running)} jobs still running after {timeout:.0f} s; "
                                "see `conversa jobs`")
        sleep(poll_seconds)
