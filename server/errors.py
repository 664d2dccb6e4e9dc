"""One error hierarchy and one error body shape: ``{"error": code, "detail": text}``."""

from __future__ import annotations

import json
import logging
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope, Send

log = logging.getLogger(__name__)
T = TypeVar("T")


class AppError(Exception):
    """Base of every error the API answers on purpose. Subclasses set status and code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(AppError):
    status_code, code = 400, "bad_request"


class InvalidImage(AppError):
    status_code, code = 400, "invalid_image"


class InvalidArchive(AppError):
    status_code, code = 400, "invalid_archive"


class InvalidLabel(AppError):
    status_code, code = 400, "invalid_label"


class Unauthorized(AppError):
    status_code, code = 401, "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status_code, code = 403, "forbidden"


class NotFound(AppError):
    status_code, code = 404, "not_found"


class Conflict(AppError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code, code = 415, "unsupported_media_type"


class ServiceUnavailable(AppError):
    status_code, code = 503, "service_unavailable"


def found(resource: T | None, what: str) -> T:
    """``resource``, or ``404 <what> not found`` when the lookup found none."""
    if resource is None:
        raise NotFound(f"{what} not found")
    return resource


def error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


async def send_error(send: Send, error: AppError, *, close: bool = False) -> None:
    """Answer ``error`` from ASGI middleware, before any route or handler runs, in the one
    body shape; ``close`` asks the client to drop the connection (a body left unread)."""
    body = json.dumps(error_body(error.code, error.detail)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _format_validation_errors(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "malformed request"


def _methods_on_path(routes: list[BaseRoute], scope: Scope) -> set[str]:
    methods: set[str] = set()
    for route in routes:
        if route.matches(scope)[0] == Match.NONE:
            continue
        included = getattr(route, "original_router", None)  # an include_router() wrapper
        if included is not None:
            methods |= _methods_on_path(included.routes, scope)
        else:
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def allowed_methods(request: Request, fallback: str = "") -> list[str]:
    """Every method some route accepts on this request's path, plus OPTIONS."""
    methods = _methods_on_path(request.app.router.routes, request.scope)
    methods |= {m.strip() for m in fallback.split(",") if m.strip()}
    return sorted(methods | {"OPTIONS"})


_CONNECTION_PHRASES = (
    "connection failed",
    "server closed the connection",
    "terminating connection",
    "the database system is",
    "connection is closed",
    "connection is lost",
    "connection socket closed",
    "couldn't reset connection",
    "Connection refused",
)


def _database_unreachable(exc: DBAPIError) -> bool:
    """The connection to the database was refused or dropped (not a bug of the request).

    PostgreSQL says so by SQLSTATE: class 08 (connection exception) and 57P (the server is
    shutting down, starting up or unreachable). A driver error without a SQLSTATE (the socket
    closed, the connection lost) is client-side and also means the connection; the phrases
    cover drivers that give no SQLSTATE at all."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate).startswith(("08", "57P"))
    return any(phrase in str(exc) for phrase in _CONNECTION_PHRASES)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, including FastAPI's own, through the one body shape."""

    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.detail), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("validation_error", _format_validation_errors(exc)), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; a path served by
            # several routes (GET and DELETE /items/{id}) must list all of them.
            allow = ", ".join(allowed_methods(request, (exc.headers or {}).get("Allow", "")))
            if request.method == "OPTIONS":
                return Response(status_code=204, headers={"Allow": allow})
            return JSONResponse(
                error_body(
                    "method_not_allowed", f"{request.method} is not allowed here; allowed: {allow}"
                ),
                405,
                headers={"Allow": allow},
            )
        codes = {
            401: "unauthorized",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        code = codes.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    def _unavailable(exc: Exception) -> JSONResponse:
        # A restart or failover: the pool reconnects by itself (pre-ping) once it is back.
        log.warning("database unavailable: %s", (str(exc) or repr(exc)).splitlines()[0][:300])
        return JSONResponse(
            error_body("database_unavailable", "the database is unavailable; retry shortly"),
            503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if _database_unreachable(exc):
            return _unavailable(exc)
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "unexpected server error"), 500)

    @app.exception_handler(DisconnectionError)
    async def _disconnected(_: Request, exc: DisconnectionError) -> JSONResponse:
        # The pool's pre-ping found the connection dead and could not open a new one
        # (SQLAlchemy raises this, not a driver error, once its reconnect attempts fail).
        return _unavailable(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "unexpected server error"), 500)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {
        "description": text,
        "content": {"application/json": {"example": error_body(code, text)}},
    }
    for status, code, text in [
        (400, "bad_request", "the request cannot be carried out as sent (the detail says why)"),
        (401, "unauthorized", "missing or invalid bearer token"),
        (403, "forbidden", "this action needs an owner (or the admin) token"),
        (404, "not_found", "no such resource in your project"),
        (422, "validation_error", "query.k: Input should be greater than 0"),
    ]
}
