"""FastAPI application factory and the background scan/expiry loop."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import api_legacy, api_v1
from .auth import Authenticator
from .context import Context
from .db import init_db, make_engine
from .events import EventLog
from .leases import Ledger, LedgerError
from .limits import BodyLimitMiddleware
from .paths import UnsafePath
from .results import remove_stale_temps
from .settings import Settings

log = logging.getLogger("batch-stt.server")


def build_context(settings: Settings, event_stream=None) -> Context:
    settings.prepare_dirs()
    engine = make_engine(settings.database_url, settings.sqlite_synchronous)
    init_db(engine)
    events = EventLog(settings.log_file, **({} if event_stream is None else {"stream": event_stream}))
    ledger = Ledger(engine, lease_seconds=settings.lease_seconds, legacy_lease_seconds=settings.legacy_lease_seconds,
                    max_attempts=settings.max_attempts, events=events)
    auth = Authenticator(dict(settings.auth_tokens), settings.admin_tokens, settings.users_file)
    return Context(settings, ledger, auth, events)


def _housekeeping(ctx: Context, stop: threading.Event) -> None:
    """Checksum new files, rescan every SCAN_INTERVAL, sweep expired leases (claims also do it)."""
    sweep = max(1.0, min(30.0, ctx.settings.lease_seconds / 4))
    interval = ctx.settings.scan_interval
    waited = 0.0
    while True:
        try:
            ctx.checksum()
            if stop.wait(sweep):
                return
            waited += sweep
            ctx.ledger.expire_due()
            if interval and waited >= interval:
                waited = 0.0
                ctx.scan()
        except Exception:  # keep the loop alive; the next round retries
            log.exception("housekeeping failed")
            if stop.wait(sweep):
                return


def create_app(settings: Settings, event_stream=None) -> FastAPI:
    ctx = build_context(settings, event_stream)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        remove_stale_temps(settings.results_dir)
        ctx.scan()  # registering is quick; checksums follow in the housekeeping thread
        stop = threading.Event()
        worker = threading.Thread(target=_housekeeping, args=(ctx, stop), name="housekeeping", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)
            ctx.ledger.engine.dispose()
            ctx.events.close()

    app = FastAPI(title="batch-stt", version="1.0", lifespan=lifespan,
                  description="Volunteer batch transcription: lease a task, transcribe it, upload the result.")
    app.state.ctx = ctx
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_result_bytes + 64 * 1024)

    @app.exception_handler(LedgerError)
    async def ledger_error(_: Request, exc: LedgerError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        # FastAPI's own handler echoes the input back and fails (500) on bytes that are not UTF-8.
        errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(UnsafePath)
    async def unsafe_path(_: Request, exc: UnsafePath):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/health", tags=["health"])
    def health():
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "not ready"}})
    def ready():
        problems = []
        try:
            ctx.ledger.stats(active_window=0)
        except Exception as e:  # any database trouble means "not ready", never a 500
            problems.append(f"database: {type(e).__name__}")
        if not os.access(settings.audio_dir, os.R_OK | os.X_OK):
            problems.append("audio dir not readable")
        if not os.access(settings.results_dir, os.W_OK):
            problems.append("results dir not writable")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return {"status": "ready"}

    app.include_router(api_legacy.router)
    app.include_router(api_v1.router)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (WORKERS > 1): each reads the settings itself."""
    return create_app(Settings.from_env())
