"""The stage tasks: thin wrappers that parse the job id and call one pipeline function."""

from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from pydantic import ValidationError

from adapters.celery.topology import STAGE_QUEUES
from domain.errors import PermanentError, TransientError
from domain.events import StageMessage
from domain.retry import retry_delay
from domain.status import JobStatus, Stage
from pipeline.callbacks import announce
from pipeline.redrive import fail_job
from pipeline.stages import STAGE_FUNCTIONS
from workers import context
from workers.app import app


def run_stage_task(task: Task[Any, Any], stage: Stage, raw_job_id: Any) -> str:
    try:
        job_id = StageMessage(job_id=raw_job_id).job_id
    except ValidationError:
        raise PermanentError(f"malformed job id in a {stage} message") from None
    services = context.services()
    worker = services.settings.worker
    try:
        services.jobs.count_attempt(job_id, stage)
        job = STAGE_FUNCTIONS[stage](services, job_id)
        announce(services, job)  # the job's event; its callback (enqueued) if it ended
    except (TransientError, SoftTimeLimitExceeded) as exc:
        if task.request.retries >= worker.max_retries:
            fail_job(services, job_id, stage, exc)
            raise
        countdown = retry_delay(task.request.retries, base=worker.retry_backoff_base,
                                cap=worker.retry_backoff_max,
                                retry_after=getattr(exc, "retry_after", None))
        raise task.retry(exc=exc, countdown=countdown) from exc
    except Exception as exc:
        fail_job(services, job_id, stage, exc)
        raise
    done_early = job.status is JobStatus.DONE and stage is not Stage.INDEX  # unchanged content
    if job.status is JobStatus.FAILED or done_early:
        raise Ignore()  # failed elsewhere, or nothing left to do: stop the chain here
    return job.status.value


@app.task(bind=True, name=STAGE_QUEUES[Stage.STORE].task_name, max_retries=None)
def store(self: Task[Any, Any], job_id: str) -> str:
    return run_stage_task(self, Stage.STORE, job_id)


@app.task(bind=True, name=STAGE_QUEUES[Stage.RECORD].task_name, max_retries=None)
def record(self: Task[Any, Any], job_id: str) -> str:
    return run_stage_task(self, Stage.RECORD, job_id)


@app.task(bind=True, name=STAGE_QUEUES[Stage.EXTRACT].task_name, max_retries=None)
def extract(self: Task[Any, Any], job_id: str) -> str:
    return run_stage_task(self, Stage.EXTRACT, job_id)


@app.task(bind=True, name=STAGE_QUEUES[Stage.EMBED].task_name, max_retries=None)
def embed(self: Task[Any, Any], job_id: str) -> str:
    return run_stage_task(self, Stage.EMBED, job_id)


@app.task(bind=True, name=STAGE_QUEUES[Stage.INDEX].task_name, max_retries=None)
def index(self: Task[Any, Any], job_id: str) -> str:
    return run_stage_task(self, Stage.INDEX, job_id)
