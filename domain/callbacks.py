"""Producers hear back: a tenant's callback settings, the event a callback carries, and its
signature (no I/O).

A callback is a POST of JSON to the tenant's URL (or the one given with the upload) when a job
ends ``done`` or ``failed``. It is signed with the tenant's secret, Stripe-style, so the
receiver can tell it came from us and is not a replay:

    X-Conversa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    X-Conversa-Event-Id: <job id>.<status>  (delivery is at least once: dedupe on it)
"""

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from domain.job import IngestionJob

SIGNATURE_HEADER = "X-Conversa-Signature"
EVENT_ID_HEADER = "X-Conversa-Event-Id"
SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)


class TenantCallback(BaseModel):
    """A tenant's callback: where to POST (None: only uploads that name a URL are called
    back) and the secret every callback of the tenant is signed with."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    url: str | None
    secret: str
    updated_at: datetime


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Conversa-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes) -> bool:
    """Whether ``header`` is a valid signature of ``body`` (what a receiver checks; it should
    also refuse a ``t`` far from its own clock)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        expected = signature(secret, int(parts["t"]), body)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, header)


def event_id(job: IngestionJob) -> str:
    return f"{job.job_id}.{job.status.value}"


def job_event(job: IngestionJob) -> dict[str, Any]:
    """The JSON of a job event, for callbacks and the event stream alike."""
    return {
        "type": f"job.{job.status.value}",
        "event_id": event_id(job),
        "job": {
            "job_id": job.job_id, "tenant": job.tenant, "document_id": job.document_id,
            "source": job.source, "source_name": job.source_name, "status": job.status.value,
            "chunk_count": job.chunk_count, "size": job.size, "sha256": job.sha256,
            "error": job.error.model_dump(mode="json") if job.error else None,
            "created_at": job.created_at.isoformat(), "updated_at": job.updated_at.isoformat(),
        },
    }
