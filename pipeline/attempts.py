"""One delivery of one stage, with the retry rule and the failure mapping every runner shares:
the Celery task (workers/tasks.py) and the in-process dispatcher of the tests run this."""

import errno

from domain.errors import TransientError
from domain.job import IngestionJob
from domain.retry import retry_delay
from domain.status import JobStatus, Stage
from pipeline.bootstrap import Services
from pipeline.redrive import fail_job
from pipeline.stages import STAGE_FUNCTIONS

#: OS errors of a full disk or quota: the space may come back, so the stage is tried again
#: with backoff (and fails with this reason once its retries are spent).
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class RetryStage(Exception):  # noqa: N818 (a signal to the runner, not an error)
    """The stage met a transient error within its retries: run it again in ``countdown`` s."""

    def __init__(self, countdown: float, cause: Exception) -> None:
        super().__init__(f"retry in {countdown:.1f} s: {cause}")
        self.countdown = countdown
        self.cause = cause


def attempt_stage(
    services: Services, stage: Stage, job_id: str, retries: int, *,
    transient: tuple[type[Exception], ...] = (TransientError,),
    max_retries: int | None = None,
) -> IngestionJob:
    """Count the attempt and run the stage (``retries``: how many times it was retried).

    A ``transient`` error before ``max_retries`` (default: the worker setting) raises
    RetryStage with the backoff's countdown; past it, or on any other error, the job is
    marked failed at this stage and the error raised again."""
    worker = services.settings.worker
    limit = worker.max_retries if max_retries is None else max_retries
    try:
        job = services.jobs.begin_attempt(job_id, stage)
        return _run(services, stage, job)
    except transient as exc:
        if retries >= limit:
            fail_job(services, job_id, stage, exc)
            raise
        countdown = retry_delay(retries, base=worker.retry_backoff_base,
                                cap=worker.retry_backoff_max,
                                retry_after=getattr(exc, "retry_after", None))
        raise RetryStage(countdown, exc) from exc
    except Exception as exc:
        fail_job(services, job_id, stage, exc)
        raise


def _run(services: Services, stage: Stage, job: IngestionJob) -> IngestionJob:
    try:
        return STAGE_FUNCTIONS[stage](services, job.job_id, job)
    except OSError as exc:
        if exc.errno in FULL_DISK_ERRNOS:
            raise TransientError(f"no space left for the {stage.value} stage: {exc}") from exc
        raise


def chain_goes_on(stage: Stage, job: IngestionJob) -> bool:
    """Whether the next stage should run: not after a failure, nor when the job finished
    early (unchanged content is done at store)."""
    done_early = job.status is JobStatus.DONE and stage is not Stage.INDEX
    return job.status is not JobStatus.FAILED and not done_early
