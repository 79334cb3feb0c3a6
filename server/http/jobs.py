"""Transcription as a service: upload a file, follow it, fetch its transcript in any format.

A job is a task underneath (server/ledger/jobs.py): cut into parts when long, scheduled before the
directory backlog (`priority`), only for hosts with at least the model tier asked for.
"""

from __future__ import annotations

import re
import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ..disk import uploads
from ..ledger import TIERS, JobState, JobView
from ..ops import callbacks
from ..settings import LANGUAGE_RE
from .deps import Ctx, authenticated
from .schemas import TASK_ID, JobOut, Message

router = APIRouter(
    prefix="/api/v1",
    tags=["jobs"],
    dependencies=[Depends(authenticated)],
    responses={401: {"model": Message}, 404: {"model": Message}},
)
MEDIA = {"txt": "text/plain", "vtt": "text/vtt", "srt": "application/x-subrip", "json": "application/json",
         "md": "text/markdown"}  # fmt: skip


def _out(ctx: Ctx, request: Request, job: JobView) -> JobOut:
    status_url = str(request.url_for("job_status", job_id=job.id))
    eta = None
    if job.state == JobState.RUNNING and 0 < job.progress < 100:
        elapsed = time.time() - job.created_at
        eta = round(elapsed * (100 - job.progress) / job.progress, 1)
    detected = uploads.meta(ctx.layout.jobs_dir, job.id).get("language") if job.state == JobState.DONE else None
    return JobOut(
        id=job.id,
        state=job.state,
        filename=job.filename,
        progress=job.progress,
        eta_seconds=eta,
        language=job.task.language,
        detected_language=detected,
        error=job.task.last_error if job.state == JobState.FAILED else None,
        created_at=job.created_at,
        status_url=status_url,
        result_url=status_url + "/result",
    )


def _field(form: Any, name: str) -> Optional[str]:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return str(value).strip() or None


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
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "language": {"type": "string", "pattern": LANGUAGE_RE.pattern},
                            "model": {"type": "string", "enum": list(TIERS)},
                            "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
                            "callback_url": {
                                "type": "string",
                                "pattern": "^https?://[^/?#]+",
                                "description": "called when the job ends; its host must be public (422 otherwise)",
                            },
                        },
                    }
                }
            },
            "required": True,
        }
    },
)
async def submit(request: Request, ctx: Ctx) -> JobOut:
    """Upload a file (multipart `file`; streamed to disk). Checked with ffprobe: not audio/video -> 415."""
    s = ctx.settings
    form = await request.form(max_files=1, max_fields=10)  # Starlette: 400 if not multipart; ours: 413
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "a job needs a `file`")
        language = (_field(form, "language") or "auto").lower()
        if not LANGUAGE_RE.match(language):
            raise HTTPException(422, f"language={language!r} must be 'auto' or a two-letter ISO 639-1 code")
        model = (_field(form, "model") or "").lower()
        if model and model not in TIERS:
            raise HTTPException(422, f"model={model!r} must be one of {', '.join(TIERS)}")
        try:
            priority = int(_field(form, "priority") or s.job_priority)
        except ValueError:
            raise HTTPException(422, "priority must be a whole number") from None
        if not -1000 <= priority <= 1000:
            raise HTTPException(422, "priority must be between -1000 and 1000")
        callback = _field(form, "callback_url")
        if callback:
            if len(callback) > 2000:
                raise HTTPException(422, "callback_url is over 2000 characters")
            try:  # resolving the name may take a moment: off the event loop
                await run_in_threadpool(callbacks.check, callback, ctx.settings.callback_allowed_hosts)
            except callbacks.UnsafeCallback as e:
                raise HTTPException(422, str(e)) from None
        job_id, name = uploads.new_job_id(), uploads.safe_name(upload.filename)
        try:
            stored, _ = await run_in_threadpool(uploads.store, ctx.layout.jobs_dir, job_id, name, upload.file)
        except uploads.NotMedia as e:
            raise HTTPException(415, str(e)) from None
        except FileNotFoundError:  # the server itself lacks ffprobe: not the client's mistake, but no 500
            raise HTTPException(503, "this server cannot check uploads: ffprobe is not installed") from None
        st = stored.stat()
        tier = TIERS.get(model, 0)
        job = await run_in_threadpool(
            ctx.ledger.jobs.create, job_id, name, f"{job_id}/{name}", st.st_size, st.st_mtime, language, tier, priority,
            callback,
        )  # fmt: skip
    finally:
        await form.close()
    ctx.wake()  # probe and cut it now
    return _out(ctx, request, job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    request: Request,
    ctx: Ctx,
    state: Optional[JobState] = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10**9),
) -> list[JobOut]:
    return [_out(ctx, request, j) for j in ctx.ledger.jobs.page(state, limit, offset)]


@router.get("/jobs/{job_id}", response_model=JobOut, name="job_status")
def job_status(job_id: str, request: Request, ctx: Ctx) -> JobOut:
    return _out(ctx, request, ctx.ledger.jobs.get(_checked(job_id)))


@router.get(
    "/jobs/{job_id}/result",
    responses={200: {"content": {t: {} for t in MEDIA.values()}}, 409: {"model": Message}},
    response_class=Response,
)
def job_result(job_id: str, ctx: Ctx, format: str = Query("txt", pattern="^(txt|vtt|srt|json|md)$")) -> Response:
    """The transcript in one format; 409 while the job is not done."""
    job = ctx.ledger.jobs.get(_checked(job_id))
    if job.state != JobState.DONE:
        raise HTTPException(409, f"job {job.id} is {job.state.value}, not done")
    try:
        text = uploads.transcript(ctx.layout.jobs_dir, job.id, job.filename, format)
    except FileNotFoundError:
        raise HTTPException(404, f"this job's transcript has no {format} (its client sent none)") from None
    return Response(text, media_type=f"{MEDIA[format]}; charset=utf-8")


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, request: Request, ctx: Ctx) -> JobOut:
    """Unfinished work stops: running clients get 409 at their next heartbeat."""
    return _out(ctx, request, ctx.ledger.jobs.cancel(_checked(job_id)))


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response)
def delete(job_id: str, ctx: Ctx) -> Response:
    """Cancel if needed, then forget the job and remove its upload and results."""
    ctx.delete_job(_checked(job_id))
    return Response(status_code=204)


def _checked(job_id: str) -> str:
    if not re.fullmatch(TASK_ID.strip("^$"), job_id):
        raise HTTPException(404, f"no such job: {job_id[:40]!r}")
    return job_id
