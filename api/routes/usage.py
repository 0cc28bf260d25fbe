"""`GET /v1/usage`: what the caller's tenant's jobs cost, per day and in all."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api import errors
from api.deps import PrincipalDep, ServicesDep
from pipeline.usage import report


class UsageOut(BaseModel):
    """One day's (or, for ``total``, every day's) usage of the tenant's jobs."""

    day: date | None
    jobs: int
    embed_requests: int
    embed_tokens: int
    keyword_requests: int
    keyword_tokens: int
    bytes_stored: int
    vectors_written: int
    estimated_cost: float
    currency: str
    unpriced_models: list[str]


class UsageReportOut(BaseModel):
    tenant: str
    since: date | None
    days: list[UsageOut]
    total: UsageOut


router = APIRouter(prefix="/v1", tags=["usage"], responses=errors.documented(400, 401, 422,
                                                                              503))


@router.get("/usage", response_model=UsageReportOut)
def get_usage(principal: PrincipalDep, services: ServicesDep,
              since: Annotated[date | None, Query(description="From this day on (UTC).")]
              = None) -> UsageReportOut:
    """What the tenant's jobs cost per day of their creation (UTC): embedder and keyword
    requests and tokens, bytes stored, vectors written, and an estimated price; the same
    figures as `conversa usage --tenant T`."""
    days, totals = report(services, principal.tenant, since)
    currency = services.settings.usage.currency
    empty: dict[str, object] = {"day": None, "jobs": 0, "embed_requests": 0, "embed_tokens": 0,
             "keyword_requests": 0, "keyword_tokens": 0, "bytes_stored": 0,
             "vectors_written": 0, "estimated_cost": 0.0, "currency": currency,
             "unpriced_models": []}
    total = totals[0].as_dict() if totals else empty
    return UsageReportOut(
        tenant=principal.tenant, since=since,
        days=[UsageOut.model_validate(line.as_dict()) for line in days],
        total=UsageOut.model_validate(total))
