"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from ..ops.metrics import CONTENT_TYPE
from .deps import Ctx, authenticated

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", responses={503: {"description": "not ready"}})
def ready(ctx: Ctx) -> Any:
    problems = []
    try:
        ctx.ledger.reports.stats(active_window=0)
    except Exception as e:  # any database trouble means "not ready", never a 500
        problems.append(f"database: {type(e).__name__}")
    if not os.access(ctx.settings.audio_dir, os.R_OK | os.X_OK):
        problems.append("audio dir not readable")
    if not os.access(ctx.settings.results_dir, os.W_OK):
        problems.append("results dir not writable")
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return {"status": "ready"}


@router.get(
    "/metrics",
    dependencies=[Depends(authenticated)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(ctx: Ctx) -> Response:
    """Prometheus text format (prometheus-client), behind the API's authentication."""
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)
