"""Find audio/video files under AUDIO_DIR and describe them as tasks (no database here)."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Generic, Optional, TypeVar

from stt_common.files import sha256_file
from stt_common.media import ProbeError

from ..ledger import Catalogue, FoundFile, ScanReport, TaskView, task_id_for
from . import durations
from .paths import MEDIA_EXTENSIONS, UnsafePath, safe_join
from .results import ResultLayout
from .sidecar import LanguageRule

log = logging.getLogger("batch-stt.scanner")


BATCH = 200  # lengths or checksums written per transaction
BATCH_SECONDS = 2.0  # and at least this often

Row = TypeVar("Row")

# Where a task's audio lives: AUDIO_DIR, or (uploaded jobs) a folder chosen per task.
Roots = Path | Callable[[TaskView], Path]


def base(roots: Roots, task: TaskView) -> Path:
    return roots(task) if callable(roots) else roots


def walk(audio_dir: Path) -> Iterator[str]:
    """Relative POSIX paths of media files, never following anything out of audio_dir."""
    root = audio_dir.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in MEDIA_EXTENSIONS:
                continue
            rel = Path(dirpath, name).relative_to(root).as_posix()
            try:
                rel.encode("utf-8")
                if any(ord(c) < 32 for c in rel):
                    raise UnsafePath(rel)
                full = safe_join(root, rel)
            except (UnicodeEncodeError, UnsafePath):
                log.warning("skipping %r: unsafe name or link pointing outside AUDIO_DIR", rel)
                continue
            if full.is_file():
                yield rel


def result_stems(paths: list[str]) -> dict[str, str]:
    """`a/b.mp3` -> `a/b`; when b.mp3 and b.wav sit side by side, each keeps its extension."""
    stems: dict[str, list[str]] = {}
    for p in paths:
        stems.setdefault(str(PurePosixPath(p).with_suffix("")), []).append(p)
    return {p: (stem if len(group) == 1 else p) for stem, group in stems.items() for p in group}


def scan(catalogue: Catalogue, audio_dir: Path, results: ResultLayout, languages: LanguageRule) -> ScanReport:
    """Register new files, notice changed and vanished ones. stat()s, and reads sidecars where
    LANGUAGE_JSON_KEY asks: quick even for huge folders."""
    root = audio_dir.resolve()
    paths = list(walk(audio_dir))
    stems = result_stems(paths)
    found = []
    for rel in paths:
        language = languages.decide(root, rel)
        if language is None:
            continue  # REQUIRE_SIDECAR, and none: not work, as with the original server
        st = (root / rel).stat()
        found.append(
            FoundFile(
                task_id=task_id_for(rel),
                path=rel,
                result_stem=stems[rel],
                language=language.code,
                size=st.st_size,
                mtime=st.st_mtime,
                has_result=results.exists(stems[rel]),
                problem=language.problem,
            )
        )
    return catalogue.sync_files(found)


def pending(fetch: Callable[[], list[TaskView]], before_fetch: Callable[[], None] = lambda: None) -> Iterator[TaskView]:
    """Each task `fetch` lists, once in this pass, until it lists none not yet seen. `before_fetch`
    runs before each fetch: what was done to the last batch is written, so the next one moves on."""
    tried: set[str] = set()
    while True:
        before_fetch()
        batch = [t for t in fetch() if t.id not in tried]
        if not batch:
            return
        for t in batch:
            tried.add(t.id)
            yield t


class Rows(Generic[Row]):
    """Rows written a batch at a time (one transaction each), or every BATCH_SECONDS while they come
    slowly (long files to checksum, formats only ffprobe reads): the first of a fresh library go out
    within seconds either way."""

    def __init__(self, write: Callable[[list[Row]], None]):
        self._write = write
        self._rows: list[Row] = []
        self._written = time.monotonic()

    def add(self, row: Row) -> None:
        self._rows.append(row)
        if len(self._rows) >= BATCH or time.monotonic() - self._written >= BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        self._write(rows)
        self._written = time.monotonic()


def checksum_pending(catalogue: Catalogue, audio_dir: Roots) -> int:
    """SHA-256 of every file that has none yet; reads whole files, so it runs in the background."""
    done = 0
    hashed = Rows(catalogue.set_hashes)
    for t in pending(catalogue.unhashed, before_fetch=hashed.flush):
        done += 1
        try:
            full = safe_join(base(audio_dir, t), t.path)
            size = full.stat().st_size
            hashed.add((t.id, size, sha256_file(full)))
        except (OSError, UnsafePath) as e:
            log.warning("cannot checksum %s: %s", t.path, e)
            catalogue.mark_missing(t.id)
    hashed.flush()
    return done


# Cuts a just-probed file into parts if it should be: (task, its audio, size, length in ms) -> cut?
Split = Callable[[TaskView, Path, int, int], bool]


def probe_pending(catalogue: Catalogue, audio_dir: Roots, split: Optional[Split] = None) -> int:
    """Each new or changed file's duration, in path order: from its headers in this process, else
    ffprobe (durations.py). Lengths are written a batch at a time (Rows), so a fresh library goes
    out within seconds, and never a request waits on a probe.

    `split` may cut a long file into parts in the same step, so it is never handed out whole in
    between. A file nothing can read gets 0, so it is not probed again until it changes; the clients
    will report its real error. Without ffprobe on the server, files whose headers do not tell are
    not probed (one warning a pass).
    """
    done = 0
    probed = Rows(catalogue.set_durations)
    for t in pending(catalogue.unprobed, before_fetch=probed.flush):
        try:
            full = safe_join(base(audio_dir, t), t.path)
            size = full.stat().st_size
            seconds = durations.duration(full)
        except FileNotFoundError as e:
            if e.filename is None:  # ffprobe itself is missing
                log.warning("cannot probe durations: %s", e)
                break
            continue  # the file vanished: the next scan marks it missing
        except (OSError, UnsafePath, subprocess.TimeoutExpired) as e:
            log.warning("cannot probe %s: %s", t.path, e)
            continue
        except ProbeError:
            seconds = 0.0
        duration_ms = round(seconds * 1000)
        done += 1
        if split is not None and split(t, full, size, duration_ms):
            continue
        probed.add((t.id, size, duration_ms))
    probed.flush()
    return done
