"""The callback task: deliver one job's end to its producer, retried with backoff on its own
queue (a failing receiver is retried for ``max_attempts``, then given up and logged)."""

import logging

from celery import Task

from adapters.celery.topology import CALLBACK_TASK
from domain.errors import PermanentError, TransientError
from domain.events import StageMessage
from domain.retry import retry_delay
from pipeline.callbacks import deliver
from workers import context
from workers.app import app

log = logging.getLogger(__name__)


@app.task(bind=True, name=CALLBACK_TASK, max_retries=None, acks_late=True)
def deliver_callback(self: Task, raw_job_id: str) -> str | None:  # type: ignore[type-arg]
    job_id = StageMessage(job_id=raw_job_id).job_id
    services = context.services()
    cfg = services.settings.callbacks
    try:
        return deliver(services, job_id)
    except TransientError as exc:
        if self.request.retries + 1 >= cfg.max_attempts:
            log.warning("callback of job %s given up after %d attempts: %s", job_id,
                        cfg.max_attempts, exc)
            return None
        countdown = retry_delay(self.request.retries, base=cfg.backoff_base,
                                cap=cfg.backoff_max, retry_after=exc.retry_after)
        raise self.retry(exc=exc, countdown=countdown) from exc
    except PermanentError as exc:
        log.warning("callback of job %s refused: %s", job_id, exc)
        return None
