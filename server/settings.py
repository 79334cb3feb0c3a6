"""Server configuration, read once from the environment and `.env` into one frozen object."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from stt_common.env import load_env, truthy
from stt_common.formats import RESULT_FORMATS

from .disk.results import ResultLayout
from .disk.sidecar import LanguageRule
from .ledger import SchedulerKind
from .ops.notify import DEFAULT_EVENTS, NotifyEvent


class SettingsError(ValueError):
    """A setting is wrong; the message is one line meant for the operator."""


LANGUAGE_RE = re.compile(r"^(auto|[a-z]{2})$")


@dataclass(frozen=True)
class Settings:
    audio_dir: Path
    results_dir: Path
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    lease_seconds: int = 300
    legacy_lease_seconds: int = 6 * 3600
    max_attempts: int = 3
    default_language: str = "auto"
    scan_interval: float = 300.0
    log_file: Path | None = None
    max_result_bytes: int = 20 * 1024 * 1024
    max_upload_bytes: int = 2 * 1024**3  # POST /api/v1/jobs
    job_priority: int = 10  # uploaded jobs go before the directory backlog (priority 0)
    sqlite_synchronous: str = "FULL"
    split_seconds: int = 600  # files longer than this become parts of about this length; 0: never
    scheduler: SchedulerKind = SchedulerKind.SPEED
    replica_budget: float = 0.05  # tail replicas may cost at most this share of the library's audio
    cooldown_strikes: int = 3  # failures others then transcribed, in a row, before a host cools down
    cooldown_seconds: float = 600.0  # the first cool-down; doubles each time in a row; 0: never
    # The original server's layout: language from x.json beside x.mp3, results beside the audio.
    language_json_key: str = "sql_params.language"  # "": sidecars are not read
    require_sidecar: bool = False
    result_formats: tuple[str, ...] = RESULT_FORMATS
    results_beside_audio: bool = False
    # Telling the operator (server/notify.py): apprise URLs, a signed JSON webhook, which events.
    notify_urls: tuple[str, ...] = ()
    webhook_url: str = ""
    webhook_secret: str = ""
    notify_events: frozenset[NotifyEvent] = DEFAULT_EVENTS
    # Jobs' callback_url: hosts the server may call although they are private (callbacks.py).
    callback_allowed_hosts: frozenset[str] = frozenset()
    # Built-in auth (optional; the documented deployment uses Caddy instead).
    auth_tokens: Mapping[str, str] = field(default_factory=dict)  # token -> client name
    admin_tokens: frozenset[str] = frozenset()
    users_file: Path | None = None

    @property
    def results(self) -> ResultLayout:
        return ResultLayout(self.results_dir, self.result_formats, self.results_beside_audio)

    @property
    def languages(self) -> LanguageRule:
        return LanguageRule(self.default_language, self.language_json_key, self.require_sidecar)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_tokens or self.admin_tokens or self.users_file)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, dotenv_path: Optional[str] = ".env") -> Settings:
        return cls._parse(load_env(env, dotenv_path))

    @classmethod
    def _parse(cls, v: Mapping[str, str]) -> Settings:
        def get(name: str, default: str = "") -> str:
            return v.get(name, default).strip()

        def number(name: str, default: float, kind: type = int, minimum: float = 0):
            raw = get(name, str(default))
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
            if value < minimum:
                raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
            return value

        data_dir = Path(get("DATA_DIR", "data")).expanduser()
        audio_raw = get("AUDIO_DIR")
        if not audio_raw:
            raise SettingsError("AUDIO_DIR is not set: point it at the folder that holds the audio files")
        audio_dir = Path(audio_raw).expanduser()
        if not audio_dir.is_dir():
            raise SettingsError(f"AUDIO_DIR={audio_raw!r} is not a directory")
        beside = truthy(get("RESULTS_BESIDE_AUDIO", "false"))
        results_dir = audio_dir if beside else Path(get("RESULTS_DIR", str(data_dir / "results"))).expanduser()
        beside = beside or results_dir.resolve() == audio_dir.resolve()
        formats = tuple(dict.fromkeys(f.strip().lower() for f in get("RESULT_FORMATS", "txt,vtt,srt,json").split(",")))
        if not formats or not set(formats) <= set(RESULT_FORMATS) or "" in formats:
            raise SettingsError(
                f"RESULT_FORMATS={get('RESULT_FORMATS')!r}: a comma-separated choice of txt,vtt,srt,json"
            )
        json_key = get("LANGUAGE_JSON_KEY", "sql_params.language")
        if json_key and not all(json_key.split(".")):
            raise SettingsError(f"LANGUAGE_JSON_KEY={json_key!r} must be keys joined by dots, or empty (off)")
        database_url = get("DATABASE_URL") or f"sqlite:///{data_dir / 'batch-stt.db'}"
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
            raise SettingsError(f"DATABASE_URL={database_url!r}: only sqlite:/// and postgresql:// URLs are supported")
        language = get("DEFAULT_LANGUAGE", "auto").lower()
        if not LANGUAGE_RE.match(language):
            raise SettingsError(f"DEFAULT_LANGUAGE={language!r} must be 'auto' or a two-letter ISO 639-1 code")
        synchronous = get("SQLITE_SYNCHRONOUS", "FULL").upper()
        if synchronous not in {"FULL", "NORMAL", "EXTRA"}:
            raise SettingsError(f"SQLITE_SYNCHRONOUS={synchronous!r} must be FULL, EXTRA or NORMAL")

        split_seconds = number("SPLIT_SECONDS", 600)
        if 0 < split_seconds < 30:
            raise SettingsError(f"SPLIT_SECONDS={split_seconds} must be 0 (off) or at least 30")

        try:
            scheduler = SchedulerKind(get("SCHEDULER", "speed").lower())
        except ValueError:
            raise SettingsError(f"SCHEDULER={get('SCHEDULER')!r} must be 'speed' or 'fifo'") from None
        replica_budget = number("REPLICA_BUDGET", 0.05, kind=float)
        if replica_budget > 1:
            raise SettingsError(f"REPLICA_BUDGET={replica_budget} is a share of the library: between 0 and 1")

        urls = tuple(filter(None, (u.strip() for u in get("NOTIFY_URLS").split(","))))
        if any("://" not in u for u in urls):
            raise SettingsError(
                "NOTIFY_URLS must be apprise URLs (gotify://..., ntfys://..., mailto://...), comma-separated"
            )
        webhook = get("WEBHOOK_URL")
        if webhook and not webhook.startswith(("http://", "https://")):
            raise SettingsError(f"WEBHOOK_URL={webhook!r} must start with http:// or https://")
        try:
            default_events = ",".join(sorted(e.value for e in DEFAULT_EVENTS))
            notify_events = frozenset(
                NotifyEvent(e.strip()) for e in get("NOTIFY_EVENTS", default_events).split(",") if e.strip()
            )
        except ValueError:
            choices = ", ".join(e.value for e in NotifyEvent)
            raise SettingsError(
                f"NOTIFY_EVENTS={get('NOTIFY_EVENTS')!r}: a comma-separated choice of {choices}"
            ) from None

        tokens: dict[str, str] = {}
        for item in filter(None, (s.strip() for s in get("AUTH_TOKENS").split(","))):
            name, sep, token = item.partition(":")
            if not sep or not name or len(token) < 16:
                raise SettingsError(
                    "AUTH_TOKENS must be 'name:token' pairs separated by commas, tokens of 16+ characters"
                )
            tokens[token] = name
        admin = frozenset(filter(None, (s.strip() for s in get("ADMIN_TOKENS").split(","))))
        if any(len(t) < 16 for t in admin):
            raise SettingsError("ADMIN_TOKENS must be 16+ characters each")
        users_file = Path(get("AUTH_USERS_FILE")).expanduser() if get("AUTH_USERS_FILE") else None
        if users_file and not users_file.is_file():
            raise SettingsError(
                f"AUTH_USERS_FILE={str(users_file)!r} does not exist (create it with 'stt-server add-user')"
            )

        return cls(
            audio_dir=audio_dir,
            results_dir=results_dir,
            data_dir=data_dir,
            database_url=database_url,
            host=get("HOST", "127.0.0.1"),
            port=number("PORT", 8000, minimum=1),
            workers=number("WORKERS", 1, minimum=1),
            lease_seconds=number("LEASE_SECONDS", 300, minimum=5),
            legacy_lease_seconds=number("LEGACY_LEASE_SECONDS", 6 * 3600, minimum=5),
            max_attempts=number("MAX_ATTEMPTS", 3, minimum=1),
            default_language=language,
            scan_interval=number("SCAN_INTERVAL", 300.0, kind=float, minimum=0),
            log_file=Path(get("LOG_FILE")).expanduser() if get("LOG_FILE") else None,
            max_result_bytes=number("MAX_RESULT_BYTES", 20 * 1024 * 1024, minimum=1024),
            max_upload_bytes=number("MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1024),
            job_priority=number("JOB_PRIORITY", 10, minimum=-1000),
            sqlite_synchronous=synchronous,
            split_seconds=split_seconds,
            scheduler=scheduler,
            replica_budget=replica_budget,
            cooldown_strikes=number("COOLDOWN_STRIKES", 3, minimum=1),
            cooldown_seconds=number("COOLDOWN_SECONDS", 600.0, kind=float),
            language_json_key=json_key,
            require_sidecar=truthy(get("REQUIRE_SIDECAR", "false")),
            result_formats=formats,
            results_beside_audio=beside,
            notify_urls=urls,
            webhook_url=webhook,
            webhook_secret=get("WEBHOOK_SECRET"),
            notify_events=notify_events,
            callback_allowed_hosts=frozenset(
                filter(None, (h.strip().lower() for h in get("CALLBACK_ALLOWED_HOSTS").split(",")))
            ),
            auth_tokens=tokens,
            admin_tokens=admin,
            users_file=users_file,
        )

    def prepare_dirs(self) -> None:
        """Create writable dirs up front so a permission problem shows at start, not at first result."""
        for d in (self.data_dir, self.results_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SettingsError(f"cannot create {d}: {e.strerror}") from None
        if self.log_file:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
