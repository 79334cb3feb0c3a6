"""The versioned API our own client speaks: leases with tokens, heartbeats, rich results."""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from ..ledger import TASK_ID, Ask, Made, NotFound, TaskState, TaskView, Wait
from .deps import Ctx, Volunteer, admin, authenticated, credited, get_context, volunteer
from .direct import answer, body, direct, parsed
from .forms import RESULT_BODY, ResultForm, result_form
from .schemas import (
    CLIENT_NAME,
    ErrorIn,
    ErrorOut,
    HeartbeatIn,
    HeartbeatOut,
    LeaseOut,
    LeaseRequest,
    Message,
    RequeueIn,
    RequeueOut,
    ResultOut,
    ScanOut,
    StatsOut,
)
from .serve import audio_response

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Message},
    401: {"model": Message},
    403: {"model": Message},
    413: {"model": Message},
    422: {"description": "invalid request"},
}
router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticated)], responses=_RESPONSES)
# A client daemon's routes: a volunteer's credentials (or an admin's).
leases = APIRouter(prefix="/api/v1", tags=["leases"], dependencies=[Depends(volunteer)], responses=_RESPONSES)
WAIT_REASON = "X-Wait-Reason"
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TOKEN: TypeAdapter[str] = TypeAdapter(Token)


async def request_lease(req: LeaseRequest, ctx: Ctx, request: Request, who: Volunteer) -> Any:
    """Lease the next task that fits this client's capabilities. 204 with `Retry-After` and
    `X-Wait-Reason`: work it may take is queued but not for it now (ask again then); a plain 204:
    nothing is queued for it."""
    caps = req.capabilities.model_dump()
    grant = await ctx.claims.submit(Ask(req.client, capabilities=caps, principal=credited(who)))
    if isinstance(grant, Wait):
        headers = {"Retry-After": str(math.ceil(grant.retry_after)), WAIT_REASON: grant.reason.value}
        return Response(status_code=204, headers=headers)
    if grant is None:
        return Response(status_code=204)
    size, sha256 = grant.size, grant.sha256
    if grant.parent_id:  # a part: its audio is cut now, so the lease can name its size and checksum
        cut = await run_in_threadpool(ctx.part_for_lease, grant)
        if cut is None:
            return Response(status_code=204)
        size, sha256 = cut
    lease_seconds = ctx.settings.lease_seconds
    return LeaseOut(
        task_id=grant.task_id,
        token=grant.token,
        path=grant.path,
        audio_url=f"{request.scope.get('root_path', '')}{router.prefix}/leases/{grant.token}/audio",
        language=grant.language,
        size=size,
        sha256=sha256,
        deadline=grant.deadline,
        lease_seconds=lease_seconds,
        heartbeat_seconds=max(1.0, lease_seconds / 4),
        attempt=grant.attempt,
        replica=grant.replica,
        file_task_id=grant.parent_id,
        start_seconds=None if grant.start_ms is None else grant.start_ms / 1000,
        end_seconds=None if grant.end_ms is None else grant.end_ms / 1000,
        file_duration_seconds=grant.duration_ms / 1000 if grant.duration_ms else None,
        translate=grant.translate,
        prompt=grant.prompt,
        temperature=grant.temperature,
        check_start_seconds=grant.spot[0] if grant.spot else None,
        check_end_seconds=grant.spot[1] if grant.spot else None,
    )


async def serve_lease(request: Request) -> Response:
    who = await volunteer(request)
    grant = await request_lease(await body(request, LeaseRequest), await get_context(request), request, who)
    return grant if isinstance(grant, Response) else answer(grant)


leases.add_api_route(
    "/leases",
    request_lease,
    methods=["POST"],
    response_model=LeaseOut,
    status_code=200,
    responses={204: {"description": "nothing to do right now"}},
    route_class_override=direct(serve_lease, volunteer, get_context),
)


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "partial content (Range)"},
    404: {"model": Message},
    409: {"model": Message},
    410: {"model": Message},
}


@leases.get("/leases/{token}/audio", name="lease_audio", responses=AUDIO_RESPONSES)
def lease_audio(token: Token, ctx: Ctx) -> Any:
    """The leased audio (a part's own range of its file); send `Range: bytes=N-` to resume a broken download."""
    task = ctx.ledger.leases.leased_task(token)
    return audio_response(ctx.audio(task), task)


@leases.post(
    "/leases/{token}/heartbeat",
    response_model=HeartbeatOut,
    responses={404: {"model": Message}, 409: {"model": Message}},
)
async def heartbeat(token: Token, body: HeartbeatIn, ctx: Ctx) -> HeartbeatOut:
    """Extend the lease. 409 means the lease is lost: stop working on the task."""
    return HeartbeatOut(deadline=await ctx.write(ctx.ledger.leases.heartbeat, token, body.progress, body.paused))


