"""Failing a job with its reason, re-driving failed jobs, and re-enqueueing stuck ones."""

from collections.abc import Collection

from domain.errors import ConversaError, NotFoundError
from domain.job import IngestionJob, StageError
from domain.status import JobStatus, Stage, next_stage, redrive_status
from pipeline import versions
from pipeline.bootstrap import Services
from pipeline.callbacks import announce
from pipeline.fairness import tenant_lane

MAX_ERROR_MESSAGE = 500


def fail_job(services: Services, job_id: str, stage: Stage, error: BaseException) -> None:
    """Record why the job failed; a job already terminal is left as it is. A job that failed
    when it could no longer become current gives up what it stored (``versions``)."""
    message = str(error) or type(error).__name__
    failed = services.jobs.fail(job_id, StageError(
        stage=stage, type=type(error).__name__, message=message[:MAX_ERROR_MESSAGE]))
    versions.after_failure(services, job_id)
    if failed is not None:
        announce(services, failed)


def retry(services: Services, job_id: str, tenant: str | None = None) -> IngestionJob:
    """Re-run a failed job from the stage that failed, reusing what earlier stages stored."""
    job = services.jobs.get(job_id)
    if tenant is not None and job.tenant != tenant:
        raise NotFoundError(f"no job {job_id}")
    if job.status is not JobStatus.FAILED or job.error is None:
        raise ConversaError(f"job {job_id} is {job.status}: only failed jobs can be retried")
    stage = job.error.stage
    moved = services.jobs.redrive(job_id, redrive_status(stage))
    if moved is None:
        raise ConversaError(f"job {job_id} changed while retrying; look at it again")
    services.dispatcher.dispatch(job_id, stage, tenant_lane(services, job.tenant))
    return moved


def retry_failed(services: Services, *, stage: Stage | None = None, tenant: str | None = None,
                 limit: int = 1000) -> list[IngestionJob]:
    """Re-drive every failed job (of one tenant, that failed at one stage, if given) from its
    failed stage. A job that changes while this runs (retried by someone else) is skipped."""
    retried = []
    for job in services.jobs.list_jobs(tenant=tenant, status=JobStatus.FAILED, limit=limit):
        if job.error is None or (stage is not None and job.error.stage is not stage):
            continue
        try:
            retried.append(retry(services, job.job_id))
        except ConversaError:
            continue
    return retried


def reconcile_lost(services: Services, older_than_seconds: float) -> list[tuple[str, Stage]]:
    """Re-enqueue the stuck jobs that no message on the broker still carries."""
    return reconcile(services, older_than_seconds, services.in_flight.jobs_in_flight())


def reconcile(services: Services, older_than_seconds: float,
              in_flight: Collection[str] = ()) -> list[tuple[str, Stage]]:
    """Re-enqueue the stage each stuck job needs (its messages were lost). Returns what was
    re-dispatched. Jobs in ``in_flight`` (a message for them is still on the broker) are left
    alone. Safe to run at any time: a job whose message was merely slow gets a duplicate,
    which the idempotent stages ignore."""
    redriven = []
    for job in services.jobs.list_stale(older_than_seconds=older_than_seconds):
        if job.job_id in in_flight:
            continue
        stage = next_stage(job.status)
        if stage is not None:
            services.dispatcher.dispatch(job.job_id, stage, tenant_lane(services, job.tenant))
            redriven.append((job.job_id, stage))
    return redriven
