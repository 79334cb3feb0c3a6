"""Server configuration, read once from the environment and `.env` into one frozen object
(pydantic-settings: the variable names are the fields' names in capitals). A wrong value stops the
server with one line that names the variable and says what it must be."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stt_common.formats import RESULT_FORMATS

from .auth import Role, load_users, parse_role
from .disk.languages import LANGUAGE
from .disk.results import ResultLayout
from .disk.sidecar import LanguageRule
from .ledger import SchedulerKind, Speakers, ValidationMode
from .ops.callbacks import CallbackRules
from .ops.notify import DEFAULT_EVENTS, NotifyEvent


class SettingsError(ValueError):
    """A setting is wrong; the message is one line meant for the operator."""


def _items(raw: Any) -> Any:
    """A comma-separated variable as its non-empty items (a value given in code passes as it is)."""
    return tuple(filter(None, (s.strip() for s in raw.split(",")))) if isinstance(raw, str) else raw


Listed = NoDecode  # comma-separated, not JSON (pydantic-settings' default for collections)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    audio_dir: Path
    data_dir: Path = Path("data")
    results_beside_audio: bool = False  # the original server's layout: results beside the audio
    results_dir: Path = Field(default_factory=lambda data: data.get("data_dir", Path("data")) / "results")
    database_url: str = Field(
        default_factory=lambda data: f"sqlite:///{data.get('data_dir', Path('data')) / 'batch-stt.db'}"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1)
    workers: int = Field(1, ge=1)
    lease_seconds: int = Field(300, ge=5)
    legacy_lease_seconds: int = Field(6 * 3600, ge=5)
    max_attempts: int = Field(3, ge=1)
    default_language: str = "auto"
    scan_interval: float = Field(300.0, ge=0)
    log_file: Optional[Path] = None
    max_result_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(2 * 1024**3, ge=1024)  # POST /api/v1/jobs
    job_priority: int = Field(10, ge=-1000)  # uploaded jobs go before the directory backlog (priority 0)
    # An OpenAI-style request (/v1/audio/...) waits for its job this long, plus FACTOR x its audio's length.
    openai_wait_seconds: int = Field(60, ge=1, le=86400)
    openai_wait_factor: float = Field(1.0, ge=0, le=100)
    openai_max_waiting: int = Field(64, ge=1, le=100_000)  # requests waiting at once per process; then 429
    sqlite_synchronous: str = "FULL"
    opentelemetry: bool = False  # FastAPI's own spans, metrics and logs, to an OpenTelemetry SDK set up by the operator
    split_seconds: int = Field(600, ge=0)  # files longer than this become parts of about this length; 0: never
    speakers: Speakers = Speakers.AUTO  # each audio stream (or stereo channel) a speaker, as its own parts
    scheduler: SchedulerKind = SchedulerKind.SPEED
    replica_budget: float = Field(0.05, ge=0)  # tail replicas may cost at most this share of the library's audio
    cooldown_strikes: int = Field(3, ge=1)  # failures others then transcribed, in a row, before a cool-down
    cooldown_seconds: float = Field(600.0, ge=0)  # the first cool-down; doubles each time in a row; 0: never
    # Validation by replication (ledger/validation.py): who is checked, when two results agree, trust.
    validation: ValidationMode = ValidationMode.ADAPTIVE
    validate_wer: float = Field(0.15, ge=0, le=1)
    trust_after: int = Field(10, ge=1)
    # A check transcribes this much of the task (0: all of it); 30 s at least, or too little context.
    check_seconds: int = Field(60, ge=0, le=86400)
    # The original server's layout: language from x.json beside x.mp3 ("": sidecars are not read).
    language_json_key: str = "sql_params.language"
    require_sidecar: bool = False
    result_formats: Annotated[tuple[str, ...], Listed] = RESULT_FORMATS
    # Telling the operator (ops/notify.py): apprise URLs, a signed JSON webhook, which events.
    notify_urls: Annotated[tuple[str, ...], Listed] = ()
    webhook_url: str = ""
    webhook_secret: str = ""
    notify_events: Annotated[frozenset[NotifyEvent], Listed] = DEFAULT_EVENTS
    # Jobs' callback_url: hosts the server may call although they are private (ops/callbacks.py).
    callback_allowed_hosts: Annotated[frozenset[str], Listed] = frozenset()
    callback_allow_private: bool = False  # a LAN: callbacks may call private addresses (not loopback)
    # Built-in auth (optional; the documented deployment uses Caddy instead). Tokens: token -> (name, role).
    auth_tokens: Annotated[dict[str, tuple[str, Role]], Listed] = Field(default_factory=dict)
    admin_tokens: Annotated[frozenset[str], Listed] = frozenset()
    auth_users_file: Optional[Path] = None

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, dotenv_path: Optional[str] = ".env") -> Settings:
        """The environment (and `.env`); `env`, if given, is laid over it. SettingsError if wrong."""
        given: dict[str, Any] = {k.lower(): v for k, v in (env or {}).items() if v.strip()}
        try:
            return cls(_env_file=dotenv_path, **given)
        except ValidationError as e:
            raise SettingsError(_one_line(e)) from None

    @field_validator("*", mode="before")
    @classmethod
    def _stripped(cls, raw: Any) -> Any:
        return raw.strip() if isinstance(raw, str) else raw

    @field_validator("audio_dir", "data_dir", "log_file", "auth_users_file")
    @classmethod
    def _expanded(cls, path: Optional[Path]) -> Optional[Path]:
        return path.expanduser() if path is not None else None

    @field_validator("audio_dir")
    @classmethod
    def _audio_dir(cls, path: Path) -> Path:
        if not path.is_dir():
            raise ValueError(f"AUDIO_DIR={str(path)!r} is not a directory")
        return path

    @field_validator("results_dir")
    @classmethod
    def _results_dir(cls, path: Path, info: ValidationInfo) -> Path:
        if info.data.get("results_beside_audio") and "audio_dir" in info.data:
            return Path(info.data["audio_dir"])
        return path.expanduser()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", url):
            raise ValueError(f"DATABASE_URL={url!r}: only sqlite:/// and postgresql:// URLs are supported")
        return url

    @field_validator("default_language")
    @classmethod
    def _language(cls, raw: str) -> str:
        if not LANGUAGE.match(raw.lower()):
            raise ValueError(f"DEFAULT_LANGUAGE={raw.lower()!r} must be 'auto' or a two-letter ISO 639-1 code")
        return raw.lower()

    @field_validator("sqlite_synchronous")
    @classmethod
    def _synchronous(cls, raw: str) -> str:
        if raw.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"SQLITE_SYNCHRONOUS={raw.upper()!r} must be FULL, EXTRA or NORMAL")
        return raw.upper()

    @field_validator("split_seconds")
    @classmethod
    def _split(cls, seconds: int) -> int:
        if 0 < seconds < 30:
            raise ValueError(f"SPLIT_SECONDS={seconds} must be 0 (off) or at least 30")
        return seconds

    @field_validator("check_seconds")
    @classmethod
    def _check(cls, seconds: int) -> int:
        if 0 < seconds < 30:  # tiny.en's 20 s ranges differed from the whole transcript by up to 0.17
            raise ValueError(f"CHECK_SECONDS={seconds} must be 0 (whole checks) or at least 30")
        return seconds

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler(cls, raw: Any) -> Any:
        if isinstance(raw, str) and raw.lower() not in {k.value for k in SchedulerKind}:
            raise ValueError(f"SCHEDULER={raw!r} must be 'speed' or 'fifo'")
        return raw.lower() if isinstance(raw, str) else raw

    @field_validator("validation", mode="before")
    @classmethod
    def _validation(cls, raw: Any) -> Any:
        if isinstance(raw, str) and raw.lower() not in {m.value for m in ValidationMode}:
            raise ValueError(f"VALIDATION={raw!r} must be adaptive, always or off")
        return raw.lower() if isinstance(raw, str) else raw

    @field_validator("replica_budget")
    @classmethod
    def _budget(cls, share: float) -> float:
        if share > 1:
            raise ValueError(f"REPLICA_BUDGET={share} is a share of the library: between 0 and 1")
        return share

    @field_validator("language_json_key")
    @classmethod
    def _json_key(cls, key: str) -> str:
        if key and not all(key.split(".")):
            raise ValueError(f"LANGUAGE_JSON_KEY={key!r} must be keys joined by dots, or empty (off)")
        return key

    @field_validator("result_formats", mode="before")
    @classmethod
    def _formats(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        formats = tuple(dict.fromkeys(f.strip().lower() for f in raw.split(",")))
        if not set(formats) <= set(RESULT_FORMATS) or "" in formats:
            raise ValueError(f"RESULT_FORMATS={raw!r}: a comma-separated choice of txt,vtt,srt,json")
        return formats

    @field_validator("notify_urls", mode="before")
    @classmethod
    def _notify_urls(cls, raw: Any) -> Any:
        urls = _items(raw)
        if any("://" not in u for u in urls):
            raise ValueError(
                "NOTIFY_URLS must be apprise URLs (gotify://..., ntfys://..., mailto://...), comma-separated"
            )
        return urls

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"WEBHOOK_URL={url!r} must start with http:// or https://")
        return url

    @field_validator("notify_events", mode="before")
    @classmethod
    def _events(cls, raw: Any) -> Any:
        names = _items(raw)
        if isinstance(raw, str) and not set(names) <= {e.value for e in NotifyEvent}:
            choices = ", ".join(e.value for e in NotifyEvent)
            raise ValueError(f"NOTIFY_EVENTS={raw!r}: a comma-separated choice of {choices}")
        return names

    @field_validator("callback_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, raw: Any) -> Any:
        return tuple(h.lower() for h in _items(raw))

    @field_validator("auth_tokens", mode="before")
    @classmethod
    def _tokens(cls, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        tokens = {}
        for item in _items(raw):
            name, sep, rest = item.partition(":")
            token, _, role = rest.partition(":")
            if not sep or not name or len(token) < 16:
                raise ValueError(
                    "AUTH_TOKENS must be 'name:token[:role]' items separated by commas, tokens of 16+ characters"
                )
            tokens[token] = (name, parse_role(role or Role.VOLUNTEER.value))
        return tokens

    @field_validator("admin_tokens", mode="before")
    @classmethod
    def _admin_tokens(cls, raw: Any) -> Any:
        tokens = _items(raw)
        if any(len(t) < 16 for t in tokens):
            raise ValueError("ADMIN_TOKENS must be 16+ characters each")
        return tokens

    @field_validator("auth_users_file")
    @classmethod
    def _users_file(cls, path: Optional[Path]) -> Optional[Path]:
        if path is not None and not path.is_file():
            raise ValueError(f"AUTH_USERS_FILE={str(path)!r} does not exist (create it with 'stt-server add-user')")
        if path is not None:
            load_users(path)  # a line with an unknown role stops the server here, with its number
        return path

    @property
    def callback_rules(self) -> CallbackRules:
        return CallbackRules(self.callback_allowed_hosts, self.callback_allow_private)

    @property
    def beside_audio(self) -> bool:
        return self.results_beside_audio or self.results_dir.resolve() == self.audio_dir.resolve()

    @property
    def results(self) -> ResultLayout:
        return ResultLayout(self.results_dir, self.result_formats, self.beside_audio)

    @property
    def languages(self) -> LanguageRule:
        return LanguageRule(self.default_language, self.language_json_key, self.require_sidecar)

    def prepare_dirs(self) -> None:
        """Create writable dirs up front so a permission problem shows at start, not at first result."""
        for d in (self.data_dir, self.results_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SettingsError(f"cannot create {d}: {e.strerror}") from None
        if self.log_file:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)


def _one_line(error: ValidationError) -> str:
    """The first problem, as the operator reads it: the variable, its value, what it must be."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
    kind, raw = first["type"], first.get("input")
    if kind == "missing" and name == "AUDIO_DIR":
        return "AUDIO_DIR is not set: point it at the folder that holds the audio files"
    if kind == "value_error":
        return str(first["ctx"]["error"])
    if kind == "int_parsing":
        return f"{name}={raw!r} is not a whole number"
    if kind == "float_parsing":
        return f"{name}={raw!r} is not a number"
    if kind == "bool_parsing":
        return f"{name}={raw!r} must be true or false"
    if kind == "greater_than_equal":
        return f"{name}={raw!r} must be at least {first['ctx']['ge']}"
    if kind == "less_than_equal":
        return f"{name}={raw!r} must be at most {first['ctx']['le']}"
    return f"{name}={raw!r}: {first['msg']}"
