"""Transcription as a service: upload a file, follow it, fetch its transcript in any format.

A job is a task underneath (ledger/jobs.py): cut into parts when long, scheduled before the
directory backlog (`priority`), only for hosts with at least the model tier asked for.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..disk import uploads
from ..ledger import JobRequest, JobState, JobView
from ..transcripts.formats import FORMAT_PATTERN, MEDIA_TYPES
from .deps import Ctx, OwnJob, Submitter, submitter
from .forms import JOB_BODY, JobForm, job_form
from .schemas import JobOut, Message

router = APIRouter(
    prefix="/api/v1",
    tags=["jobs"],
    dependencies=[Depends(submitter)],
    responses={401: {"model": Message}, 403: {"model": Message}, 404: {"model": Message}},
)


def _out(ctx: Ctx, request: Request, job: JobView, callback_secret: Optional[str] = None) -> JobOut:
    status_url = str(request.url_for("job_status", job_id=job.id))
    eta = None
    if job.state == JobState.RUNNING and 0 < job.progress < 100:
        elapsed = time.time() - job.created_at
        eta = round(elapsed * (100 - job.progress) / job.progress, 1)
    done = job.state == JobState.DONE
    meta = uploads.meta(ctx.layout.job_folder(job.id)) if done else {}
    return JobOut(
        id=job.id,
        state=job.state,
        filename=job.filename,
        progress=job.progress,
        eta_seconds=eta,
        language=job.task.language,
        detected_language=meta.get("language"),
        speakers=meta.get("speakers") or [],
        error=job.task.last_error if job.state == JobState.FAILED else None,
        created_at=job.created_at,
        status_url=status_url,
        result_url=status_url + "/result",
        callback_secret=callback_secret,
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses={
        400: {"model": Message},
        413: {"model": Message},
        415: {"model": Message},
        422: {"model": Message},
        503: {"model": Message},
    },
    openapi_extra=JOB_BODY,
)
async def submit(request: Request, ctx: Ctx, who: Submitter, form: Annotated[JobForm, Depends(job_form)]) -> JobOut:
    """Upload a file (multipart `file`; streamed to disk). Checked with ffprobe: not audio/video -> 415.
    With a `callback_url`, the answer carries the `callback_secret` its callback is signed with (once)."""
    secret = secrets.token_hex(32) if form.callback_url else None
    ask = JobRequest(
        language=form.language,
        model_tier=form.model_tier,
        priority=form.priority,
        callback_url=form.callback_url,
        callback_secret=secret,
        validate=form.validate,
        speakers=form.speakers,
        owner=who.owner,
    )
    try:
        job = await submit_job(ctx, form.upload, ask)
    except uploads.NotMedia as e:
        raise HTTPException(415, str(e)) from None
    return _out(ctx, request, job, secret)


async def submit_job(ctx: Ctx, source: UploadFile, ask: JobRequest) -> JobView:
    """The upload as a new job (uploads.NotMedia if it is not audio or video)."""
    try:
        return await run_in_threadpool(ctx.submit_job, source.file, source.filename, ask)
    except FileNotFoundError:  # the server itself lacks ffprobe: not the client's mistake, but no 500
        raise HTTPException(503, "this server cannot check uploads: ffprobe is not installed") from None


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    request: Request,
    ctx: Ctx,
    who: Submitter,
    state: Optional[JobState] = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
) -> list[JobOut]:
    """Newest first: the caller's own jobs (an admin's: everyone's)."""
    return [_out(ctx, request, j) for j in ctx.ledger.jobs.page(state, limit, offset, owner=who.owner)]


@router.get("/jobs/{job_id}", response_model=JobOut, name="job_status")
def job_status(job: OwnJob, request: Request, ctx: Ctx) -> JobOut:
    return _out(ctx, request, job)


@router.get(
    "/jobs/{job_id}/result",
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}, 409: {"model": Message}},
    response_class=Response,
)
def job_result(job: OwnJob, ctx: Ctx, format: str = Query("txt", pattern=FORMAT_PATTERN)) -> Response:
    """The transcript in one format; 409 while the job is not done."""
    if job.state != JobState.DONE:
        raise HTTPException(409, f"job {job.id} is {job.state.value}, not done")
    try:
        text = uploads.transcript(ctx.layout.job_folder(job.id), job.filename, format)
    except FileNotFoundError:
        raise HTTPException(404, f"this job's transcript has no {format} (its client sent none)") from None
    return Response(text, media_type=f"{MEDIA_TYPES[format]}; charset=utf-8")


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job: OwnJob, request: Request, ctx: Ctx) -> JobOut:
    """Unfinished work stops: running clients get 409 at their next heartbeat."""
    return _out(ctx, request, ctx.ledger.jobs.cancel(job.id))


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
def delete(job: OwnJob, ctx: Ctx) -> Response:
    """Cancel if needed, then forget the job and remove its upload and results."""
    ctx.delete_job(job.id)
    return Response(status_code=204)