async def upload_result(
    token: Token, ctx: Ctx, form: Annotated[ResultForm, Depends(result_form)], background: BackgroundTasks
) -> ResultOut:
    """Upload the transcript (txt and/or vtt required; srt, json optional) with its metadata."""
    info = form.meta
    upload = ctx.upload(form.files, {**info.model_dump(), "protocol": "v1"})
    made = Made(info.model, info.backend, info.audio_seconds, None if info.spot is None else tuple(info.spot))
    done = await ctx.results.submit((token, upload, made))
    if done.verdict.settled:  # held results a vote settled: removed after answering
        background.add_task(ctx.settled, done)
    if done.file_ready:  # the file's last part: stitch after answering (housekeeping retries)
        background.add_task(ctx.stitcher.try_stitch, done.file_ready)
    status = "duplicate" if done.duplicate else "pending" if done.held else "accepted"
    return ResultOut(task_id=done.task.id, status=status, late=done.late)


async def serve_result(request: Request) -> Response:
    await volunteer(request)
    token = parsed(TOKEN, request.path_params["token"], ("path", "token"))
    background = BackgroundTasks()
    response = answer(await upload_result(token, await get_context(request), await result_form(request), background))
    response.background = background
    return response


leases.add_api_route(
    "/leases/{token}/result",
    upload_result,
    methods=["POST"],
    response_model=ResultOut,
    openapi_extra=RESULT_BODY,
    responses={
        404: {"model": Message},
        409: {"model": Message, "description": "the lease was released or superseded, or a sidecar is in the way"},
        413: {"model": Message},
    },
    route_class_override=direct(serve_result, volunteer, get_context, result_form),
)


@leases.post("/leases/{token}/error", response_model=ErrorOut, responses={404: {"model": Message}})
async def report_error(token: Token, body: ErrorIn, ctx: Ctx) -> ErrorOut:
    """Report that this attempt failed; the task is retried until MAX_ATTEMPTS attempts failed."""
    view = await ctx.write(ctx.ledger.leases.fail, token, body.message, body.stderr_tail, body.retryable)
    return ErrorOut(task_id=view.id, task_state=view.state, attempts=view.attempts)


@leases.post("/leases/{token}/release", response_model=ErrorOut, responses={404: {"model": Message}})
async def release(token: Token, ctx: Ctx) -> ErrorOut:
    """Hand an unfinished task back (the volunteer stopped the client); no attempt is used up."""
    view = await ctx.write(ctx.ledger.leases.release, token)
    return ErrorOut(task_id=view.id, task_state=view.state, attempts=view.attempts)


@router.get("/tasks", response_model=list[TaskView])
def list_tasks(
    ctx: Ctx,
    state: Optional[TaskState] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> list[TaskView]:
    return ctx.ledger.reports.tasks(state, limit, offset)


@router.get("/tasks/{task_id}", response_model=TaskView, responses={404: {"model": Message}})
def get_task(task_id: Annotated[str, Path(pattern=TASK_ID.pattern)], ctx: Ctx) -> TaskView:
    return ctx.ledger.reports.task(task_id)


@router.get("/stats", response_model=StatsOut)
def stats(ctx: Ctx) -> StatsOut:
    s = ctx.ledger.reports.stats()
    return StatsOut(
        counts=s.counts,
        audio_hours_done=round(s.seconds_done / 3600, 3),
        bytes_done=s.bytes_done,
        bytes_left=s.bytes_left,
        active_leases=s.active_leases,
        active_clients=s.active_clients,
        scheduler=ctx.settings.scheduler.value,
        replicas=s.replicas,
        replicas_won=s.replicas_won,
        validation_audio_hours=round(s.check_seconds / 3600, 3),
        hosts=ctx.ledger.fleet.hosts(),
    )


@router.post(
    "/admin/requeue",
    response_model=RequeueOut,
    dependencies=[Depends(admin)],
    responses={403: {"model": Message}, 404: {"model": Message}},
)
def requeue(body: RequeueIn, ctx: Ctx) -> RequeueOut:
    requeued = ctx.ledger.catalogue.requeue(body.ids, failed=body.failed)
    ctx.wake()  # a requeued file that was cut is probed and cut anew
    return RequeueOut(requeued=requeued)


@router.post(
    "/admin/hosts/{name}/clear-cooldown",
    response_model=Message,
    dependencies=[Depends(admin)],
    responses={403: {"model": Message}, 404: {"model": Message}},
)
def clear_cooldown(name: Annotated[str, Path(pattern=CLIENT_NAME)], ctx: Ctx) -> Message:
    """Let a cooling-down host have work again at once, and forget its strikes."""
    if not ctx.ledger.fleet.clear(name):
        raise NotFound(f"no host named {name!r}")
    return Message(detail=f"{name} may have work again")


@router.post("/admin/scan", response_model=ScanOut, dependencies=[Depends(admin)], responses={403: {"model": Message}})
def scan(ctx: Ctx) -> ScanOut:
    """Rescan AUDIO_DIR now (checksums of new files follow in the background)."""
    return ScanOut.model_validate(ctx.scan(), from_attributes=True)
