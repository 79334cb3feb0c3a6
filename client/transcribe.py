"""Running whisper-cli, and deciding whether it really worked (its exit codes lie).

Success means: rc 0 AND every requested output file exists AND stderr has no `error:` line.
Anything else is an error carrying the stderr tail. An output may be empty: a tone or music with no
speech decodes to no segment at all (an empty txt and srt, a vtt of its header alone), and that is
a transcript, not a failure; a run that failed writes no output (WHISPER_NOTES.md). A GPU build
that hears nothing where there is speech is guard.py's to catch.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from stt_common.formats import RESULT_FORMATS, is_english_only

from . import media
from .subproc import die_with_parent

_FLAGS = {"txt": "-otxt", "vtt": "-ovtt", "srt": "-osrt", "json": "-ojf"}  # -ojf: with token timings
_PROGRESS = re.compile(r"progress\s*=\s*(\d+)%")
_DETECTED = re.compile(r"auto-detected language:\s*([a-z]{2,3})")


class TranscribeError(Exception):
    def __init__(self, message: str, stderr_tail: str = "", retryable: bool = False, returncode: Optional[int] = None):
        super().__init__(message)
        self.stderr_tail = stderr_tail
        self.retryable = retryable
        self.returncode = returncode

    @property
    def crashed(self) -> bool:
        """Died of a signal (an abort, a segfault): negative from Popen, 128+N through a shell."""
        return self.returncode is not None and (self.returncode < 0 or self.returncode > 128)


class Cancelled(Exception):
    """The run was stopped on purpose (lease lost, or the volunteer pressed Ctrl-C twice)."""


@dataclass(frozen=True)
class WhisperConfig:
    cli: Path
    model: Path
    threads: int = 4
    vad_model: Optional[Path] = None  # VAD on when set
    beam_size: Optional[int] = None
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # GGML_* settings from .env, on top of ours


@dataclass
class Transcript:
    files: dict[str, Path]
    language: Optional[str]
    seconds: float  # whisper-cli's own time
    stderr_tail: str = ""
    audio_seconds: float = 0.0
    transcode_seconds: float = 0.0


def model_language(model: Path, wanted: str) -> str:
    """English-only models (*.en) get `en`; others take the task's language (or auto)."""
    if is_english_only(model.name):
        if wanted not in ("en", "auto"):
            raise TranscribeError(
                f"model {model.name} is English-only and cannot transcribe '{wanted}'", retryable=True
            )
        return "en"
    return wanted


def task_args(translate: bool, prompt: Optional[str], temperature: Optional[float]) -> tuple[str, ...]:
    """What a task asks of whisper-cli beside its audio and language (a lease's fields)."""
    args = ["-tr"] if translate else []
    if prompt:
        args += ["--prompt", prompt]
    if temperature is not None:
        args += ["-tp", f"{min(max(temperature, 0.0), 1.0):g}"]
    return tuple(args)


def command(cfg: WhisperConfig, wav: Path, out_base: Path, language: str, formats: Sequence[str]) -> list[str]:
    cmd = [
        str(cfg.cli),
        "-m",
        str(cfg.model),
        "-f",
        str(wav),
        "-t",
        str(cfg.threads),
        "-l",
        language,
        "-of",
        str(out_base),
        "-pp",
        *(_FLAGS[f] for f in formats),
    ]
    if cfg.beam_size:
        cmd += ["-bs", str(cfg.beam_size), "-bo", str(max(cfg.beam_size, 1))]
    if cfg.vad_model:
        cmd += ["--vad", "-vm", str(cfg.vad_model)]
    return cmd + list(cfg.extra_args)


