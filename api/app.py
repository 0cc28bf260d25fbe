"""The FastAPI application: controllers that authenticate, call one pipeline function, and
shape its answer. ``create_app`` is this entry point's composition root."""

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api import errors
from api.dependencies import AccountsDep, PrincipalDep, ServicesDep
from api.multipart import METADATA_MAX_CHARS, metadata_field, receive
from api.routes import check as check_routes
from api.routes import events, sources
from api.routes import usage as usage_routes
from api.schemas import (
    SOURCE_MAX_CHARS,
    SOURCE_NAME_MAX_CHARS,
    AcceptedOut,
    DeletedOut,
    HealthOut,
    IssuedKeyOut,
    JobListOut,
    JobOut,
    KeyListOut,
    KeyOut,
    ObjectIngestionRequest,
    ReadyOut,
    RegisteredOut,
    RegisterRequest,
    SearchOut,
    SearchRequest,
    VerifyRequest,
)
from domain.errors import PermanentError
from domain.events import UploadEvent
from domain.job import IngestionJob
from domain.status import JobStatus
from domain.uploads import check_size
from pipeline import accounts as account_cases
from pipeline import jobs as job_cases
from pipeline.accounts import AccountServices
from pipeline.bootstrap import Services, bootstrap_accounts, bootstrap_process
from pipeline.documents import delete_document
from pipeline.health import readiness
from pipeline.producer import enqueue, new_job_id
from pipeline.redrive import retry
from pipeline.search import search
from pipeline.settings import Settings, process_settings
from pipeline.uploads import enqueue_staged, staged_upload_event, stored_object_event

#: Multipart framing allowed beyond the file itself before Content-Length alone refuses it.
MULTIPART_OVERHEAD = 64 * 1024
MAX_JSON_BODY = 64 * 1024


_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "Plain text or Markdown, UTF-8."},
                "source": {"type": "string", "maxLength": SOURCE_MAX_CHARS,
                           "description": "The document's identity (default: the file name)."},
                "source_name": {"type": "string", "maxLength": SOURCE_NAME_MAX_CHARS},
                "callback_url": {"type": "string", "maxLength": 2048,
                                 "description": "Called when the job ends."},
                "metadata": {"type": "string", "maxLength": METADATA_MAX_CHARS,
                             "description": "Custom metadata: a JSON object of name: value "
                             "(string, number, boolean, ISO date, list of strings)."},
            }}},
        "application/json": {"schema": {"oneOf": [
            ObjectIngestionRequest.model_json_schema(),
            sources.UrlIngestionRequest.model_json_schema()]}},
    },
}

v1 = APIRouter(prefix="/v1", responses=errors.documented(400, 401, 404, 422, 503))


@v1.post("/ingestions", status_code=202, response_model=AcceptedOut, tags=["ingestions"],
         openapi_extra={"requestBody": _UPLOAD_BODY},
         responses=errors.documented(409, 413, 415))
