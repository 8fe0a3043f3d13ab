"""Every error leaves as JSON {error, detail}; no stack trace ever reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.errors import BrokenBundle, InputError, PhotoError, UnknownUserId
from pipelines.live import ErasedUser, ItemNotFound, NotReady, UnknownItem
from service.schemas import ErrorOut
from service.upload import UploadRejected
from vision.types import ImageTooLarge
from warehouse.errors import LockedWarehouse, WarehouseError

log = logging.getLogger(__name__)

ERROR_RESPONSES = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "The body could not be parsed"), (404, "Unknown user or item"), (410, "The user was erased"), (413, "Upload too large"),
        (415, "Not a JPEG, PNG or WebP image"), (422, "Invalid request: the detail names the field"),
        (503, "No model loaded yet, or the warehouse is busy"),
    )
}
_HTTP_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_request"}


def _error(status: int, error: str, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def _field(loc) -> str:
    return ".".join(str(part) for part in loc if part != "body") or "body"


# Nothing to serve (yet): the client may retry. Starlette picks the most specific class.
_UNAVAILABLE = (
    (NotReady, 503, "not_ready"),
    (LockedWarehouse, 503, "busy"),
    (WarehouseError, 503, "not_ready"),
    (BrokenBundle, 503, "broken_model"),
)


def _answer(status: int, code: str):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return _error(status, code, str(exc))

    return handler


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [f"{_field(e['loc'])}: {e['msg']}" for e in exc.errors()[:10]]
        return _error(422, "invalid_request", "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # Headers matter: 405 carries Allow, 401 carries WWW-Authenticate.
        return _error(exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc.detail), exc.headers)

    @app.exception_handler(UploadRejected)
    async def upload(request: Request, exc: UploadRejected):
        return _error(exc.status, exc.error, exc.detail)

    @app.exception_handler(ImageTooLarge)
    async def too_many_pixels(request: Request, exc: ImageTooLarge):
        return _error(413, "too_large", f"photo: {exc}")

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError):
        if isinstance(exc, UnknownUserId):
            return _error(404, "unknown_user", str(exc))
        if isinstance(exc, ItemNotFound):
            return _error(404, "not_found", str(exc))
        if isinstance(exc, UnknownItem):
            return _error(422, "unknown_item", str(exc))
        if isinstance(exc, ErasedUser):
            return _error(410, "erased", str(exc))
        if isinstance(exc, PhotoError):
            cause = exc.__cause__
            if isinstance(cause, ImageTooLarge):
                return _error(413, "too_large", str(exc))
            code = "no_face" if type(cause).__name__ == "NoFaceFound" else "unusable_photo"
            return _error(422, code, str(exc))
        return _error(422, "invalid_request", str(exc))

    for exc_type, status, code in _UNAVAILABLE:
        app.add_exception_handler(exc_type, _answer(status, code))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal", "an unexpected error happened; it is in the service's log")
