"""One JSON error shape for every 4xx and 5xx: ``{"error": {"code", "message"}}``.

Domain errors map to status codes here and nowhere else; anything unexpected is a 500 with a
fixed message (the details go to the log, never to the client).
"""

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import (
    ConfigurationError,
    ConversaError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from domain.uploads import EmptyUploadError, UnsupportedTypeError, UploadTooLargeError
from domain.users import AuthenticationError, TooManyRequestsError, VerificationError

log = logging.getLogger("api")

#: (domain error, status, code), most specific first.
_MAPPING: tuple[tuple[type[ConversaError], int, str], ...] = (
    (AuthenticationError, 401, "unauthorized"),
    (TooManyRequestsError, 429, "too_many_requests"),
    (VerificationError, 400, "verification_failed"),
    (NotFoundError, 404, "not_found"),
    (UploadTooLargeError, 413, "too_large"),
    (UnsupportedTypeError, 415, "unsupported_type"),
    (EmptyUploadError, 400, "empty_upload"),
    (PermanentError, 400, "bad_request"),
    (TransientError, 503, "unavailable"),
    (ConfigurationError, 503, "not_configured"),
    (ConversaError, 409, "conflict"),
)
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
               413: "too_large", 415: "unsupported_media_type", 422: "validation_error",
               429: "too_many_requests", 503: "unavailable"}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def for_domain_error(exc: ConversaError) -> JSONResponse:
    status, code = next((status, code) for kind, status, code in _MAPPING
                        if isinstance(exc, kind))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, ConfigurationError):
        log.error("configuration error: %s", exc)
        return error_response(status, code, "the service is not configured to do this")
    if isinstance(exc, TooManyRequestsError):
        return error_response(status, code, str(exc),
                              {"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    if isinstance(exc, TransientError):
        log.warning("transient error: %s", exc)
        retry_after = f"{max(1, round(exc.retry_after or 1))}"
        return error_response(status, code, "a server the API needs is not answering; try "
                              "again later", {"Retry-After": retry_after})
    return error_response(status, code, str(exc) or code.replace("_", " "), headers)


def _validation_message(errors: Any) -> str:
    parts = []
    for error in list(errors)[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where
                     else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "the request is not valid"


def install(app: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConversaError)
        return for_domain_error(exc)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "validation_error", _validation_message(exc.errors()))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, dict(exc.headers or {}) or None)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(ConversaError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all with the error shape."""
    return {status: {"model": ErrorBody, "description": _HTTP_CODES.get(status, "error")}
            for status in statuses}