def run(
    cfg: WhisperConfig,
    wav: Path,
    out_base: Path,
    language: str,
    on_progress: Callable[[float], None] = lambda p: None,
    cancel: Optional[threading.Event] = None,
    formats: Sequence[str] = RESULT_FORMATS,
    watch: Optional[Callable[[int], Callable[[], None]]] = None,
) -> Transcript:
    """`watch(pid)` once whisper-cli runs (courtesy.py) returns what to call when it has ended."""
    _check_setup(cfg)
    language = model_language(cfg.model, language)
    outputs = {f: out_base.with_name(f"{out_base.name}.{f}") for f in formats}
    for p in outputs.values():
        p.unlink(missing_ok=True)

    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=40)
    detected: list[str] = []
    proc = subprocess.Popen(
        command(cfg, wav, out_base, language, formats),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env={**os.environ, **cfg.env} if cfg.env else None,
        preexec_fn=die_with_parent,
    )

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if m := _PROGRESS.search(line):
                on_progress(min(100.0, float(m.group(1))))  # whisper-cli reports up to 145 %
                continue
            if m := _DETECTED.search(line):
                detected.append(m.group(1))
            tail.append(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    unwatch = watch(proc.pid) if watch else lambda: None
    try:  # The reader ends when whisper-cli exits (its stderr closes): joining it returns at that moment,
        while reader.is_alive():  # where polling the process would add up to a poll interval per task.
            reader.join(0.2)
            if cancel is not None and cancel.is_set() and reader.is_alive():
                proc.kill()
                proc.wait()
                reader.join(5)
                raise Cancelled("whisper-cli stopped")
        proc.wait()
    finally:
        unwatch()
    _check_exit(proc.returncode, list(tail), [f for f, p in outputs.items() if not p.is_file()])
    return Transcript(
        outputs,
        detected[-1] if detected else (language if language != "auto" else None),
        time.monotonic() - started,
        "\n".join(tail),
    )


def _check_setup(cfg: WhisperConfig) -> None:
    if not cfg.cli.is_file():
        raise TranscribeError(f"whisper-cli not found at {cfg.cli}: run client/whisper/build.sh", retryable=True)
    if not cfg.model.is_file():
        raise TranscribeError(f"model not found at {cfg.model}: run client/whisper/download-model.sh", retryable=True)


def _check_exit(rc: int, tail: list[str], missing: list[str]) -> None:
    """whisper-cli's exit code lies (WHISPER_NOTES.md): an `error:` line or a missing output fails too."""
    errors = [line for line in tail if line.lstrip().lower().startswith("error")]
    if rc == 0 and not errors and not missing:
        return
    reason = (
        errors[-1].strip()
        if errors
        else f"whisper-cli died of {_signal_name(-rc)}"
        if rc < 0
        else f"whisper-cli exited with {rc}"
        if rc
        else f"whisper-cli wrote no {', '.join(missing)} output"
    )
    # Crashes (signals, odd codes) may be this machine's fault; a clean "cannot read" is the file's.
    raise TranscribeError(reason, "\n".join(tail), retryable=rc != 0 and not errors, returncode=rc)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def prepare_audio(src: Path, work: Path, spot: Optional[tuple[float, float]] = None) -> tuple[Path, float, float]:
    """ffprobe the duration, ffmpeg to 16 kHz mono WAV in `work`: (wav, audio seconds, seconds taken).
    `spot`: a spot check's range alone (its length is what is transcribed)."""
    started = time.monotonic()
    audio_seconds = media.duration(src)
    if spot:
        audio_seconds = max(0.0, min(spot[1], audio_seconds) - spot[0])
    wav = media.to_wav(src, work / "input.wav", spot)
    return wav, audio_seconds, time.monotonic() - started


def transcribe_file(
    cfg: WhisperConfig,
    src: Path,
    work: Path,
    language: str,
    on_progress: Callable[[float, float], None] = lambda percent, audio_seconds: None,
    cancel: Optional[threading.Event] = None,
) -> Transcript:
    """The whole local pipeline (`stt-client transcribe`, `bench`): prepare_audio, then whisper-cli."""
    wav, audio_seconds, transcoded = prepare_audio(src, work)
    result = run(cfg, wav, work / "out", language, lambda percent: on_progress(percent, audio_seconds), cancel)
    result.audio_seconds, result.transcode_seconds = audio_seconds, transcoded
    return result
