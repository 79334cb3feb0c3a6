"""Request and response bodies of the v1 and legacy APIs (what OpenAPI documents)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from ..ledger import HostView, JobState, TaskState

CLIENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$"


# JSON Schema counts 4.0 as an integer; strict pydantic would not.
WholeNumber = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]


class Strict(BaseModel):
    """Requests are taken as documented: no "true" for true, no "1" for 1."""

    model_config = ConfigDict(strict=True)


class Capabilities(Strict):
    backend: str = Field("cpu", max_length=32, description="cpu, cuda, vulkan, openvino, metal, hip")
    model: str = Field("", max_length=128, description="model file name, e.g. ggml-tiny.en.bin")
    threads: WholeNumber = Field(0, ge=0, le=1024)
    rtf: Optional[float] = Field(None, ge=0, le=1e6, description="measured speed: audio seconds per processing second")
    english_only: bool = Field(False, description="the model is English-only (*.en): only en/auto tasks fit")
    languages: Optional[list[str]] = Field(None, max_length=200, description="if set, only these languages")
    translate: bool = Field(False, description="it can translate into English (whisper's --translate)")
    display_name: str = Field("", max_length=64, description="how the volunteers table names this host's owner")


class LeaseRequest(Strict):
    client: str = Field(..., pattern=CLIENT_NAME, description="the volunteer machine's name")
    capabilities: Capabilities = Field(default_factory=Capabilities)


class LeaseOut(BaseModel):
    task_id: str
    token: str = Field(description="secret for this lease: audio, heartbeat, result, error")
    path: str
    audio_url: str
    language: str
    size: int
    sha256: Optional[str]
    deadline: float = Field(description="UNIX time; heartbeat before it")
    lease_seconds: int
    heartbeat_seconds: float
    attempt: int
    replica: bool = Field(False, description="a second copy of a task another host is slow on; first result wins")
    file_task_id: Optional[str] = Field(None, description="a part of a long file: the file's task id")
    start_seconds: Optional[float] = Field(None, description="a part: where its audio starts in the file")
    end_seconds: Optional[float] = Field(None, description="a part: where its audio ends in the file")
    file_duration_seconds: Optional[float] = Field(None, description="the whole file's length, when known")
    translate: bool = Field(False, description="translate into English (whisper's --translate)")
    prompt: Optional[str] = Field(None, description="whisper's initial prompt (--prompt)")
    temperature: Optional[float] = Field(None, description="whisper's sampling temperature (--temperature)")
    check_start_seconds: Optional[float] = Field(
        None, description="a spot check: transcribe only this range of the task's audio, and say so in meta.spot"
    )
    check_end_seconds: Optional[float] = Field(None, description="a spot check: where its range ends")


class HeartbeatIn(Strict):
    progress: Optional[float] = Field(None, ge=0, le=1000, description="percent; values above 100 are clamped")
    paused: Optional[str] = Field(
        None, max_length=200, description="why the host paused this work now (its owner's rules); the lease is kept"
    )


class HeartbeatOut(BaseModel):
    deadline: float


class ResultMeta(Strict):
    model_config = ConfigDict(strict=True, extra="allow", protected_namespaces=())
    model: str = Field("", max_length=200)
    backend: str = Field("", max_length=64)
    audio_seconds: Optional[float] = Field(None, ge=0, le=1e7)
    processing_seconds: Optional[float] = Field(None, ge=0, le=1e8)
    language: Optional[str] = Field(None, max_length=16)
    spot: Optional[list[float]] = Field(
        None,
        min_length=2,
        max_length=2,
        description="a spot check: the range it transcribed (the lease's check_start/end_seconds); "
        "its timestamps count from the range's start",
    )

    @field_validator("spot")
    @classmethod
    def _spot(cls, v: Optional[list[float]]) -> Optional[list[float]]:
        if v is not None and not 0 <= v[0] < v[1] <= 1e7:
            raise ValueError("spot must be [start, end] seconds with 0 <= start < end")
        return v


class ResultOut(BaseModel):
    task_id: str
    status: Literal["accepted", "pending", "duplicate"] = Field(
        description="pending: held until another host's result agrees (validation)"
    )
    late: bool


class ErrorIn(Strict):
    message: str = Field(..., min_length=1, max_length=4000)
    stderr_tail: Optional[str] = Field(None, max_length=65536)
    retryable: bool = False


class ErrorOut(BaseModel):
    task_id: str
    task_state: TaskState
    attempts: int


class StatsOut(BaseModel):
    counts: dict[TaskState, int]
    audio_hours_done: float
    bytes_done: int
    bytes_left: int
    active_leases: int
    active_clients: list[str]
    scheduler: str
    replicas: int = Field(description="tail replicas issued (second copies of running tasks)")
    replicas_won: int = Field(description="replicas whose result came first")
    validation_audio_hours: float = Field(description="audio transcribed again to check results (validation's cost)")
    hosts: list[HostView] = Field(description="every host: learned speed, benchmark, counts, cool-down")


class RequeueIn(Strict):
    ids: list[str] = Field(default_factory=list, max_length=10000)
    failed: bool = False


class RequeueOut(BaseModel):
    requeued: list[str]


class ScanOut(BaseModel):
    added: int
    changed: int
    missing: int
    returned: int


class LegacyResultIn(Strict):
    id: str = Field(..., max_length=64)
    vtt: str


class LegacyErrorIn(Strict):
    id: str = Field(..., max_length=64)
    error: Optional[str] = Field(None, max_length=64 * 1024)  # the original server kept it as the task's error


class Message(BaseModel):
    detail: str


class JobOut(BaseModel):
    id: str
    state: JobState
    filename: str
    progress: float = Field(description="percent: parts done, and the running attempts' own progress")
    eta_seconds: Optional[float] = Field(None, description="at the pace so far; null until there is one")
    language: str = Field(description="as asked (auto: detected by whisper)")
    detected_language: Optional[str] = Field(None, description="the transcript's language, once done")
    speakers: list[str] = Field(
        default_factory=list, description="once done: the speakers its streams or channels were transcribed as"
    )
    error: Optional[str] = None
    created_at: float
    status_url: str
    result_url: str = Field(description="add ?format=txt|vtt|srt|json|md")
    callback_secret: Optional[str] = Field(
        None,
        description="only in the answer to a submit with a callback_url: the key of the callback's "
        "X-Batch-STT-Signature (HMAC-SHA256 of the body); not shown again",
    )


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class OpenAIError(BaseModel):
    """The OpenAI-compatible routes' errors, in OpenAI's shape."""

    error: OpenAIErrorDetail


class VolunteerOut(BaseModel):
    rank: int
    name: str = Field(description="the display name its hosts sent (DISPLAY_NAME), else its credentials' name")
    audio_hours: float = Field(description="audio transcribed in accepted results")
    results: int = Field(description="results delivered")
    valid_results: int = Field(description="results accepted (with validation: confirmed)")
    recent_hours_per_day: float = Field(description="audio hours a day, averaged with a 7-day half-life")
    hosts: int
    backends: list[str]


class VolunteersOut(BaseModel):
    volunteers: list[VolunteerOut]
    you: Optional[int] = Field(None, description="the caller's rank, when it has delivered results")
