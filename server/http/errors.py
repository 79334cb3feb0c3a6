"""Domain errors -> HTTP status, in one table; and the few handlers FastAPI's defaults get wrong
(a 405 that names one method, a 422 that fails on bytes or inf)."""

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


async def domain_error(_: Request, exc: Exception) -> JSONResponse:
    status = next(code for cls, code in STATUS if isinstance(exc, cls))
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=CHALLENGE if status == 401 else None)


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: a 422 that echoes `1e309` back must not become a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own handler fails (500) on bytes that are not UTF-8 and on inf/nan inputs.
    errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
    return JSONResponse({"detail": _finite(errors)}, status_code=422)


def install(app: FastAPI) -> None:
    for cls, _ in STATUS:
        app.add_exception_handler(cls, domain_error)
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A 405 names every method the path has (Starlette names only the first route's)."""
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        allowed: set[str] = set()
        for route in app.routes:
            if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
                allowed |= route.methods or set()
        return JSONResponse({"detail": exc.detail}, 405, headers={"Allow": ", ".join(sorted(allowed))})
