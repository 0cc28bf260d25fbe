"""Producers hear back: job events for the stream, and a signed callback when a job ends.

``announce`` is called wherever a job's status may have changed (after each stage, after a
failure, when a job is done at enqueue). It appends the job's event to the tenant's event log
and, when the job ended (``done`` or ``failed``) and a callback URL applies (the upload's, else
the tenant's), puts one delivery on the callback queue: the stage only enqueues, it never
waits for a receiver. ``deliver`` (the callback task) signs and POSTs; a failure it may pass
is retried by the task with backoff. Delivery is at least once (a redelivered stage can
announce twice): receivers dedupe on ``X-Conversa-Event-Id``.
"""

import json
import logging
import time

from adapters.ports import CallbackDispatcher
from domain.callbacks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TenantCallback,
    event_id,
    job_event,
    new_secret,
    signature,
)
from domain.errors import NotFoundError
from domain.job import IngestionJob
from pipeline.bootstrap import Services

log = logging.getLogger(__name__)


def announce(services: Services, job: IngestionJob) -> None:
    """Record the job's event; enqueue its callback if it ended. Never raises: a job's
    progress never depends on its announcement."""
    try:
        services.events.publish(job.tenant, job_event(job))
        if job.status.is_terminal and _callback_url(services, job) is not None:
            dispatcher = services.dispatcher
            if isinstance(dispatcher, CallbackDispatcher):
                dispatcher.dispatch_callback(job.job_id)
    except Exception as exc:  # the broker or MongoDB away: the job goes on, unannounced
        log.warning("could not announce job %s (%s): %s", job.job_id, job.status, exc)


def _callback_url(services: Services, job: IngestionJob) -> str | None:
    if job.callback_url:
        return job.callback_url
    settings = services.callbacks.get(job.tenant)
    return settings.url if settings else None


def deliver(services: Services, job_id: str) -> str | None:
    """POST the job's end to its callback URL, signed; returns the URL called (None when
    the job has not ended or no URL applies any more). TransientError: try again later."""
    job = services.jobs.get(job_id)
    url = _callback_url(services, job)
    if not job.status.is_terminal or url is None:
        return None
    secret = tenant_callback(services, job.tenant).secret
    body = json.dumps(job_event(job), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event_id(job),
               SIGNATURE_HEADER: signature(secret, int(time.time()), body)}
    services.callback_sender.post(url, body, headers)
    return url


def tenant_callback(services: Services, tenant: str) -> TenantCallback:
    """The tenant's callback settings, made (no URL, a new secret) on first use."""
    return services.callbacks.get(tenant) or services.callbacks.ensure(tenant, new_secret())


def set_callback_url(services: Services, tenant: str, url: str | None) -> TenantCallback:
    """Set (or, with None, remove) the tenant's callback URL; a URL outbound requests may
    not reach is refused at once (PermanentError), as every call to it would be."""
    if url is not None:
        services.callback_sender.check(url)
    tenant_callback(services, tenant)
    return services.callbacks.set_url(tenant, url)


def check_callback_url(services: Services, url: str | None) -> None:
    """Refuse an upload's callback URL that could never be called."""
    if url is not None:
        services.callback_sender.check(url)


def job_of_tenant(services: Services, tenant: str, job_id: str) -> IngestionJob:
    job = services.jobs.get(job_id)
    if job.tenant != tenant:
        raise NotFoundError(f"no job {job_id}")
    return job
