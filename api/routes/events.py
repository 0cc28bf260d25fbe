"""A tenant's job events as server-sent events, and the tenant's callback settings.

``GET /v1/events`` streams ``text/event-stream``: one ``event: job`` per change of one of the
tenant's jobs (``data`` is the JSON a callback carries), ``id`` the event's id; a client that
reconnects with ``Last-Event-ID`` (browsers' EventSource do) gets what it missed, from the
last ``CONVERSA_CALLBACKS__EVENTS_KEPT`` events. A comment line every ``HEARTBEAT_SECONDS``
keeps proxies from closing an idle stream.
"""

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api import errors
from api.dependencies import PrincipalDep, ServicesDep
from api.schemas import StrictModel
from domain.callbacks import SIGNATURE_HEADER, TenantCallback
from pipeline.callbacks import set_callback_url, tenant_callback

HEARTBEAT_SECONDS = 15.0
router = APIRouter(prefix="/v1", tags=["events"], responses=errors.documented(401, 503))


class CallbackIn(StrictModel):
    url: str | None = Field(max_length=2048, pattern=r"^https?://",
                            description="POSTed when a job ends; null removes it.")


class CallbackOut(BaseModel):
    url: str | None
    secret: str = Field(description="The HMAC-SHA256 key of every callback's signature.")
    signature_header: str = Field(description="t=<unix>,v1=<hex HMAC(secret, '<t>.<body>')>")

    @classmethod
    def of(cls, callback: TenantCallback) -> "CallbackOut":
        return cls(url=callback.url, secret=callback.secret, signature_header=SIGNATURE_HEADER)


@router.get("/callback", response_model=CallbackOut)
def get_callback(principal: PrincipalDep, services: ServicesDep) -> CallbackOut:
    """The tenant's callback URL and signing secret (made on first ask)."""
    return CallbackOut.of(tenant_callback(services, principal.tenant))


@router.put("/callback", response_model=CallbackOut, responses=errors.documented(400))
def put_callback(body: CallbackIn, principal: PrincipalDep,
                 services: ServicesDep) -> CallbackOut:
    """Set the URL called when any of the tenant's jobs ends ``done`` or ``failed`` (an
    upload's own ``callback_url`` wins); 400 for a URL outbound requests may not reach."""
    return CallbackOut.of(set_callback_url(services, principal.tenant, body.url))


@router.get("/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_events(
    request: Request, principal: PrincipalDep, services: ServicesDep,
    last_event_id: Annotated[str | None, Header(max_length=64,
                                                pattern=r"^[0-9]+(-[0-9]+)?$")] = None,
    after: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9]+(-[0-9]+)?$",
                                       description="Resume after this event id (as "
                                       "Last-Event-ID); default: from now on.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="Close the stream "
                                       "after this many events.")] = None,
) -> StreamingResponse:
    """The tenant's job events, as they happen (server-sent events)."""
    tenant = principal.tenant
    start = after or last_event_id or ""

    async def frames() -> AsyncIterator[str]:
        position = start or await run_in_threadpool(services.events.latest, tenant)
        sent = 0
        yield ": connected\n\n"
        while not await request.is_disconnected():
            batch = await run_in_threadpool(services.events.read, tenant, position,
                                            HEARTBEAT_SECONDS)
            if not batch:
                yield ": keep-alive\n\n"
                continue
            for event_id, event in batch:
                position = event_id
                yield f"id: {event_id}\nevent: job\ndata: {json.dumps(event)}\n\n"
                sent += 1
                if limit is not None and sent >= limit:
                    return

    return StreamingResponse(frames(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
