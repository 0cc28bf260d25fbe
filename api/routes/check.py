"""``GET /v1/check``: the caller's tenant checked as `conversa check` does (report only)."""

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from adapters.celery.broker_counts import jobs_in_flight
from api import errors
from api.deps import PrincipalDep, ServicesDep
from pipeline.check import check

router = APIRouter(prefix="/v1", tags=["check"],
                   responses=errors.documented(401, 503))


class FindingOut(BaseModel):
    ref: str
    detail: str


class CheckOut(BaseModel):
    tenant: str
    #: True when nothing was found (the CLI's exit status 0).
    clean: bool
    counts: dict[str, int]
    examples: dict[str, list[FindingOut]]


@router.get("/check", response_model=CheckOut)
def get_check(principal: PrincipalDep, services: ServicesDep,
              examples: Annotated[int, Query(ge=0, le=100)] = 5) -> CheckOut:
    """Vectors of no current version, current versions with missing vectors, documents whose
    objects are gone, objects nothing uses and jobs stuck without a message, for the
    caller's tenant: counts per kind and examples. Repairs are for operators
    (`conversa check --repair`)."""
    in_flight = jobs_in_flight(services.settings.require_broker_url())
    return CheckOut.model_validate(check(services, principal.tenant, in_flight=in_flight)
                                   .as_dict(examples))
