"""Domain errors -> HTTP status, in one table; and the few handlers FastAPI's defaults get wrong
(a 405 that names one method, a 422 that fails on bytes or inf, a client gone mid-body that became
a logged 500)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from ..auth import Forbidden, Unauthenticated
from ..disk import UnsafePath
from ..disk.audio import AudioChanged, AudioGone
from ..disk.results import ResultClash
from ..ledger import LeaseLost, LedgerError, NotFound
from ..parts.cut import CutError

# The most specific class first.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (LeaseLost, 409),
    (LedgerError, 400),
    (AudioGone, 410),
    (AudioChanged, 409),
    (CutError, 410),
    (UnsafePath, 400),
    (ResultClash, 409),
)
CHALLENGE = {"WWW-Authenticate": 'Basic realm="batch-stt"'}


OPENAI_PREFIX = "/v1/"  # the OpenAI-compatible routes (openai.py) answer errors in OpenAI's shape
_OPENAI_CODES = {401: "invalid_api_key", 404: "not_found", 413: "file_too_large", 415: "unsupported_file"}


def body(path: str, status: int, detail: Any) -> dict[str, Any]:
    """An error's JSON for a request to `path`: `{"detail": ...}`, or on the OpenAI routes
    `{"error": {"message", "type", "param", "code", ...}}` (a dict `detail` gives its own message,
    param, code and extra fields)."""
    if not path.startswith(OPENAI_PREFIX):
        return {"detail": detail}
    fields = dict(detail) if isinstance(detail, dict) else {"message": str(detail)}
    kind = "server_error" if status >= 500 else "rate_limit_error" if status == 429 else "invalid_request_error"
    error = {"type": kind, "param": None, "code": _OPENAI_CODES.get(status), **fields}
    return {"error": error}


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in STATUS if isinstance(exc, cls))
    headers = CHALLENGE if status == 401 else None
    return JSONResponse(body(request.url.path, status, str(exc)), status_code=status, headers=headers)


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: a 422 that echoes `1e309` back must not become a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler fails (500) on bytes that are not UTF-8 and on inf/nan inputs.
    errors = _finite(jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")}))
    if request.url.path.startswith(OPENAI_PREFIX):  # OpenAI says 400 for what FastAPI calls 422
        return JSONResponse(body(request.url.path, 400, {"message": str(errors)[:1000]}), status_code=400)
    return JSONResponse({"detail": errors}, status_code=422)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up while sending its body (a daemon killed mid-upload): nothing of it was
    kept, and its retry is a request of its own. Nobody reads this answer; the log stays quiet."""
    return Response(status_code=400)


def install(app: FastAPI) -> None:
    for cls, _ in STATUS:
        app.add_exception_handler(cls, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(ClientDisconnect, client_gone)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A 405 names every method the path has (Starlette names only the first route's)."""
        if request.url.path.startswith(OPENAI_PREFIX):
            content = body(request.url.path, exc.status_code, exc.detail)
            return JSONResponse(content, exc.status_code, headers=getattr(exc, "headers", None))
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        allowed: set[str] = set()
        for route in app.routes:
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
                allowed |= route.methods or set()
        return JSONResponse({"detail": exc.detail}, 405, headers={"Allow": ", ".join(sorted(allowed))})
