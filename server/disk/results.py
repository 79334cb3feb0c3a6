"""Writing transcripts to RESULTS_DIR so that a crash leaves the old state or the whole new one."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from stt_common.files import fsync_dir, write_atomic, write_new
from stt_common.formats import RESULT_FORMATS

from .paths import MEDIA_EXTENSIONS, UnsafePath, safe_join


class ResultClash(ValueError):
    """A result's name is another file's: beside the audio, `x.meta.json` is the sidecar of `x.meta.mp3`."""


META = ".meta.json"
STAGED = "staged"  # DATA_DIR/staged/: uploads' files written and flushed before their transaction


@dataclass
class Staged:
    """An upload's files already written and flushed, in a worker thread before the ledger's
    transaction (server/group_commit.py): inside it, keeping one is a rename, and the folders they
    went to are flushed once for the whole batch, just before its commit. Named like
    write_atomic's temps, so a crash's are removed at start."""

    files: dict[str, tuple[Path, bytes]]  # format, or META -> its staged file and bytes
    folders: set[Path] = field(default_factory=set)  # where staged files went: flush before the commit

    def take(self, key: str, target: Path, data: bytes) -> bool:
        """Move the staged file to `target` if it holds `data`; False if not (none, other bytes,
        another file system), and the caller writes it."""
        path, staged = self.files.get(key, (None, b""))
        if path is None or staged != data:
            return False
        try:
            os.replace(path, target)
        except OSError:
            return False
        del self.files[key]
        return True

    def discard(self) -> None:
        """What no verdict took (a duplicate, a refusal, a format not kept)."""
        for path, _ in self.files.values():
            path.unlink(missing_ok=True)
        self.files.clear()


def stage(folder: Path, files: Mapping[str, bytes]) -> Staged:
    """Written, not flushed: the caller flushes every staged file of a batch at once (Staged.files)."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = Staged({})
    name = f".{secrets.token_hex(8)}.{{}}.{os.getpid()}-{secrets.randbits(32)}.tmp"
    try:
        for key, data in files.items():
            path = folder / name.format(key)
            write_new(path, data, flush=False)
            staged.files[key] = (path, data)
    except BaseException:
        staged.discard()
        raise
    return staged


@dataclass(frozen=True)
class ResultLayout:
    """Where a file's transcripts go and which formats are kept (RESULTS_DIR, RESULT_FORMATS).

    Beside the audio (the original server's layout) the JSON transcript is `x.whisper.json`: `x.json`
    is the sidecar the language comes from. Nothing is written over a sidecar, and no result format
    is an audio extension, so nothing is written over audio either.
    """

    root: Path
    formats: tuple[str, ...] = RESULT_FORMATS
    beside_audio: bool = False

    def suffix(self, fmt: str) -> str:
        return ".whisper.json" if fmt == "json" and self.beside_audio else f".{fmt}"

    def exists(self, stem: str) -> bool:
        """A configured result is there already (the original server's rule for "done")."""
        try:
            return any(safe_join(self.root, stem + self.suffix(f)).is_file() for f in self.formats)
        except UnsafePath:
            return False

    def meta(self, meta: dict[str, Any], files: Mapping[str, bytes]) -> bytes:
        """The `.meta.json` of a set of `files` (the formats it keeps of them)."""
        return json.dumps({**meta, "formats": sorted(f for f in files if f in self.formats)}, sort_keys=True).encode()

    def write(
        self, stem: str, files: Mapping[str, bytes], meta: dict[str, Any], staged: Optional[Staged] = None
    ) -> list[Path]:
        """Each kept format, then `.meta.json` last: its presence marks a complete set. With `staged`,
        its files are moved into place where they can be, and the folder is left for the caller to
        flush (`staged.folders`)."""
        unknown = set(files) - set(RESULT_FORMATS)
        if unknown:
            raise ValueError(f"unknown result format {', '.join(sorted(unknown))}")
        kept = {f: data for f, data in files.items() if f in self.formats}
        # One check that the set's folder lies inside RESULTS_DIR; the renames below never follow a
        # symlink planted at a result's name, so the siblings need no check of their own.
        meta_path = safe_join(self.root, stem + META)
        base = meta_path.name[: -len(META)]
        targets = {meta_path.with_name(base + self.suffix(f)): (f, data) for f, data in kept.items()}
        if self.beside_audio:
            for target in [*targets, meta_path]:
                _refuse_sidecar(target)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        for target, (fmt, data) in targets.items():
            if staged is None or not staged.take(fmt, target, data):
                write_atomic(target, data)
        meta_data = self.meta(meta, kept)
        if staged is None or not staged.take(META, meta_path, meta_data):
            write_atomic(meta_path, meta_data)
        if staged is None:
            fsync_dir(meta_path.parent)  # make the renames themselves durable
        else:
            staged.folders.add(meta_path.parent)
        return [*targets, meta_path]

    def read(self, stem: str) -> tuple[dict[str, Any], dict[str, str]]:
        """A set write() completed: its meta, and each format's text."""
        meta_path = safe_join(self.root, stem + META)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        base = meta_path.name[: -len(META)]
        texts = {f: meta_path.with_name(base + self.suffix(f)).read_text(encoding="utf-8") for f in meta["formats"]}
        return meta, texts


def _refuse_sidecar(target: Path) -> None:
    if target.suffix != ".json":
        return
    stem = target.with_suffix("")
    for ext in MEDIA_EXTENSIONS:
        if stem.with_name(stem.name + ext).exists():
            raise ResultClash(f"{target.name} would overwrite the sidecar of {stem.name}{ext}")


_OUR_TEMP = re.compile(r"^\..+\.\d+-\d+\.tmp$")


def remove_stale_temps(results_dir: Path) -> int:
    """Temp files a crash left mid-write were never acknowledged: remove them at start (only ours:
    RESULTS_DIR may be the audio tree)."""
    removed = 0
    for dirpath, _, filenames in os.walk(results_dir):
        for name in filenames:
            if _OUR_TEMP.match(name):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
