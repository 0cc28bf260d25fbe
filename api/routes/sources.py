"""``POST /v1/ingestions`` with ``{"url": ...}``: a document fetched from a URL by the workers.

The request is answered at once with the job; the store stage fetches the URL (see
``pipeline.sources`` for why there). A URL whose host resolves to a loopback, private or
link-local address is refused here with 400 unless the fetch settings allow it.
"""

import json

from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from api.schemas import SOURCE_MAX_CHARS, SOURCE_NAME_MAX_CHARS, StrictModel
from domain.job import IngestionJob
from pipeline.bootstrap import Services
from pipeline.producer import enqueue
from pipeline.uploads import url_event

#: UploadEvent's limit on source_uri.
URL_MAX_CHARS = 2048


class UrlIngestionRequest(StrictModel):
    """Ingest the document at an http(s) URL."""

    url: str = Field(min_length=8, max_length=URL_MAX_CHARS, pattern=r"^https?://",
                     description="http:// or https://; fetched by the workers.")
    source_name: str | None = Field(default=None, min_length=1,
                                    max_length=SOURCE_NAME_MAX_CHARS)
    source: str | None = Field(default=None, min_length=1, max_length=SOURCE_MAX_CHARS,
                               description="The document's identity (default: the URL).")
    callback_url: str | None = Field(default=None, max_length=URL_MAX_CHARS,
                                     pattern=r"^https?://",
                                     description="Called when the job ends (instead of the "
                                     "tenant's callback URL).")


def names_url(body: bytes) -> bool:
    """Whether a JSON body asks for a URL (rather than an object key)."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and "url" in data


async def ingest_url(services: Services, tenant: str, body: bytes) -> IngestionJob:
    """Validate the body (pydantic's ValidationError for a bad one), check the URL, enqueue."""
    named = UrlIngestionRequest.model_validate_json(body)
    event = await run_in_threadpool(url_event, services, tenant, named.url, named.source,
                                    named.source_name, named.callback_url)
    return await run_in_threadpool(enqueue, services, event)
