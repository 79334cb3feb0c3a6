"""The multipart body of OpenAI's `POST /v1/audio/transcriptions` and `/translations`, parsed as
OpenAI documents it; what is wrong is a 400 that names its `param`, as OpenAI answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum
from typing import Optional

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile

from ..disk.languages import LANGUAGE
from ..ledger import Speakers, model_tier
from .forms import SPEAKERS_FIELD, field_text, speakers, upload_body


class ResponseFormat(str, Enum):
    JSON = "json"
    TEXT = "text"
    SRT = "srt"
    VTT = "vtt"
    VERBOSE_JSON = "verbose_json"


GRANULARITIES = frozenset({"word", "segment"})
ANY_TIER = 1  # whisper-1 and the other OpenAI names: any model the fleet has
MAX_PROMPT = 1000


def bad(param: str, message: str) -> HTTPException:
    return HTTPException(400, {"message": message, "param": param})


@dataclass(frozen=True)
class SpeechForm:
    upload: UploadFile
    model_tier: int  # from `model`: a tier's name in it, else any
    language: str
    response_format: ResponseFormat
    granularities: frozenset[str]  # empty: segments (OpenAI's default)
    prompt: Optional[str]  # whisper's initial prompt
    temperature: Optional[float]  # None: whisper's default (0, with its fallback)
    speakers: Optional[Speakers]  # ours, beside OpenAI's fields (None: the server's SPEAKERS)

    def request_key(self, translate: bool, owner: Optional[str]) -> str:
        """The upload's and the options' digest: a client's retry of this request finds its job."""
        digest = hashlib.sha256()
        self.upload.file.seek(0)
        while chunk := self.upload.file.read(1024 * 1024):
            digest.update(chunk)
        self.upload.file.seek(0)
        options = [self.model_tier, self.language, translate, owner, self.prompt, self.temperature, self.speakers]
        digest.update(json.dumps(options).encode())
        return digest.hexdigest()


def _temperature(form: FormData) -> Optional[float]:
    given = field_text(form, "temperature")
    if given is None:
        return None
    try:
        temperature = float(given)
    except ValueError:
        raise bad("temperature", "temperature must be a number between 0 and 1") from None
    if not 0 <= temperature <= 1:
        raise bad("temperature", "temperature must be a number between 0 and 1")
    return temperature


def _granularities(form: FormData) -> frozenset[str]:
    asked = frozenset(str(v) for key in ("timestamp_granularities[]", "timestamp_granularities")
                      for v in form.getlist(key))  # fmt: skip
    if asked - GRANULARITIES:
        raise bad("timestamp_granularities", "timestamp_granularities[] may be 'word' and 'segment'")
    return asked


def _parsed(form: FormData) -> SpeechForm:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad("file", "a transcription needs a `file`")
    model = field_text(form, "model") or "whisper-1"
    if len(model) > 100:
        raise bad("model", "model is over 100 characters")
    language = (field_text(form, "language") or "auto").lower()
    if not LANGUAGE.match(language):
        raise bad("language", f"language={language[:20]!r} must be a two-letter ISO 639-1 code")
    try:
        response_format = ResponseFormat(field_text(form, "response_format") or "json")
    except ValueError:
        raise bad("response_format", "response_format must be json, text, srt, vtt or verbose_json") from None
    prompt = field_text(form, "prompt")
    if prompt and len(prompt) > MAX_PROMPT:
        raise bad("prompt", f"prompt is over {MAX_PROMPT} characters (whisper reads about 224 tokens of it)")
    return SpeechForm(upload, model_tier(model) or ANY_TIER, language, response_format, _granularities(form),
                      prompt, _temperature(form), speakers(form, bad))  # fmt: skip


async def speech_form(request: Request) -> AsyncIterator[SpeechForm]:
    """The form as a dependency (closed after the route); Starlette answers 400 to a broken multipart body."""
    form = await request.form(max_files=1, max_fields=16)
    try:
        yield _parsed(form)
    finally:
        await form.close()


SPEECH_BODY = upload_body(
    {
        "model": {"type": "string", "description": "tiny, base, small, medium, large, or whisper-1 (any)"},
        "language": {"type": "string", "pattern": LANGUAGE.pattern},
        "prompt": {"type": "string", "maxLength": MAX_PROMPT, "description": "whisper's initial prompt"},
        "response_format": {"type": "string", "enum": [f.value for f in ResponseFormat]},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1, "description": "whisper's sampling temperature"},
        "speakers": SPEAKERS_FIELD,
        "timestamp_granularities[]": {
            "type": "array",
            "maxItems": 2,
            "items": {"type": "string", "enum": sorted(GRANULARITIES)},
        },
    }
)
