"""whisper.cpp's failure modes volunteers meet most, each retried once with the flags that cure it.

- A GPU build that crashes (Vulkan DeviceLost on Intel Xe, whisper.cpp #3537; CUDA on some cards):
  whisper-cli dies of a signal. The task is run again with `--no-gpu`.
- A GPU build that hears nothing (an empty transcript, or only "!!!!", on some Vulkan drivers,
  whisper.cpp #2618) and exits 0. A transcript with no word may be honest (a tone, music), so the
  task is run again with `--no-gpu`, until SILENCES_TO_TRUST such runs found nothing either; where
  the CPU hears speech, its transcript is the one uploaded.
  After FAILURES_BEFORE_CPU failures of either kind this client stays on `--no-gpu` for the rest of
  the run and says so.
- A repetition loop (whisper.cpp #1507): one line printed dozens of times. Run again with
  `--max-context 64 --entropy-thold 2.8` (the maintainers' advice, the original client's flags);
  still looping, it is an error with the evidence, never an upload of garbage. Whisper's markers
  for what is not speech ([BLANK_AUDIO], [Music], (music), [SOUND], ♪ ...) repeat on silence and
  music by design: they are left out before looking for a loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from . import transcribe
from .notify import Notifiers
from .settings import ClientSettings

NO_GPU = ("--no-gpu",)
ANTI_LOOP = ("--max-context", "64", "--entropy-thold", "2.8")
FAILURES_BEFORE_CPU = 2
SILENCES_TO_TRUST = 2  # a GPU build's silences the CPU confirmed: its later ones are believed
LOOP_RUN = 8  # the same line this many times in a row
WINDOW = 200  # words; fewer than WINDOW * MIN_DISTINCT distinct ones in any such stretch is a loop
MIN_DISTINCT = 0.1

_WORD = re.compile(r"\w+")
# What whisper writes for sound that is not speech: bracketed or starred tags, music notes.
_NOT_SPEECH = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*\n]*\*|[♪♫]")


def whisper_config(s: ClientSettings) -> transcribe.WhisperConfig:
    return transcribe.WhisperConfig(
        cli=s.whisper_cli,
        model=s.whisper_model,
        threads=s.threads,
        vad_model=s.vad_model if s.vad_enabled else None,
        beam_size=s.beam_size,
        extra_args=s.extra_whisper_args,
        env=s.whisper_env,
    )


def built_backend(s: ClientSettings) -> str:
    """The backend build.sh recorded next to the binary, unless WHISPER_BACKEND says otherwise."""
    if s.backend:
        return s.backend
    stamp = s.whisper_cli.parent.parent / ".batch-stt-stamp"
    try:
        return stamp.read_text().split()[1]
    except (OSError, IndexError):
        return "unknown"


def find_loop(text: str) -> Optional[str]:
    """What shows that whisper looped, or None. Lines are whisper's segments."""
    text = _NOT_SPEECH.sub(" ", text)
    lines = [" ".join(_WORD.findall(line.lower())) for line in text.splitlines()]
    lines = [line for line in lines if line]
    run, longest, line_of_longest = 1, 1, lines[0] if lines else ""
    for prev, line in itertools.pairwise(lines):
        run = run + 1 if line == prev else 1
        if run > longest:
            longest, line_of_longest = run, line
    if longest >= LOOP_RUN:
        return f"the line {line_of_longest[:120]!r} {longest} times in a row"
    words = _WORD.findall(text.lower())
    window = min(WINDOW, len(words))
    if window < 60:
        return None
    for start in range(0, len(words) - window + 1, window // 2):
        distinct = set(words[start : start + window])
        if len(distinct) < window * MIN_DISTINCT:
            sample = " ".join(words[start : start + 12])
            return f"only {len(distinct)} distinct words in {window} (from word {start}: {sample!r}...)"
    return None


def heard(text: str) -> bool:
    """Whether a transcript has a word in it, once the markers of what is not speech are left out."""
    return bool(_WORD.search(_NOT_SPEECH.sub(" ", text)))


def _text(result: transcribe.Transcript) -> str:
    path = result.files.get("txt") or result.files.get("vtt")
    return path.read_text(encoding="utf-8", errors="replace") if path else ""


class Guard:
    """Runs whisper-cli for the worker; remembers, for this run, whether the GPU build can be trusted."""

    def __init__(self, s: ClientSettings, notifier: Notifiers, say: Callable[[str], None]):
        self.cfg = whisper_config(s)
        self.built = built_backend(s)
        self.notifier = notifier
        self.say = say
        self.failures = 0  # the GPU build's crashes, and silences where the CPU heard speech
        self.silences = 0  # the GPU build's silences the CPU confirmed
        self.cpu_only = False  # set after repeated GPU failures

    @property
    def backend(self) -> str:
        """What transcribes now: the build's backend, or cpu once this run gave up on the GPU."""
        return "cpu" if self.cpu_only else self.built

    def run(
        self,
        wav: Path,
        out_base: Path,
        language: str,
        on_progress: Callable[[float], None],
        cancel: Optional[threading.Event],
        task: Sequence[str] = (),
        watch: Optional[Callable[[int], Callable[[], None]]] = None,
    ) -> tuple[transcribe.Transcript, dict[str, Any]]:
        """The transcript (`task`: what the task asks of whisper-cli, transcribe.task_args), and what
        the result's metadata should say about how it was made."""
        flags = NO_GPU if self.cpu_only else ()
        meta: dict[str, Any] = {}

        def attempt() -> transcribe.Transcript:
            cfg = dataclasses.replace(self.cfg, extra_args=(*self.cfg.extra_args, *task, *flags))
            return transcribe.run(cfg, wav, out_base, language, on_progress, cancel, watch=watch)

        try:
            result = attempt()
        except transcribe.TranscribeError as e:
            if not e.crashed or flags or self.built == "cpu":
                raise
            self.say(f"whisper-cli crashed on the {self.built} build ({e}); running this task again with --no-gpu")
            flags, meta["gpu_fallback"] = NO_GPU, f"{self.built} build crashed: {e}"
            self._gpu_failed(meta["gpu_fallback"], e.stderr_tail)
            result = attempt()
        if not flags and self.built != "cpu" and self.silences < SILENCES_TO_TRUST and not heard(_text(result)):
            flags = NO_GPU  # the check's files replace the GPU's: they are the result either way
            result = attempt()
            if heard(_text(result)):
                meta["gpu_fallback"] = f"{self.built} build heard nothing where the CPU heard speech"
                self.say(f"the {meta['gpu_fallback']}: this task's transcript is the CPU's")
                self._gpu_failed(meta["gpu_fallback"], result.stderr_tail)
            else:
                self.silences += 1
        if looped := find_loop(_text(result)):
            self.say(f"whisper-cli looped ({looped}); trying again with {' '.join(ANTI_LOOP)}")
            flags = (*flags, *ANTI_LOOP)
            result = attempt()
            if again := find_loop(_text(result)):
                raise transcribe.TranscribeError(
                    f"whisper-cli loops on this audio, also with {' '.join(ANTI_LOOP)}: {again}",
                    f"first run: {looped}\nsecond run: {again}\n{result.stderr_tail}",
                )
            meta["loop_retry"] = looped
        meta["backend"] = "cpu" if NO_GPU[0] in flags else self.built
        return result, meta

    def _gpu_failed(self, what: str, tail: str) -> None:
        self.failures += 1
        if self.failures >= FAILURES_BEFORE_CPU and not self.cpu_only:
            self.cpu_only = True
            message = (
                f"whisper-cli failed {self.failures} times on the {self.built} build (last: {what}): this "
                "client uses --no-gpu (CPU) until it is restarted. Check the GPU driver, or rebuild with "
                "client/whisper/build.sh --backend cpu."
            )
            self.say(message)
            self.notifier.send(message, tail)
