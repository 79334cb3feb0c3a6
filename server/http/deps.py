"""Every FastAPI dependency the routes use, in one place.

They are async: a sync dependency costs a thread-pool hop per request, which was a tenth of the
lease hot path. Checking a password (PBKDF2) still runs in the pool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Optional

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from ..auth import ANONYMOUS, Principal, Role
from ..context import Context
from ..ledger import TASK_ID, JobView, NotFound


async def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def authenticated(request: Request) -> Principal:
    """Anyone the server knows: enough to read the fleet's state (tasks, stats, the dashboard)."""
    auth = (await get_context(request)).auth
    if not auth.enabled:
        return ANONYMOUS
    return await run_in_threadpool(auth.identify, request.headers.get("authorization", ""))


def _role(role: Role) -> Callable[[Request], Awaitable[Principal]]:
    async def require(request: Request) -> Principal:
        auth = (await get_context(request)).auth
        if not auth.enabled and role != Role.ADMIN:
            return ANONYMOUS
        return await run_in_threadpool(auth.require, request.headers.get("authorization", ""), role)

    require.__name__ = role.value
    return require


volunteer, submitter, admin = _role(Role.VOLUNTEER), _role(Role.SUBMITTER), _role(Role.ADMIN)
Ctx = Annotated[Context, Depends(get_context)]
Submitter = Annotated[Principal, Depends(submitter)]
Volunteer = Annotated[Principal, Depends(volunteer)]


def credited(who: Principal) -> Optional[str]:
    """Whom a host's results count for: the credentials it asked with (None behind a proxy alone:
    then each host is its own volunteer)."""
    return None if who.anonymous else who.name


async def job_id(job_id: str) -> str:
    """A job's id from the path: one that cannot be a task id is a job that does not exist (404)."""
    if not TASK_ID.fullmatch(job_id):
        raise NotFound(f"no such job: {job_id[:40]!r}")
    return job_id


JobId = Annotated[str, Depends(job_id)]


async def own_job(job_id: JobId, ctx: Ctx, who: Submitter) -> JobView:
    """The job, if `who` may see it: its owner, an admin, or anyone while auth is off. Others' jobs
    do not exist for them (404, as for an id that was never used)."""
    job = await run_in_threadpool(ctx.ledger.jobs.get, job_id)
    if who.owner is not None and job.owner != who.owner:
        raise NotFound(f"no such job: {job_id}")
    return job


OwnJob = Annotated[JobView, Depends(own_job)]
