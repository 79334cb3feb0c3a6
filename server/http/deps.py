"""Every FastAPI dependency the routes use, in one place.

They are async: a sync dependency costs a thread-pool hop per request, which was a tenth of the
lease hot path. Checking a password (PBKDF2) still runs in the pool, off the event loop.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from ..auth import ANONYMOUS, Principal
from ..context import Context
from ..ledger import TASK_ID, NotFound


async def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def authenticated(request: Request) -> Principal:
    auth = (await get_context(request)).auth
    if not auth.enabled:
        return ANONYMOUS
    return await run_in_threadpool(auth.identify, request.headers.get("authorization", ""))


async def admin(request: Request) -> Principal:
    auth = (await get_context(request)).auth
    return await run_in_threadpool(auth.require_admin, request.headers.get("authorization", ""))


Ctx = Annotated[Context, Depends(get_context)]


async def job_id(job_id: str) -> str:
    """A job's id from the path: one that cannot be a task id is a job that does not exist (404)."""
    if not TASK_ID.fullmatch(job_id):
        raise NotFound(f"no such job: {job_id[:40]!r}")
    return job_id


JobId = Annotated[str, Depends(job_id)]
