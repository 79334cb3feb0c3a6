"""FastAPI application factory: wiring, the mapping of domain errors to HTTP, the housekeeping loop."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any, Optional

from fastapi import Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .auth import Authenticator
from .context import Context
from .disk.audio import AudioChanged, AudioGone
from .disk.paths import UnsafePath
from .disk.results import ResultClash, remove_stale_temps
from .http import dashboard
from .http import jobs as api_jobs
from .http import legacy as api_legacy
from .http import v1 as api_v1
from .http.deps import authenticated
from .http.limits import BodyLimitMiddleware, LatencyMiddleware
from .http.origin import SameOriginMiddleware
from .ledger import Assigner, CooldownRule, LeaseLost, Ledger, LedgerError, NotFound
from .ledger.events import EventLog
from .ops.alerts import Alerts
from .ops.metrics import CONTENT_TYPE, Metrics
from .ops.notify import Notifier, Targets
from .parts.cut import CutError
from .settings import Settings

log = logging.getLogger("batch-stt.server")

# Domain errors -> HTTP status; the most specific class first.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotFound, 404),
    (LeaseLost, 409),
    (LedgerError, 400),
    (AudioGone, 410),
    (AudioChanged, 409),
    (CutError, 410),
    (UnsafePath, 400),
    (ResultClash, 409),
)


def build_context(settings: Settings, event_stream: Optional[IO[str]] = None) -> Context:
    """Raises MigrationError (one line) when the database cannot be brought to this release's schema."""
    settings.prepare_dirs()
    events = EventLog(settings.log_file, stream=sys.stdout if event_stream is None else event_stream)
    split_ms = settings.split_seconds * 1000
    if split_ms and not (shutil.which("ffprobe") and shutil.which("ffmpeg")):
        log.warning(
            "SPLIT_SECONDS=%d needs ffmpeg and ffprobe on the server: long files stay whole", settings.split_seconds
        )
        split_ms = 0
    ledger = Ledger.open(
        settings.database_url,
        lease_seconds=settings.lease_seconds,
        legacy_lease_seconds=settings.legacy_lease_seconds,
        max_attempts=settings.max_attempts,
        events=events,
        sqlite_synchronous=settings.sqlite_synchronous,
        splitting=bool(split_ms),
        assigner=Assigner(settings.scheduler, settings.replica_budget),
        cooldown=CooldownRule(settings.cooldown_strikes, settings.cooldown_seconds),
    )
    auth = Authenticator(dict(settings.auth_tokens), settings.admin_tokens, settings.users_file)
    metrics = Metrics(ledger)
    targets = Targets(
        settings.notify_urls, settings.webhook_url, settings.webhook_secret, settings.callback_allowed_hosts
    )
    notifier = Notifier(settings.data_dir / "notifications", targets, settings.notify_events)
    events.subscribe(metrics.observe)
    events.subscribe(Alerts(ledger, notifier).on_event)
    return Context(settings, ledger, auth, events, metrics, notifier, split_ms)


def _housekeeping(ctx: Context, stop: threading.Event) -> None:
    """Re-cut unstarted files for this SPLIT_SECONDS once, then: probe, cut and checksum new files,
    stitch finished ones, rescan every SCAN_INTERVAL, sweep expired leases (claims also do it).
    A scan wakes it early."""
    sweep = max(1.0, min(30.0, ctx.settings.lease_seconds / 4))
    interval = ctx.settings.scan_interval
    last_scan = last_sweep = time.monotonic()
    try:
        ctx.apply_split_seconds()
    except Exception:  # the files stay as they were cut; new files still follow the setting
        log.exception("applying SPLIT_SECONDS to files not yet started failed")
    while not stop.is_set():
        try:
            ctx.probe()  # first: while splitting is on, no file goes out before its length is known
            ctx.checksum()
            ctx.stitch_ready()
            ctx.nap(sweep)
            now = time.monotonic()
            if now - last_sweep >= sweep:
                last_sweep = now
                ctx.ledger.leases.expire_due()
            if interval and now - last_scan >= interval:
                last_scan = now
                ctx.scan()
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping failed")
            ctx.nap(sweep)


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: a 422 that echoes `1e309` back must not become a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def create_app(settings: Settings, event_stream: Optional[IO[str]] = None) -> FastAPI:
    ctx = build_context(settings, event_stream)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for folder in (settings.results_dir, ctx.jobs_dir):
            if folder.is_dir():
                remove_stale_temps(folder)
        ctx.scan()  # registering is quick; checksums follow in the housekeeping thread
        stop = threading.Event()
        worker = threading.Thread(target=_housekeeping, args=(ctx, stop), name="housekeeping", daemon=True)
        worker.start()
        sender = threading.Thread(target=ctx.notifier.run, args=(stop,), name="notify", daemon=True)
        sender.start()  # also for jobs' callback URLs
        try:
            yield
        finally:
            stop.set()
            ctx.wake()
            ctx.notifier.wake.set()
            worker.join(timeout=5)
            if sender.is_alive():
                sender.join(timeout=15)
            ctx.close()

    app = FastAPI(
        title="batch-stt",
        version="1.0",
        lifespan=lifespan,
        description="Volunteer batch transcription: lease a task, transcribe it, upload the result.",
    )
    app.state.ctx = ctx
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_result_bytes + 64 * 1024,
        upload_limit=settings.max_upload_bytes + 64 * 1024,
        upload_path="/api/v1/jobs",
    )
    app.add_middleware(SameOriginMiddleware)  # before any body is read: a cross-site write goes no further
    app.add_middleware(LatencyMiddleware, histogram=ctx.metrics.requests)

    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in STATUS if isinstance(exc, cls))
        return JSONResponse({"detail": str(exc)}, status_code=status)

    for cls, _ in STATUS:
        app.add_exception_handler(cls, domain_error)

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

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler fails (500) on bytes that are not UTF-8 and on inf/nan inputs.
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        return JSONResponse({"detail": _finite(errors)}, status_code=422)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "not ready"}})
    def ready() -> Any:
        problems = []
        try:
            ctx.ledger.reports.stats(active_window=0)
        except Exception as e:  # any database trouble means "not ready", never a 500
            problems.append(f"database: {type(e).__name__}")
        if not os.access(settings.audio_dir, os.R_OK | os.X_OK):
            problems.append("audio dir not readable")
        if not os.access(settings.results_dir, os.W_OK):
            problems.append("results dir not writable")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return {"status": "ready"}

    @app.get(
        "/metrics",
        tags=["health"],
        dependencies=[Depends(authenticated)],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    )
    def metrics() -> Response:
        """Prometheus text format (prometheus-client), behind the API's authentication."""
        return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE)

    app.include_router(api_legacy.router)
    app.include_router(api_v1.router)
    app.include_router(api_jobs.router)
    app.include_router(dashboard.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (WORKERS > 1): each reads the settings itself."""
    return create_app(Settings.from_env())
