"""Client configuration, read once from the environment and `.env`.

The original client's `.env` works unchanged: SERVER_URL, AUTH_ENABLED, USERNAME, PASSWORD, CRON,
PROCESSING_HOURS, NODE_NAME, VAD_ENABLED, VAD_MODEL, GOTIFY_URL, GOTIFY_KEY, and GGML_* variables
(GGML_VK_VISIBLE_DEVICES and the like), which are passed on to whisper-cli.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from stt_common.env import load_env, truthy
from stt_common.formats import is_english_only

from .courtesy import CourtesyRules
from .schedule import Window, WindowError

DEFAULT_CLI = Path(__file__).resolve().parent / "whisper" / "whisper.cpp" / "build" / "bin" / "whisper-cli"
DEFAULT_MODEL = Path(__file__).resolve().parent / "whisper" / "models" / "ggml-base-q5_1.bin"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class ClientSettings:
    server_url: str
    node_name: str
    whisper_cli: Path
    whisper_model: Path
    threads: int
    work_dir: Path
    outbox_dir: Path
    auth_enabled: bool = False
    username: str = ""
    password: str = ""
    auth_token: str = ""
    language: Optional[str] = None  # override the server's language for every task
    vad_enabled: bool = False
    vad_model: Optional[Path] = None
    window: Optional[Window] = None
    poll_seconds: float = 30.0
    retry_max_seconds: float = 600.0
    backend: str = ""
    beam_size: Optional[int] = None  # None: whisper-cli's default (5); 1 is greedy, ~1.8x faster
    prefetch: bool = True  # lease, download and transcode the next task while whisper-cli runs
    extra_whisper_args: tuple[str, ...] = ()
    whisper_env: Mapping[str, str] = field(default_factory=dict)  # GGML_* from .env or the environment
    gotify_url: str = ""
    gotify_key: str = ""
    notify_urls: tuple[str, ...] = ()  # apprise URLs
    courtesy: CourtesyRules = field(default_factory=CourtesyRules)  # when whisper-cli may run (courtesy.py)
    display_name: str = ""  # how the server's volunteers table names this machine's owner

    @property
    def english_only(self) -> bool:
        return is_english_only(self.whisper_model.name)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, dotenv_path: str | None = ".env", need_server: bool = True
    ) -> ClientSettings:
        values = load_env(env, dotenv_path)

        def get(name: str, default: str = "") -> str:
            return values.get(name, default).strip()

        server = get("SERVER_URL", "http://127.0.0.1:8000").rstrip("/")
        if need_server and not server.startswith(("http://", "https://")):
            raise SettingsError(f"SERVER_URL={server!r} must start with http:// or https://")
        threads, poll, beam, retry_max = _numbers(get)
        language = get("LANGUAGE").lower() or None
        if language and language != "auto" and len(language) != 2:
            raise SettingsError(f"LANGUAGE={language!r} must be 'auto' or a two-letter code")
        auth = truthy(get("AUTH_ENABLED", "false"))
        if get("GOTIFY_URL") and not get("GOTIFY_URL").startswith(("http://", "https://")):
            raise SettingsError(f"GOTIFY_URL={get('GOTIFY_URL')!r} must start with http:// or https://")
        if auth and not (get("USERNAME") and get("PASSWORD")) and not get("AUTH_TOKEN"):
            raise SettingsError("AUTH_ENABLED=true needs USERNAME and PASSWORD (or AUTH_TOKEN)")
        try:
            window = Window.parse(get("CRON"), get("PROCESSING_HOURS"))
        except WindowError as e:
            raise SettingsError(str(e)) from None
        work = Path(get("WORK_DIR", str(Path.home() / ".cache" / "batch-stt"))).expanduser()
        vad_model = get("VAD_MODEL")
        return cls(
            server_url=server,
            node_name=get("NODE_NAME") or socket.gethostname(),
            whisper_cli=Path(get("WHISPER_CLI", str(DEFAULT_CLI))).expanduser(),
            whisper_model=Path(get("WHISPER_MODEL", str(DEFAULT_MODEL))).expanduser(),
            threads=threads,
            work_dir=work,
            outbox_dir=Path(get("OUTBOX_DIR", str(work / "outbox"))).expanduser(),
            auth_enabled=auth,
            username=get("USERNAME"),
            password=get("PASSWORD"),
            auth_token=get("AUTH_TOKEN"),
            language=language,
            vad_enabled=truthy(get("VAD_ENABLED", "false")),
            vad_model=Path(vad_model).expanduser() if vad_model else None,
            window=window,
            poll_seconds=max(0.1, poll),
            retry_max_seconds=max(1.0, retry_max),
            backend=get("WHISPER_BACKEND"),
            beam_size=beam,
            extra_whisper_args=tuple(get("WHISPER_ARGS").split()),
            prefetch=truthy(get("PREFETCH", "1")),
            whisper_env={k: v for k, v in values.items() if k.startswith("GGML_")},
            gotify_url=get("GOTIFY_URL"),
            gotify_key=get("GOTIFY_KEY"),
            notify_urls=tuple(filter(None, (u.strip() for u in get("NOTIFY_URLS").split(",")))),
            courtesy=_courtesy(get),
            display_name=get("DISPLAY_NAME")[:64],
        )


def _courtesy(get: Callable[..., str]) -> CourtesyRules:
    """MAX_CPU_PERCENT, SUSPEND_CPU_LOAD, RUN_ON_BATTERY, SUSPEND_WHILE, MAX_PAUSE_SECONDS, POWER_SUPPLY_DIR."""
    try:
        cpu, load = int(get("MAX_CPU_PERCENT", "100")), int(get("SUSPEND_CPU_LOAD", "25"))
        max_pause = float(get("MAX_PAUSE_SECONDS", "900"))
    except ValueError as e:
        raise SettingsError(f"MAX_CPU_PERCENT / SUSPEND_CPU_LOAD / MAX_PAUSE_SECONDS must be numbers ({e})") from None
    if not 1 <= cpu <= 100 or not 0 <= load <= 100 or max_pause < 0:
        raise SettingsError("MAX_CPU_PERCENT must be 1-100, SUSPEND_CPU_LOAD 0-100 (0: off), MAX_PAUSE_SECONDS >= 0")
    return CourtesyRules(
        max_cpu_percent=cpu,
        suspend_cpu_load=load,
        run_on_battery=truthy(get("RUN_ON_BATTERY", "false")),
        suspend_while=frozenset(n.strip().lower() for n in get("SUSPEND_WHILE").split(",") if n.strip()),
        max_pause_seconds=max_pause,
        power_supply=Path(get("POWER_SUPPLY_DIR", "/sys/class/power_supply")),
    )


def _numbers(get: Callable[..., str]) -> tuple[int, float, Optional[int], float]:
    """THREADS, POLL_SECONDS, BEAM_SIZE, RETRY_MAX_SECONDS."""
    try:
        threads = int(get("THREADS", str(min(8, os.cpu_count() or 2))))
        poll = float(get("POLL_SECONDS", "30"))
        beam = int(get("BEAM_SIZE")) if get("BEAM_SIZE") else None
        retry_max = float(get("RETRY_MAX_SECONDS", "600"))
    except ValueError as e:
        raise SettingsError(f"THREADS / POLL_SECONDS / BEAM_SIZE / RETRY_MAX_SECONDS must be numbers ({e})") from None
    if threads < 1:
        raise SettingsError("THREADS must be at least 1")
    return threads, poll, beam, retry_max
