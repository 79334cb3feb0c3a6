"""The saved result of `stt-client bench`: this machine's speed with its model, sent with each lease
request so the server can guess its speed before it has measured one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .settings import ClientSettings


def bench_file(s: ClientSettings) -> Path:
    return s.work_dir / "bench.json"


def measured_rtf(s: ClientSettings) -> Optional[float]:
    try:
        data = json.loads(bench_file(s).read_text())
        return float(data["rtf"]) if data.get("model") == s.whisper_model.name else None
    except (OSError, ValueError, KeyError):
        return None
