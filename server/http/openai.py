"""OpenAI-compatible speech-to-text, so tools that speak OpenAI's API (its client libraries, Open
WebUI, subtitle tools) use the fleet unchanged: `POST /v1/audio/transcriptions` and `/translations`
(into English) and `GET /v1/models`, with the native API's credentials (a bearer token is the api_key).

A request is a job underneath (at a priority above other jobs, cut into parts like any long file),
answered when the fleet finishes it, or after OPENAI_WAIT_SECONDS plus OPENAI_WAIT_FACTOR times the
audio's length with a 408 that names the job, to follow on the native API. A retry of the same
request (same file and options, as OpenAI's clients send after a 408) follows the same job.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse

from ..disk import uploads
from ..ledger import TIERS, JobRequest, JobState, JobView, model_tier
from ..transcripts import verbose
from .deps import Ctx, Submitter
from .jobs import submit_job
from .limits import Slots
from .openai_form import SPEECH_BODY, ResponseFormat, SpeechForm, speech_form
from .schemas import OpenAIError

UPLOAD_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
PRIORITY_ABOVE_JOBS = 10
POLL_SECONDS = 0.5
HOST_WINDOW = 600.0  # /v1/models: the models of hosts seen this recently
ENDED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    responses={code: {"model": OpenAIError} for code in (400, 401, 403, 404, 408, 413, 415, 429)},
)
Speech = Annotated[SpeechForm, Depends(speech_form)]
SPEECH_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/plain": {}, "text/vtt": {}}}
}


@router.post(
    "/audio/transcriptions",
    openapi_extra=SPEECH_BODY,
    responses=SPEECH_ANSWERS,
)
async def transcriptions(request: Request, ctx: Ctx, who: Submitter, form: Speech) -> Response:
    """OpenAI's transcription: the text (or subtitles) of the audio in its own language."""
    return await _answer(request, ctx, who.owner, form, translate=False)


@router.post(
    "/audio/translations",
    openapi_extra=SPEECH_BODY,
    responses=SPEECH_ANSWERS,
)
async def translations(request: Request, ctx: Ctx, who: Submitter, form: Speech) -> Response:
    """OpenAI's translation: the speech in English (whisper's --translate, so only hosts with a
    multilingual model whose client can translate take it)."""
    return await _answer(request, ctx, who.owner, form, translate=True)


@router.get("/models")
async def models(ctx: Ctx, _: Submitter) -> dict[str, Any]:
    """The model tiers the fleet can serve now (hosts seen in the last 10 minutes), and whisper-1."""
    hosts = await run_in_threadpool(ctx.ledger.fleet.hosts)
    now = time.time()
    best = max((model_tier(h.model) for h in hosts if now - h.last_seen < HOST_WINDOW), default=0)
    names = [name for name, tier in TIERS.items() if tier <= best]
    return {
        "object": "list",
        "data": [{"id": n, "object": "model", "created": 0, "owned_by": "batch-stt"} for n in
                 (["whisper-1"] if names else []) + names],
    }  # fmt: skip


async def _answer(request: Request, ctx: Ctx, owner: Optional[str], form: SpeechForm, translate: bool) -> Response:
    slots: Slots = request.app.state.openai_slots
    if not slots.take():
        message = f"{slots.size} requests are waiting for the fleet already (OPENAI_MAX_WAITING): try again later"
        raise HTTPException(429, {"message": message, "code": "rate_limit_exceeded"}, headers={"Retry-After": "10"})
    try:
        return await _transcribe(request, ctx, owner, form, translate)
    finally:
        slots.give()


async def _transcribe(request: Request, ctx: Ctx, owner: Optional[str], form: SpeechForm, translate: bool) -> Response:
    key = await run_in_threadpool(form.request_key, translate, owner)
    job_id = await run_in_threadpool(ctx.ledger.jobs.find_request, key, owner)
    if job_id is None:
        ask = JobRequest(
            language=form.language,
            model_tier=form.model_tier,
            priority=min(ctx.settings.job_priority + PRIORITY_ABOVE_JOBS, 1000),
            owner=owner,
            request_key=key,
            translate=translate,
            prompt=form.prompt,
            temperature=form.temperature,
            speakers=form.speakers,
        )
        try:
            job_id = (await submit_job(ctx, form.upload, ask)).id
        except uploads.NotMedia as e:
            raise HTTPException(415, {"message": str(e), "param": "file"}) from None
    job = await _wait(request, ctx, job_id)
    if job.state == JobState.DONE:
        return await run_in_threadpool(_render, ctx, job, form, "translate" if translate else "transcribe")
    if job.state in ENDED:
        raise HTTPException(400, {"message": f"the file could not be transcribed: {job.task.last_error or job.state}",
                                  "code": "transcription_failed", "job_id": job.id})  # fmt: skip
    status_url = str(request.url_for("job_status", job_id=job.id))
    message = f"the fleet has not finished this file yet: follow job {job.id} at {status_url}"
    raise HTTPException(408, {"message": message, "code": "timeout", "job_id": job.id, "status_url": status_url})


async def _wait(request: Request, ctx: Ctx, job_id: str) -> JobView:
    """The job once it ended, or as it is when the wait is over (or the caller has gone)."""
    job = await run_in_threadpool(ctx.ledger.jobs.get, job_id)
    seconds = (job.task.duration_ms or 0) / 1000
    deadline = time.monotonic() + ctx.settings.openai_wait_seconds + ctx.settings.openai_wait_factor * seconds
    while job.state not in ENDED and time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(POLL_SECONDS)
        job = await run_in_threadpool(ctx.ledger.jobs.get, job_id)
    return job


def _render(ctx: Ctx, job: JobView, form: SpeechForm, task: str) -> Response:
    folder = ctx.layout.job_folder(job.id)
    fmt = form.response_format
    if fmt in (ResponseFormat.SRT, ResponseFormat.VTT, ResponseFormat.TEXT):
        text = uploads.transcript(folder, job.filename, "txt" if fmt == ResponseFormat.TEXT else fmt.value)
        return PlainTextResponse(text, media_type="text/vtt" if fmt == ResponseFormat.VTT else "text/plain")
    whisper_json = uploads.transcript(folder, job.filename, "json")
    if fmt == ResponseFormat.JSON:
        return JSONResponse({"text": verbose.plain_text(verbose.entries_of(whisper_json))})
    language = uploads.meta(folder).get("language") or job.task.language
    duration = (job.task.duration_ms or 0) / 1000
    words = "word" in form.granularities
    temperature = job.task.temperature or 0.0
    shaped = verbose.verbose_json(whisper_json, task=task, language=language, duration=duration, words=words,
                                  temperature=temperature)  # fmt: skip
    return JSONResponse(shaped)
