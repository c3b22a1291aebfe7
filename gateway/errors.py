"""Error types and handlers: every error leaves as OpenAI error JSON."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.protocol import ErrorDetail, ErrorResponse
from gateway.serving.responses import JSONBytes

logger = logging.getLogger(__name__)


class GatewayError(Exception):
    """An error with the status, type and code an OpenAI client expects."""

    status = 500
    type = "internal_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers
        if code is not None:
            self.code = code


class BadRequest(GatewayError):
    """400: the request is malformed; `param` names the field."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class Unauthorized(GatewayError):
    """401: missing or wrong API key."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(GatewayError):
    """404: no pool serves this model id."""

    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class BodyTooLarge(GatewayError):
    """413: the body is over the configured limit."""

    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(GatewayError):
    """429: the gateway is at its limit of requests in flight; send Retry-After."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BodyTimeout(GatewayError):
    """408: the client did not send its whole body before the deadline."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ClientClosed(GatewayError):
    """The client went away before the reply was ready (nginx's 499)."""

    status = 499
    type = "client_closed_request"


class AllMinersFailed(GatewayError):
    """502: every selected miner failed or answered with something unusable."""

    status = 502
    type = "upstream_error"
    code = "all_miners_failed"


class AllMinersBusy(GatewayError):
    """503: every miner asked said it is busy (429); the route plans the request again first."""

    status = 503
    type = "service_unavailable"
    code = "all_miners_busy"


class NoEligibleMiner(GatewayError):
    """503: the pool has no miner that may be asked now."""

    status = 503
    type = "service_unavailable"
    code = "no_eligible_miner"


class PoolFull(NoEligibleMiner):
    """503: every eligible miner is at its learned concurrency limit (after the queue)."""

    code = "pool_full"


class DeadlinePassed(GatewayError):
    """504: the deadline passed before any miner gave a usable reply."""

    status = 504
    type = "timeout_error"
    code = "deadline_exceeded"


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, object]:
    """The OpenAI error JSON, in the shape of `ErrorResponse`."""
    detail = ErrorDetail(message=message, type=type_, param=param, code=code)
    return ErrorResponse(error=detail).model_dump()


def error_response(exc: GatewayError) -> JSONBytes:
    """A `GatewayError` as a response."""
    return JSONBytes(
        error_body(exc.message, exc.type, exc.param, exc.code),
        status_code=exc.status,
        headers=exc.headers,
    )


def bad_request_from(exc: ValidationError | RequestValidationError) -> BadRequest:
    """A 400 naming the first bad field from pydantic's `loc`, with no internals."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"] if part not in ("body",)]
    param = ".".join(loc) or None
    message = str(err["msg"])
    if err["type"] == "missing":
        message = f"'{param}' is a required property"
    elif param:
        message = f"Invalid value for '{param}': {message}"
    return BadRequest(message, param=param)


async def _gateway_error(_: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, GatewayError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, RequestValidationError)
    return error_response(bad_request_from(exc))


def offered(request: Request) -> str:
    """The API endpoints this app offers, as `METHOD /path` joined by commas."""
    paths = request.app.openapi()["paths"]  # built once, then cached by FastAPI
    return ", ".join(
        f"{method.upper()} {path}"
        for path, methods in paths.items()
        if path.startswith("/v1/")
        for method in methods
    )


async def _http_error(request: Request, exc: Exception) -> JSONBytes:
    assert isinstance(exc, StarletteHTTPException)
    type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message, code = str(exc.detail), None
    if exc.status_code in (404, 405) and request.url.path.startswith("/v1/"):
        # An OpenAI client's user needs to hear the endpoint is missing, not just "Not Found".
        type_, code = "invalid_request_error", "unknown_url"
        if exc.status_code == 405:
            code = "method_not_allowed"
        message = (
            f"This gateway does not offer {request.method} {request.url.path}; "
            f"it offers {offered(request)}."
        )
    return JSONBytes(
        error_body(message, type_, None, code),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected(_: Request, exc: Exception) -> JSONBytes:
    logger.exception("unexpected error", exc_info=exc)
    return JSONBytes(
        error_body("The gateway hit an internal error.", "internal_error", None, None),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the OpenAI error shape."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
