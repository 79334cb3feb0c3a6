"""HTTP against a real server process: the legacy protocol exactly, and settings errors at start."""

from __future__ import annotations

import json

import pytest
import requests

from tests.helpers import copy_audio

VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n And so my fellow Americans,\n\n"
    "00:00:02.000 --> 00:00:04.000\n ask not.\n"
)


def test_legacy_protocol_over_http(shared, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3", "de/b.mp3": "millbrook.mp3"})
    srv = server_process().start()
    seen = {}
    for _ in range(2):
        r = requests.get(f"{srv.url}/task", timeout=10)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "audio/mpeg"
        seen[r.headers["X-Task-ID"]] = (r.headers["X-Language"], r.content)
    assert requests.get(f"{srv.url}/task", timeout=10).status_code == 204  # all handed out
    by_lang = {lang: (tid, body) for tid, (lang, body) in seen.items()}
    assert by_lang["auto"][1] == (shared / "audio" / "jfk.mp3").read_bytes()
    assert by_lang["de"][1] == (shared / "audio" / "millbrook.mp3").read_bytes()

    r = requests.post(f"{srv.url}/result", json={"id": by_lang["auto"][0], "vtt": VTT}, timeout=10)
    assert r.status_code == 200
    assert (tmp_path / "data/results/jfk.vtt").read_text() == VTT
    assert (tmp_path / "data/results/jfk.txt").read_text() == "And so my fellow Americans,\nask not.\n"
    # A repeated result is fine and changes nothing.
    assert requests.post(f"{srv.url}/result", json={"id": by_lang["auto"][0], "vtt": "WEBVTT\n"}, timeout=10).ok
    assert (tmp_path / "data/results/jfk.vtt").read_text() == VTT

    assert requests.post(f"{srv.url}/error", json={"id": by_lang["de"][0]}, timeout=10).status_code == 200
    tasks = {t["id"]: t for t in requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()}
    assert tasks[by_lang["auto"][0]]["state"] == "done"
    assert tasks[by_lang["de"][0]]["state"] == "queued" and tasks[by_lang["de"][0]]["attempts"] == 1
    events = [json.loads(line)["event"] for line in (tmp_path / "data/events.log").read_text().splitlines()]
    assert events.count("granted") == 2 and "completed" in events and "failed" in events


@pytest.mark.parametrize(
    "setting,value,message",
    [
        ("PORT", "eighty", "PORT='eighty' is not a whole number"),
        ("DEFAULT_LANGUAGE", "english", "DEFAULT_LANGUAGE"),
        ("DATABASE_URL", "mysql://x", "only sqlite"),
        ("AUDIO_DIR", "/does/not/exist", "is not a directory"),
    ],
)
def test_wrong_setting_is_one_clear_line(server_process, setting, value, message):
    srv = server_process(**{setting: value})
    r = srv.cli("status")
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
