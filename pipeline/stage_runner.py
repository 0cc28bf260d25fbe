"""Runs one stage of a job idempotently: skip what is done, compare-and-set what is new."""

from collections.abc import Callable, Mapping

from adapters import metering
from domain.errors import TransientError
from domain.job import IngestionJob
from domain.status import STAGE_INPUT, STAGE_OUTPUT, JobStatus, Stage, rank
from pipeline import usage
from pipeline.bootstrap import Services

StageWork = Callable[[IngestionJob], Mapping[str, object]]


def run_stage(services: Services, stage: Stage, job: IngestionJob, work: StageWork
              ) -> IngestionJob:
    """Do ``work`` if ``job`` (as just read) waits for ``stage``, then move it on by
    compare-and-set.

    A job already past the stage (a redelivered or duplicated message) or failed is returned
    unchanged; the work is not done again. When two runs race, both may do the (idempotent)
    work but only one moves the status. A job not yet at the stage is a transient condition.
    What the work cost (``pipeline.usage``) is added to the job in the same compare-and-set.
    """
    job_id = job.job_id
    needed = STAGE_INPUT[stage]
    if job.status is JobStatus.FAILED or (job.status is not needed and _is_past(job, needed)):
        return job
    if job.status is not needed:
        raise TransientError(f"job {job_id} is {job.status}; stage {stage} waits for {needed}")
    with metering.collecting() as collected:
        fields = work(job)
    fields, added = usage.with_usage(job, fields, collected.usage)
    moved = services.jobs.transition(job_id, needed, STAGE_OUTPUT[stage], fields)
    if moved is not None and not added.is_empty:
        services.usage_metrics.add(job.tenant, added)
    return moved or services.jobs.get(job_id)


def _is_past(job: IngestionJob, needed: JobStatus) -> bool:
    return rank(job.status) > rank(needed)
