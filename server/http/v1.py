"""The versioned API our own client speaks: leases with tokens, heartbeats, rich results."""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Annotated, Any, Optional

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from stt_common.formats import RESULT_FORMATS

from ..ledger import Made, NotFound, TaskState, TaskView, Wait
from .deps import Ctx, admin, authenticated
from .schemas import (
    CLIENT_NAME,
    TASK_ID,
    ErrorIn,
    ErrorOut,
    HeartbeatIn,
    HeartbeatOut,
    LeaseOut,
    LeaseRequest,
    Message,
    RequeueIn,
    RequeueOut,
    ResultMeta,
    ResultOut,
    ScanOut,
    StatsOut,
)
from .serve import audio_response

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(authenticated)],
    responses={
        400: {"model": Message},
        401: {"model": Message},
        413: {"model": Message},
        422: {"description": "invalid request"},
    },
)
WAIT_REASON = "X-Wait-Reason"
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post(
    "/leases", response_model=LeaseOut, status_code=200, responses={204: {"description": "nothing to do right now"}}
)
async def request_lease(req: LeaseRequest, ctx: Ctx, request: Request) -> Any:
    """Lease the next task that fits this client's capabilities. 204 with `Retry-After` and
    `X-Wait-Reason`: work it may take is queued but not for it now (ask again then); a plain 204:
    nothing is queued for it."""
    claim = partial(ctx.ledger.leases.claim, req.client, capabilities=req.capabilities.model_dump())
    grant = await ctx.write(claim)
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
    )


AUDIO_RESPONSES: dict[int | str, dict[str, Any]] = {
    206: {"description": "partial content (Range)"},
    404: {"model": Message},
    409: {"model": Message},
    410: {"model": Message},
}


@router.get("/leases/{token}/audio", name="lease_audio", responses=AUDIO_RESPONSES)
def lease_audio(token: Token, ctx: Ctx) -> Any:
    """The leased audio (a part's own range of its file); send `Range: bytes=N-` to resume a broken download."""
    task = ctx.ledger.leases.leased_task(token)
    return audio_response(ctx.audio(task), task)


@router.post(
    "/leases/{token}/heartbeat",
    response_model=HeartbeatOut,
    responses={404: {"model": Message}, 409: {"model": Message}},
)
async def heartbeat(token: Token, body: HeartbeatIn, ctx: Ctx) -> HeartbeatOut:
    """Extend the lease. 409 means the lease is lost: stop working on the task."""
    return HeartbeatOut(deadline=await ctx.write(ctx.ledger.leases.heartbeat, token, body.progress))


# The multipart body, described by hand: text parts, a JSON object in `json`, metadata in `meta`.
RESULT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "meta": ResultMeta.model_json_schema(),
                        "txt": {"type": "string"},
                        "vtt": {"type": "string"},
                        "srt": {"type": "string"},
                        "json": {"type": "object", "description": "whisper-cli -oj output"},
                    },
                    "required": ["meta"],
                    "anyOf": [{"required": ["txt"]}, {"required": ["vtt"]}],
                },
                "encoding": {"meta": {"contentType": "application/json"}, "json": {"contentType": "application/json"}},
            }
        },
    }
}


@router.post(
    "/leases/{token}/result",
    response_model=ResultOut,
    openapi_extra=RESULT_BODY,
    responses={404: {"model": Message}, 413: {"model": Message}},
)
async def upload_result(token: Token, ctx: Ctx, request: Request, background: BackgroundTasks) -> ResultOut:
    """Upload the transcript (txt and/or vtt required; srt, json optional) with its metadata."""
    form = await request.form(max_files=8, max_fields=8)  # parts over 1 MB spool to disk
    try:
        unexpected = set(form.keys()) - {"meta", *RESULT_FORMATS}
        if unexpected:
            raise HTTPException(422, f"unexpected part(s): {', '.join(sorted(unexpected))[:200]}")
        meta = form.get("meta")
        if not isinstance(meta, str):
            raise HTTPException(422, "meta (ResultMeta as JSON) is required")
        try:
            info = ResultMeta.model_validate_json(meta)
        except ValidationError as e:
            raise HTTPException(422, f"meta is not valid ResultMeta JSON: {e.errors()[0]['msg']}") from None
        files: dict[str, bytes] = {}
        for fmt in RESULT_FORMATS:
            part = form.get(fmt)
            if part is None:
                continue
            data = part.encode() if isinstance(part, str) else await part.read()
            try:
                text = data.decode("utf-8")
                if fmt == "json" and not isinstance(json.loads(text), dict):
                    raise ValueError
            except UnicodeDecodeError:
                raise HTTPException(422, f"{fmt} is not valid UTF-8") from None
            except ValueError:
                raise HTTPException(422, "json is not a JSON object") from None
            files[fmt] = data
    finally:
        await form.close()
    if "txt" not in files and "vtt" not in files:
        raise HTTPException(422, "a result needs at least a txt or a vtt file")

    def write(task: TaskView) -> None:
        ctx.write_result(task, files, {**info.model_dump(), "protocol": "v1"})

    made = Made(info.model, info.backend, info.audio_seconds)
    done = await ctx.write(ctx.ledger.leases.complete, token, write, made)
    if done.file_ready:  # the file's last part: stitch after answering (housekeeping retries)
        background.add_task(ctx.stitcher.try_stitch, done.file_ready)
    return ResultOut(task_id=done.task.id, status="duplicate" if done.duplicate else "accepted", late=done.late)


@router.post("/leases/{token}/error", response_model=ErrorOut, responses={404: {"model": Message}})
async def report_error(token: Token, body: ErrorIn, ctx: Ctx) -> ErrorOut:
    """Report that this attempt failed; the task is retried until MAX_ATTEMPTS attempts failed."""
    view = await ctx.write(ctx.ledger.leases.fail, token, body.message, body.stderr_tail, body.retryable)
    return ErrorOut(task_id=view.id, task_state=view.state, attempts=view.attempts)


@router.post("/leases/{token}/release", response_model=ErrorOut, responses={404: {"model": Message}})
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
def get_task(task_id: Annotated[str, Path(pattern=TASK_ID)], ctx: Ctx) -> TaskView:
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
