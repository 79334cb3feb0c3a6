"""The FastAPI application: wiring only. Routes live in http/, the mapping of domain errors to HTTP in
http/errors.py, the background in housekeeping.py."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Optional

from fastapi import FastAPI

from .context import build_context
from .housekeeping import Background
from .http import dashboard, errors, health, jobs, legacy, openai, v1, volunteers
from .http.limits import BodyLimitMiddleware, LatencyMiddleware, Slots
from .http.origin import SameOriginMiddleware
from .settings import Settings


def create_app(settings: Settings, event_stream: Optional[IO[str]] = None) -> FastAPI:
    ctx = build_context(settings, event_stream)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        background = Background(ctx)
        background.start()
        try:
            yield
        finally:
            await ctx.claims.close()
            await ctx.results.close()
            background.stop()

    # FastAPI looks for an OpenTelemetry provider on every request unless told not to: 4 % of the
    # event loop's time under load, for spans nobody collects unless an SDK is set up.
    traced = settings.opentelemetry
    app = FastAPI(
        telemetry={"tracing": traced, "metrics": traced, "logs": traced},
        title="batch-stt",
        version="1.0",
        lifespan=lifespan,
        description="Volunteer batch transcription: lease a task, transcribe it, upload the result.",
    )
    app.state.ctx = ctx
    app.state.openai_slots = Slots(settings.openai_max_waiting)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_result_bytes + 64 * 1024,
        upload_limit=settings.max_upload_bytes + 64 * 1024,
        upload_paths=("/api/v1/jobs", *openai.UPLOAD_PATHS),
    )
    app.add_middleware(SameOriginMiddleware)  # before any body is read: a cross-site write goes no further
    app.add_middleware(LatencyMiddleware, histogram=ctx.metrics.requests)
    errors.install(app)
    # Routes are matched in order: the daemons' own, most of the requests, first, and on the app
    # itself (their router already holds their prefix and dependencies): FastAPI matches an included
    # router's routes twice a request, a twentieth of a lease -> result cycle's CPU.
    app.router.routes.extend(v1.leases.routes)
    for module in (health, legacy, v1, jobs, openai, volunteers, dashboard):
        app.include_router(module.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (WORKERS > 1): each reads the settings itself."""
    app = create_app(Settings.from_env())
    settle_collector()
    return app


def settle_collector() -> None:
    """For a serving process, once the app is built. A lease -> result cycle leaves a few thousand
    short-lived objects; at CPython's default threshold (700) the cyclic collector ran about every
    tenth cycle and walked the ~10^5 objects of the loaded modules and the app whenever an older
    generation came up: 3-8 % of a cycle's CPU in-process (scripts/bench_app.py), about a tenth
    over HTTP (scripts/loadtest.py). Frozen, those are never walked again; at 20,000 the young
    generation is collected every few hundred cycles, and reference counting frees nearly
    all of it before that."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
