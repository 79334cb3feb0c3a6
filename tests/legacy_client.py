"""A client that speaks exactly the original system's protocol, as its Fedora client did: GET /task
(the audio as the body, X-Task-ID and X-Language headers; 204 when idle), ffmpeg to WAV,
whisper-cli with its anti-loop flags writing a VTT, then POST /result {"id", "vtt"} or, when
anything failed, POST /error {"id", "error"}. Nothing of this project's own client is used."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import requests


def work_once(server: str, whisper_cli: Path, model: Path, auth: Optional[tuple[str, str]] = None) -> Optional[str]:
    """One task, start to end; its id, or None when the server had nothing."""
    r = requests.get(f"{server}/task", auth=auth, timeout=60)
    if r.status_code == 204:
        return None
    r.raise_for_status()
    task_id, language = r.headers["X-Task-ID"], r.headers["X-Language"]
    with tempfile.TemporaryDirectory(prefix="old-client-") as tmp:
        audio, wav, out = Path(tmp, "audio.mp3"), Path(tmp, "audio.wav"), Path(tmp, "out")
        audio.write_bytes(r.content)
        to_wav = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", audio, "-ar", "16000", "-ac", "1", wav]
        whisper = [whisper_cli, "-m", model, "-f", wav, "-l", language, "-t", "2", "-ovtt", "-of", out]
        steps = [to_wav, [*whisper, "--max-context", "64", "--entropy-thold", "2.8"]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, errors="replace")
            if done.returncode != 0:
                error = f"{Path(step[0]).name} failed ({done.returncode}):\n{done.stderr[-2000:]}"
                requests.post(f"{server}/error", json={"id": task_id, "error": error}, auth=auth, timeout=60)
                return task_id
        vtt = out.with_suffix(".vtt")
        if not vtt.is_file():
            requests.post(f"{server}/error", json={"id": task_id, "error": "no vtt"}, auth=auth, timeout=60)
            return task_id
        posted = requests.post(f"{server}/result", json={"id": task_id, "vtt": vtt.read_text()}, auth=auth, timeout=60)
        posted.raise_for_status()
    return task_id


def work_until_idle(server: str, whisper_cli: Path, model: Path, auth: Optional[tuple[str, str]] = None) -> list[str]:
    done = []
    while (task_id := work_once(server, whisper_cli, model, auth)) is not None:
        done.append(task_id)
    return done
