"""The two multipart bodies, parsed as dependencies: a client's result (v1) and an uploaded job.
Each names what is wrong in a 422; their OpenAPI descriptions stand beside them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Optional

from fastapi import HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from stt_common.formats import RESULT_FORMATS

from ..disk.languages import LANGUAGE
from ..ledger import TIERS, Speakers
from ..ops import callbacks
from .deps import Ctx
from .schemas import ResultMeta


def invalid(message: str) -> HTTPException:
    return HTTPException(422, message)


@dataclass(frozen=True)
class ResultForm:
    meta: ResultMeta
    files: dict[str, bytes]  # format -> UTF-8 bytes; txt or vtt at least


async def result_form(request: Request) -> ResultForm:
    form = await request.form(max_files=8, max_fields=8)  # parts over 1 MB spool to disk
    try:
        unexpected = set(form.keys()) - {"meta", *RESULT_FORMATS}
        if unexpected:
            raise invalid(f"unexpected part(s): {', '.join(sorted(unexpected))[:200]}")
        meta = form.get("meta")
        if not isinstance(meta, str):
            raise invalid("meta (ResultMeta as JSON) is required")
        try:
            info = ResultMeta.model_validate_json(meta)
        except ValidationError as e:
            raise invalid(f"meta is not valid ResultMeta JSON: {e.errors()[0]['msg']}") from None
        files = {fmt: await _text(fmt, part) for fmt in RESULT_FORMATS if (part := form.get(fmt)) is not None}
    finally:
        await form.close()
    if "txt" not in files and "vtt" not in files:
        raise invalid("a result needs at least a txt or a vtt file")
    return ResultForm(info, files)


async def _text(fmt: str, part: str | UploadFile) -> bytes:
    data = part.encode() if isinstance(part, str) else await part.read()
    try:
        text = data.decode("utf-8")
        if fmt == "json" and not isinstance(json.loads(text), dict):
            raise ValueError
    except UnicodeDecodeError:
        raise invalid(f"{fmt} is not valid UTF-8") from None
    except ValueError:
        raise invalid("json is not a JSON object") from None
    return data


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


@dataclass(frozen=True)
class JobForm:
    upload: UploadFile  # spooled by Starlette; closed after the route
    language: str
    model_tier: int
    priority: int
    callback_url: Optional[str]
    validate: bool  # every result checked by a second host, whatever VALIDATION says
    speakers: Optional[Speakers]  # None: the server's SPEAKERS


async def job_form(request: Request, ctx: Ctx) -> AsyncIterator[JobForm]:
    form = await request.form(max_files=1, max_fields=12)  # Starlette: 400 if not multipart; ours: 413
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise invalid("a job needs a `file`")
        language, tier, priority = _language(form), _tier(form), _priority(form, ctx.settings.job_priority)
        callback = field_text(form, "callback_url")
        if callback:
            if len(callback) > 2000:
                raise invalid("callback_url is over 2000 characters")
            try:  # resolving the name may take a moment: off the event loop
                await run_in_threadpool(callbacks.resolve, callback, ctx.settings.callback_rules)
            except callbacks.UnsafeCallback as e:
                raise invalid(str(e)) from None
        who_speaks = speakers(form, lambda _, message: invalid(message))
        yield JobForm(upload, language, tier, priority, callback, _validate(form), who_speaks)
    finally:
        await form.close()


def field_text(form: FormData, name: str) -> Optional[str]:
    """A text field, stripped; None when absent, empty or a file."""
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    return str(value).strip() or None


def _language(form: FormData) -> str:
    language = (field_text(form, "language") or "auto").lower()
    if not LANGUAGE.match(language):
        raise invalid(f"language={language!r} must be 'auto' or a two-letter ISO 639-1 code")
    return language


def _tier(form: FormData) -> int:
    model = (field_text(form, "model") or "").lower()
    if model and model not in TIERS:
        raise invalid(f"model={model!r} must be one of {', '.join(TIERS)}")
    return TIERS.get(model, 0)


def _priority(form: FormData, default: int) -> int:
    try:
        priority = int(field_text(form, "priority") or default)
    except ValueError:
        raise invalid("priority must be a whole number") from None
    if not -1000 <= priority <= 1000:
        raise invalid("priority must be between -1000 and 1000")
    return priority


def _validate(form: FormData) -> bool:
    value = (field_text(form, "validate") or "false").lower()
    if value not in ("true", "false"):
        raise invalid("validate must be true or false")
    return value == "true"


def speakers(form: FormData, error: Callable[[str, str], HTTPException]) -> Optional[Speakers]:
    """The `speakers` field (None: the server's SPEAKERS); `error(param, message)` says what is wrong."""
    value = field_text(form, "speakers")
    try:
        return None if value is None else Speakers(value.lower())
    except ValueError:
        raise error("speakers", f"speakers must be one of {', '.join(s.value for s in Speakers)}") from None


SPEAKERS_FIELD = {
    "type": "string",
    "enum": [s.value for s in Speakers],
    "description": "each audio stream a speaker (streams), each channel of a stereo stream (channels), streams "
    "when there are several (auto), or one speaker (off); the server's SPEAKERS when not given",
}


def upload_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI request body of a multipart upload: a required `file` and these fields, no others."""
    properties = {"file": {"type": "string", "format": "binary"}, **fields}
    schema = {"type": "object", "additionalProperties": False, "required": ["file"], "properties": properties}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


JOB_BODY = upload_body(
    {
        "language": {"type": "string", "pattern": LANGUAGE.pattern},
        "model": {"type": "string", "enum": list(TIERS)},
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
        "validate": {
            "type": "boolean",
            "description": "a second host checks every result, whatever the server's VALIDATION",
        },
        "speakers": SPEAKERS_FIELD,
        "callback_url": {
            "type": "string",
            "pattern": "^https?://[^/?#]+",
            "description": "called when the job ends; its host must be public (422 otherwise)",
        },
    }
)