async def create_ingestion(request: Request, response: Response, principal: PrincipalDep,
                           services: ServicesDep) -> AcceptedOut:
    """Upload a file (multipart, streamed), name an object already under
    ``<tenant>/incoming/``, or give an http(s) ``url`` the workers fetch; answers at once
    with the job to watch."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        body = await _json_body(request)
        try:
            if sources.names_url(body):
                job = _accepted(await sources.ingest_url(services, principal.tenant, body))
            else:
                named = ObjectIngestionRequest.model_validate_json(body)
                event = await run_in_threadpool(stored_object_event, services,
                                                principal.tenant, named.object_key,
                                                named.source_name, named.source,
                                                named.callback_url, named.metadata)
                job = await run_in_threadpool(_enqueue, services, event)
        except ValidationError as exc:
            return _invalid(exc)  # type: ignore[return-value]
    elif media == "multipart/form-data":
        job = await _upload(request, content_type, principal.tenant, services)
    else:
        return errors.error_response(  # type: ignore[return-value]
            415, "unsupported_media_type", "send multipart/form-data (a file) or "
            "application/json (an object key)")
    response.headers["Location"] = f"/v1/ingestions/{job.job_id}"
    return job


async def _upload(request: Request, content_type: str, tenant: str,
                  services: Services) -> AcceptedOut:
    """Receive the file, stage it under ``incoming/`` and enqueue its job; a refusal at any
    step leaves nothing staged."""
    limit = services.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit():
        check_size(max(int(declared) - MULTIPART_OVERHEAD, 0), limit)
    directory = services.settings.data_dir.resolve() / "api-uploads"
    directory.mkdir(parents=True, exist_ok=True)
    upload = await receive(request.stream(), content_type, limit, directory)
    assert upload.path is not None
    job_id = new_job_id()
    try:
        event = await run_in_threadpool(
            staged_upload_event, services, tenant, upload.path,
            upload.fields.get("source_name") or upload.filename or "upload",
            upload.content_type, upload.fields.get("source") or None, staging_id=job_id,
            callback_url=upload.fields.get("callback_url") or None,
            metadata=metadata_field(upload.fields.get("metadata")))
    finally:
        upload.path.unlink(missing_ok=True)
    job = await run_in_threadpool(enqueue_staged, services, event, job_id)
    return _accepted(job)


def _enqueue(services: Services, event: UploadEvent) -> AcceptedOut:
    return _accepted(enqueue(services, event))


def _accepted(job: IngestionJob) -> AcceptedOut:
    return AcceptedOut(job_id=job.job_id, document_id=job.document_id, status=job.status.value)


async def _json_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise PermanentError("the JSON body is too long")
    return bytes(body)


def _invalid(exc: ValidationError) -> JSONResponse:
    return errors.error_response(422, "validation_error",
                                 errors._validation_message(exc.errors()))


@v1.get("/ingestions/{job_id}", response_model=JobOut, tags=["ingestions"])
def get_ingestion(job_id: str, principal: PrincipalDep, services: ServicesDep) -> JobOut:
    """Where one job is, and why it failed."""
    return JobOut.of(job_cases.get_job(services, principal.tenant, job_id))


@v1.get("/ingestions", response_model=JobListOut, tags=["ingestions"])
def list_ingestions(
    principal: PrincipalDep,
    services: ServicesDep,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=job_cases.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobListOut:
    """The tenant's jobs, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
    page = job_cases.list_jobs(services, principal.tenant, status=status, limit=limit,
                               cursor=cursor)
    return JobListOut(jobs=[JobOut.of(job) for job in page.jobs], next_cursor=page.next_cursor)


@v1.post("/ingestions/{job_id}/retry", status_code=202, response_model=JobOut,
         tags=["ingestions"], responses=errors.documented(409))
def retry_ingestion(job_id: str, principal: PrincipalDep, services: ServicesDep) -> JobOut:
    """Re-run a failed job from the stage that failed (409 unless it failed)."""
    return JobOut.of(retry(services, job_id, principal.tenant))


@v1.post("/search", response_model=SearchOut, tags=["search"])
def search_documents(body: SearchRequest, principal: PrincipalDep,
                     services: ServicesDep) -> SearchOut:
    """Semantic search over the tenant's documents: the same hits as `conversa search`."""
    return SearchOut(hits=search(services, principal.tenant, body.query, body.top_k,
                                 body.metadata_filter()))


@v1.delete("/documents/{document_id}", response_model=DeletedOut, tags=["documents"])
def delete(document_id: str, principal: PrincipalDep, services: ServicesDep) -> DeletedOut:
    """Delete a document: its vectors, records and (unless shared) stored objects."""
    document = delete_document(services, principal.tenant, document_id)
    return DeletedOut(document_id=document.document_id, deleted=True)


