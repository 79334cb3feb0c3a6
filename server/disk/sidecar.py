"""A file's language, as the original server read it: `x.json` beside `x.mp3`, at a key path such as
`sql_params.language`; then a language-named folder; then DEFAULT_LANGUAGE.

A sidecar that exists but cannot be read is the operator's to fix: the file is held with the reason
(never guessed in another language, never a crash of the scan) until it is fixed and rescanned.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from .languages import WHISPER_LANGUAGES
from .paths import UnsafePath, safe_join

MAX_SIDECAR_BYTES = 1024 * 1024  # metadata, not a database dump


@dataclass(frozen=True)
class Language:
    code: str
    problem: Optional[str] = None  # set: the file must wait for the operator


def language_for_folder(path: str, default: str) -> str:
    """The deepest folder named by a language code wins: AUDIO_DIR/de/x.mp3 is German."""
    for part in reversed(PurePosixPath(path).parts[:-1]):
        if part.lower() in WHISPER_LANGUAGES:
            return part.lower()
    return default


@dataclass(frozen=True)
class LanguageRule:
    default: str = "auto"
    json_key: str = "sql_params.language"  # "": sidecars are not read
    require_sidecar: bool = False

    def decide(self, audio_dir: Path, rel: str) -> Optional[Language]:
        """None: the file is not work (REQUIRE_SIDECAR and it has none)."""
        if self.json_key or self.require_sidecar:
            try:
                sidecar = safe_join(audio_dir, str(PurePosixPath(rel).with_suffix(".json")))
            except UnsafePath:
                return Language(self.default, f"sidecar of {PurePosixPath(rel).name} points outside AUDIO_DIR")
            exists = sidecar.is_file()
            if self.require_sidecar and not exists:
                return None
            if self.json_key and exists:
                return self._from_sidecar(sidecar)
        return Language(language_for_folder(rel, self.default))

    def _from_sidecar(self, sidecar: Path) -> Language:
        name = sidecar.name
        try:
            if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
                return Language(self.default, f"sidecar {name} is larger than {MAX_SIDECAR_BYTES} bytes")
            value: object = json.loads(sidecar.read_bytes())
        except OSError as e:
            return Language(self.default, f"sidecar {name} cannot be read: {e.strerror or e}")
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError alike
            return Language(self.default, f"sidecar {name} is not valid JSON: {e}")
        for key in self.json_key.split("."):
            if not isinstance(value, dict) or key not in value:
                return Language(self.default, f"sidecar {name} has no {self.json_key}")
            value = value[key]
        code = value.strip().lower().replace("_", "-").split("-")[0] if isinstance(value, str) else ""  # de-DE: de
        if code != "auto" and code not in WHISPER_LANGUAGES:
            return Language(self.default, f"sidecar {name}: {self.json_key}={value!r} is not a Whisper language code")
        return Language(code)
