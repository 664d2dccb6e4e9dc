"""Typed errors built from the API's one error body, ``{"error": code, "detail": text}``.

``ApiError.from_response`` picks the class by the body's ``error`` code (``invalid_label`` →
:class:`InvalidLabel`), else by status (404 → :class:`NotFound`), so callers catch what they
can handle: ``except NotFound``, ``except InvalidImage``, or any ``ApiError``.
"""

from __future__ import annotations

import httpx


class XModelError(Exception):
    """Base of every error this package raises."""


class TransportError(XModelError):
    """The service could not be reached (after the retries allowed for the call)."""


class ApiError(XModelError):
    """The service answered with an error status."""

    status_code = 0
    code = "http_error"

    def __init__(
        self, status_code: int, code: str, detail: str, method: str = "", path: str = ""
    ) -> None:
        super().__init__(f"{method} {path}: {status_code} {code}: {detail}".strip())
        self.status_code, self.code, self.detail = status_code, code, detail
        self.method, self.path = method, path

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        code, detail = "http_error", response.text[:500]
        try:
            body = response.json()
            if isinstance(body, dict) and "error" in body:
                code, detail = str(body["error"]), str(body.get("detail", ""))
        except ValueError:
            pass
        kind = BY_CODE.get(code) or BY_STATUS.get(response.status_code)
        if kind is None:
            kind = ServerError if response.status_code >= 500 else ApiError
        return kind(
            response.status_code, code, detail, response.request.method, response.request.url.path
        )


class BadRequest(ApiError):
    """400: the request cannot be served as sent (the detail says why)."""


class InvalidImage(BadRequest):
    """400 ``invalid_image``: not an image, corrupt, too many pixels or a refused format."""


class InvalidArchive(BadRequest):
    """400 ``invalid_archive``: an unsafe or unreadable zip."""


class InvalidLabel(BadRequest):
    """400 ``invalid_label``: a label that does not fit the project's task or image."""


class Unauthorized(ApiError):
    """401: missing, invalid or revoked token."""


class Forbidden(ApiError):
    """403: the token may not do this (e.g. an annotator token training a model)."""


class NotFound(ApiError):
    """404: no such resource in the token's project."""


class Conflict(ApiError):
    """409."""


class PayloadTooLarge(ApiError):
    """413: a file or request over the service's limits."""


class UnsupportedMediaType(ApiError):
    """415."""


class ValidationError(ApiError):
    """422: a malformed payload (the detail names the field)."""


class ServerError(ApiError):
    """5xx."""


class ServiceUnavailable(ServerError):
    """503."""


BY_CODE: dict[str, type[ApiError]] = {
    "bad_request": BadRequest,
    "invalid_image": InvalidImage,
    "invalid_archive": InvalidArchive,
    "invalid_label": InvalidLabel,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "validation_error": ValidationError,
    "service_unavailable": ServiceUnavailable,
    "internal_error": ServerError,
}
BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    503: ServiceUnavailable,
}