@v1.post("/users", status_code=202, response_model=RegisteredOut, tags=["users"],
         responses=errors.documented(429))
def register(request: Request, body: RegisterRequest, accounts: AccountsDep) -> RegisteredOut:
    """Register (or sign in again) with an email; a verification code is sent to it, beside
    any code sent before. 429 with Retry-After past the limits per email and per address."""
    user = account_cases.register(accounts, body.email, _address(request))
    return RegisteredOut(email=user.email, message="a verification code was sent")


@v1.post("/users/verify", status_code=201, response_model=IssuedKeyOut, tags=["users"],
         responses=errors.documented(429))
def verify(request: Request, body: VerifyRequest, accounts: AccountsDep) -> IssuedKeyOut:
    """Give back the code: the user is active and gets an API key, shown this once. 429 with
    Retry-After past the guesses per email (across its codes) or the limit per address."""
    return IssuedKeyOut.of(account_cases.verify(accounts, body.email, body.code,
                                                _address(request)))


def _address(request: Request) -> str:
    """The caller's address, as the server saw it (behind a proxy, run uvicorn with
    ``--proxy-headers`` and ``--forwarded-allow-ips`` so this is the client's)."""
    return request.client.host if request.client else "unknown"


@v1.get("/keys", response_model=KeyListOut, tags=["keys"])
def list_keys(principal: PrincipalDep, accounts: AccountsDep) -> KeyListOut:
    """The caller's keys, by prefix only."""
    return KeyListOut(keys=[KeyOut.of(k) for k in account_cases.list_keys(accounts, principal)])


@v1.post("/keys/{key_id}/rotate", status_code=201, response_model=IssuedKeyOut, tags=["keys"])
def rotate_key(key_id: str, principal: PrincipalDep, accounts: AccountsDep) -> IssuedKeyOut:
    """A new key in place of this one, which is revoked."""
    return IssuedKeyOut.of(account_cases.rotate_key(accounts, principal, key_id))


@v1.delete("/keys/{key_id}", response_model=KeyOut, tags=["keys"])
def revoke_key(key_id: str, principal: PrincipalDep, accounts: AccountsDep) -> KeyOut:
    """Revoke one of the caller's keys."""
    return KeyOut.of(account_cases.revoke_key(accounts, principal, key_id))


health = APIRouter(tags=["health"])


@health.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@health.get("/readyz", response_model=ReadyOut, responses=errors.documented(503))
def readyz(request: Request, services: ServicesDep, accounts: AccountsDep) -> Any:
    """Whether the broker, MongoDB and the stores answer."""
    report = readiness(services, accounts, {"broker": request.app.state.broker_probe})
    down = {name: problem for name, problem in report.items() if problem}
    if down:
        return errors.error_response(503, "not_ready", "; ".join(
            f"{name}: {problem}" for name, problem in sorted(down.items())))
    return ReadyOut(status="ready", checks=dict.fromkeys(report, "ok"))


def broker_probe(url: str) -> Any:
    def probe() -> None:
        import kombu

        options = {"socket_timeout": 2, "socket_connect_timeout": 2}
        connection: Any = kombu.Connection(
            url, connect_timeout=2, transport_options=options)
        with connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)

    return probe


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               accounts: AccountServices | None = None) -> FastAPI:
    """The app, wired from settings unless the caller passes services (tests do)."""
    settings = settings or (services.settings if services else process_settings())
    services = services or bootstrap_process(settings)
    app = FastAPI(title="ConverSA Ingest", version="1", description=__doc__,
                  responses=errors.documented(500))
    app.state.services = services
    app.state.accounts = accounts or bootstrap_accounts(settings)
    app.state.broker_probe = broker_probe(settings.require_broker_url())
    errors.install(app)
    app.include_router(v1)
    app.include_router(check_routes.router)
    app.include_router(usage_routes.router)
    app.include_router(events.router)
    app.include_router(health)
    return app

