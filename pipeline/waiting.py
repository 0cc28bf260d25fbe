"""Waiting for jobs to end: one read per poll for the jobs still running, not one per job."""

import time
from collections.abc import Callable, Sequence

from domain.errors import ConversaError, NotFoundError
from domain.job import IngestionJob
from pipeline.bootstrap import Services

POLL_SECONDS = 0.3
#: Jobs read per poll after the first: the first of those still running, in the order given.
#: Waiting ends only when every job has ended, so a job further on that ended early is seen
#: when its turn comes; thousands of jobs cost a bounded read per poll, not one that grows
#: with the batch (the MongoDB-wire server's cost of an ``$in`` read grows faster than its
#: list: see ``adapters.mongodb.repositories.GET_MANY_PAGE``).
POLL_WINDOW = 200
#: A poll waits at least this many times as long as the last read took, so a slow server is
#: never kept busy by the poller more than about a quarter of the time.
POLL_BACKOFF = 3.0


def wait_for_jobs(
    services: Services,
    job_ids: Sequence[str],
    timeout: float,
    *,
    on_progress: Callable[[list[IngestionJob]], None] | None = None,
    poll_seconds: float = POLL_SECONDS,
    window: int = POLL_WINDOW,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[IngestionJob]:
    """The jobs, in the order of ``job_ids``, once every one is done or failed.

    The first poll reads every job; each later one reads, in one ``get_many``, the first
    ``window`` of the jobs not yet ended. ``on_progress`` sees the latest state known of every
    job after each poll. A job that disappears is NotFoundError; jobs still running after
    ``timeout`` seconds are a ConversaError.
    """
    ids = list(dict.fromkeys(job_ids))
    latest: dict[str, IngestionJob] = {}
    running = list(ids)
    deadline = clock() + timeout
    wanted = running
    while True:
        started = clock()
        fetched = {job.job_id: job for job in services.jobs.get_many(wanted)}
        took = clock() - started
        missing = [job_id for job_id in wanted if job_id not in fetched]
        if missing:
            raise NotFoundError(f"no job {missing[0]}")
        latest.update(fetched)
        running = [job_id for job_id in running if not latest[job_id].status.is_terminal]
        jobs = [latest[job_id] for job_id in ids]
        if on_progress is not None:
            on_progress(jobs)
        if not running:
            return jobs
        if clock() > deadline:
            raise ConversaError(f"{len(running)} jobs still running after {timeout:.0f} s; "
                                "see `conversa jobs`")
        sleep(max(poll_seconds, POLL_BACKOFF * took))
        wanted = running[:max(window, 1)]
