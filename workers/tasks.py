"""The stage tasks: thin wrappers that parse the job id and call one pipeline function."""

from typing import Any

from celery import Task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from pydantic import ValidationError

from adapters.celery.topology import STAGE_QUEUES
from domain.errors import PermanentError, TransientError
from domain.events import StageMessage
from domain.status import Stage
from pipeline.attempts import RetryStage, attempt_stage, chain_goes_on
from pipeline.callbacks import announce
from workers import context
from workers.app import app


def run_stage_task(task: Task[Any, Any], stage: Stage, raw_job_id: Any) -> str:
    try:
        job_id = StageMessage(job_id=raw_job_id).job_id
    except ValidationError:
        raise PermanentError(f"malformed job id in a {stage} message") from None
    try:
        job = attempt_stage(context.services(), stage, job_id, task.request.retries,
                            transient=(TransientError, SoftTimeLimitExceeded))
    except RetryStage as retry:
        raise task.retry(exc=retry.cause, countdown=retry.countdown) from retry.cause
    announce(context.services(), job)  # the job's event; its callback (enqueued) if it ended
    if not chain_goes_on(stage, job):
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
