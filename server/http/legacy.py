"""The protocol existing clients in the field speak. Keep it byte-for-byte compatible.

GET /task -> 200 audio body + X-Task-ID, X-Language | 204;  POST /result {"id","vtt"};  POST /error {"id", "error"?}.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from ..disk import audio
from ..parts.cut import CutError
from ..transcripts.vtt import vtt_to_text
from .deps import Ctx, Volunteer, credited, volunteer
from .schemas import LegacyErrorIn, LegacyResultIn, Message
from .serve import audio_response

ERROR_CHARS = 4000  # the end of a long error (ffmpeg's and whisper's last lines) is what explains it

router = APIRouter(
    tags=["legacy"],
    dependencies=[Depends(volunteer)],
    responses={400: {"model": Message}, 401: {"model": Message}, 404: {"model": Message}, 413: {"model": Message}},
)


def _client_name(request: Request) -> str:
    node = request.headers.get("x-node-name", "")[:100]
    host = request.headers.get("x-forwarded-for", request.client.host if request.client else "?").split(",")[0]
    return f"legacy:{node or host.strip()}"


@router.get(
    "/task",
    responses={
        200: {"content": {"audio/mpeg": {}}, "description": "the audio file"},
        204: {"description": "nothing to do"},
    },
)
def get_task(request: Request, ctx: Ctx, who: Volunteer) -> Any:
    """Hand out the next task as the audio body with X-Task-ID and X-Language headers (a part of a
    long file is its own range of the file, cut without re-encoding)."""
    for _ in range(5):  # a file deleted since the last scan is skipped, not served
        grant = ctx.ledger.legacy.claim(_client_name(request), credited(who))
        if grant is None:
            return Response(status_code=204)
        task = ctx.ledger.reports.task(grant.task_id)
        try:  # legacy clients check nothing: serve the file as it is now
            return audio_response(
                ctx.audio(task, check_unchanged=False),
                task,
                headers={"X-Task-ID": grant.task_id, "X-Language": grant.language},
            )
        except audio.AudioGone:
            ctx.ledger.legacy.fail(grant.task_id, "audio file vanished before it could be served")
        except CutError as e:
            ctx.ledger.legacy.fail(grant.task_id, f"{e}\n{e.stderr_tail}")
    return Response(status_code=204)


@router.post(
    "/result",
    responses={409: {"model": Message, "description": "not handed to a legacy client, or would overwrite a sidecar"}},
)
async def post_result(body: LegacyResultIn, ctx: Ctx, background: BackgroundTasks) -> dict[str, str]:
    """Store the VTT and a .txt derived from it (a part's VTT is moved to its file's timeline at the stitch)."""
    vtt = body.vtt.encode("utf-8", errors="replace")
    files = {"vtt": vtt, "txt": vtt_to_text(body.vtt).encode("utf-8", errors="replace")}
    done = await run_in_threadpool(ctx.ledger.legacy.complete, body.id, ctx.upload(files, {"protocol": "legacy"}))
    if done.verdict.settled:  # held results a vote settled: removed after answering
        background.add_task(ctx.settled, done)
    if done.file_ready:
        background.add_task(ctx.stitcher.try_stitch, done.file_ready)
    return {"status": "ok"}


@router.post("/error")
def post_error(body: LegacyErrorIn, ctx: Ctx) -> dict[str, str]:
    """The task failed on the client; its `error` text (if sent) becomes the task's error."""
    if body.error and body.error.strip():
        ctx.ledger.legacy.fail(body.id, body.error.strip()[-ERROR_CHARS:])
    else:
        ctx.ledger.legacy.fail(body.id)
    return {"status": "ok"}
