"""Reading a tenant's jobs: one job, or keyset pages of them with an opaque cursor."""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from adapters.ports import JobPages
from domain.errors import ConfigurationError, NotFoundError, PermanentError
from domain.job import IngestionJob
from domain.status import JobStatus
from pipeline.bootstrap import Services

MAX_PAGE = 200


@dataclass(frozen=True)
class JobPage:
    jobs: list[IngestionJob]
    next_cursor: str | None


def get_job(services: Services, tenant: str, job_id: str) -> IngestionJob:
    """The tenant's job; another tenant's job is NotFoundError, like a missing one."""
    job = services.jobs.get(job_id)
    if job.tenant != tenant:
        raise NotFoundError(f"no job {job_id}")
    return job


def encode_cursor(job: IngestionJob) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.job_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None or not isinstance(job_id, str):
            raise ValueError("bad cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise PermanentError("the cursor is not valid; use next_cursor of a page") from None
    return when, job_id


def list_jobs(services: Services, tenant: str, *, status: JobStatus | None = None,
              limit: int = 50, cursor: str | None = None) -> JobPage:
    """A page of the tenant's jobs, newest first, and the cursor of the next page (None on the
    last page)."""
    if not 1 <= limit <= MAX_PAGE:
        raise PermanentError(f"limit must be between 1 and {MAX_PAGE}")
    pages = services.jobs
    if not isinstance(pages, JobPages):
        raise ConfigurationError(f"{type(pages).__name__} cannot page through jobs")
    after = decode_cursor(cursor) if cursor else None
    found = pages.list_jobs_page(tenant=tenant, status=status, limit=limit + 1, after=after)
    jobs = found[:limit]
    return JobPage(jobs=jobs, next_cursor=encode_cursor(jobs[-1]) if len(found) > limit
                   else None)
