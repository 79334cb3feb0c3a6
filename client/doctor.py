"""`stt-client doctor`: each thing a volunteer's machine needs, checked, with how to fix it."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

from . import media, transcribe
from .api import ServerAPI
from .benchmark import measured_rtf
from .guard import whisper_config
from .settings import ClientSettings

Row = tuple[str, bool, str, str]  # check, passed, detail, fix


def sample_audio(s: ClientSettings) -> Optional[Path]:
    """whisper.cpp ships samples/jfk.wav in its tree, next to the build directory."""
    for candidate in (
        s.whisper_cli.parent.parent.parent / "samples" / "jfk.wav",
        s.whisper_cli.parent.parent / "samples" / "jfk.wav",
    ):
        if candidate.is_file():
            return candidate
    return None


class Checks:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def check(self, name: str, fn: Callable[[], str], fix: str) -> bool:
        try:
            detail = fn()
            self.rows.append((name, True, detail or "ok", ""))
            return True
        except Exception as e:  # a check that crashes is a failed check, reported with its fix
            self.rows.append((name, False, str(e)[:200], fix))
            return False


def version(tool: str) -> str:
    out = subprocess.run([media.tool(tool), "-version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0][:60]


def existing(path: Path, detail: Optional[str] = None) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing")
    return detail or str(path)


def transcribes_sample(s: ClientSettings) -> str:
    sample = sample_audio(s)
    if sample is None:
        raise FileNotFoundError("whisper.cpp's samples/jfk.wav not found next to whisper-cli")
    with tempfile.TemporaryDirectory() as tmp:
        r = transcribe.run(whisper_config(s), sample, Path(tmp) / "o", "en" if s.english_only else "auto")
        text = r.files["txt"].read_text(errors="replace").strip()
    if "country" not in text.lower():
        raise RuntimeError(f"unexpected transcript: {text[:80]!r}")
    return f"{text[:50]}... in {r.seconds:.1f} s"


def checks(s: ClientSettings) -> list[Row]:
    c = Checks()
    c.check(
        "ffmpeg",
        lambda: version("ffmpeg"),
        "install ffmpeg: apt install ffmpeg | dnf install ffmpeg | brew install ffmpeg",
    )
    c.check("ffprobe", lambda: version("ffprobe"), "ffprobe comes with the ffmpeg package")
    have_cli = c.check(
        "whisper-cli", lambda: existing(s.whisper_cli), "run client/whisper/build.sh (or set WHISPER_CLI)"
    )
    have_model = c.check(
        "model",
        lambda: existing(s.whisper_model, f"{s.whisper_model.name} ({s.whisper_model.stat().st_size / 1e6:.0f} MB)"),
        "run client/whisper/download-model.sh base-q5_1 (or set WHISPER_MODEL)",
    )
    if have_cli and have_model:
        fix = "rebuild whisper-cli; re-download the model (it may be truncated)"
        c.check("transcribe sample", lambda: transcribes_sample(s), fix)
    api = ServerAPI(s)
    if c.check(
        "server reachable",
        lambda: f"{s.server_url}: {api.health()['status']}",
        "check SERVER_URL, the network, and that the server runs (curl SERVER_URL/health)",
    ):
        c.check(
            "credentials",
            lambda: f"{sum(api.stats()['counts'].values())} tasks visible",
            "set AUTH_ENABLED=true with USERNAME/PASSWORD (or AUTH_TOKEN) as the operator gave them",
        )
    rtf = measured_rtf(s)
    c.rows.append(
        ("benchmark", rtf is not None, f"{rtf}x real time" if rtf else "not measured", "run stt-client bench")
    )
    return c.rows
