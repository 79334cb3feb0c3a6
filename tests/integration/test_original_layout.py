"""Swapping this server in on the original system's audio tree: `x.json` sidecars give the language,
results land beside the audio, and a client speaking only the old protocol works unchanged."""

from __future__ import annotations

import json

import requests

from tests import legacy_client
from tests.helpers import client_env, copy_audio, run_client

SIDECAR = {"sql_params": {"language": "en", "speaker": "JFK"}, "title": "Inaugural address"}


def original_tree(shared, audio):
    """MP3s with sidecars, one already transcribed by the original system, one sidecar broken, one
    MP3 without any."""
    copy_audio(shared, audio, {f"1961/{n}.mp3": "jfk.mp3" for n in ("a", "b", "broken", "stray")})
    for name in ("a", "b"):
        (audio / f"1961/{name}.json").write_text(json.dumps(SIDECAR))
    (audio / "1961/broken.json").write_text('{"sql_params": {"language": "en"')  # cut off mid-write
    (audio / "1961/b.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:02.000\nthe original system's own\n")


def test_the_old_client_unchanged_on_the_original_layout(shared, whisper_cli, server_process, tmp_path):
    audio = tmp_path / "audio"
    original_tree(shared, audio)
    srv = server_process(
        RESULTS_DIR=str(audio), REQUIRE_SIDECAR="true", RESULT_FORMATS="vtt", DEFAULT_LANGUAGE="de"
    ).start()
    tasks = {t["path"]: t for t in requests.get(f"{srv.url}/api/v1/tasks").json()}
    assert "1961/stray.mp3" not in tasks  # REQUIRE_SIDECAR: no sidecar, not work
    assert tasks["1961/b.mp3"]["state"] == "done"  # its .vtt is there already
    assert tasks["1961/broken.mp3"]["state"] == "held"
    listing = srv.cli("tasks", "--state", "held").stdout
    assert "1961/broken.mp3" in listing and "broken.json is not valid JSON" in listing

    model = shared / "models/ggml-tiny.en.bin"
    done = legacy_client.work_until_idle(srv.url, whisper_cli, model)
    assert done == [tasks["1961/a.mp3"]["id"]]  # the language came from the sidecar: "en", not "de"
    vtt = (audio / "1961/a.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "fellow Americans" in vtt
    assert sorted(p.name for p in (audio / "1961").iterdir() if p.name.startswith("a.")) == [
        "a.json",
        "a.meta.json",
        "a.mp3",
        "a.vtt",
    ]  # RESULT_FORMATS=vtt: no .txt, .srt or .whisper.json
    assert json.loads((audio / "1961/a.json").read_text()) == SIDECAR
    assert "the original system's own" in (audio / "1961/b.vtt").read_text()

    (audio / "1961/broken.json").write_text(json.dumps(SIDECAR))  # the operator fixes it
    assert srv.cli("scan").returncode == 0
    assert legacy_client.work_until_idle(srv.url, whisper_cli, model) == [tasks["1961/broken.mp3"]["id"]]
    assert "fellow Americans" in (audio / "1961/broken.vtt").read_text()


def test_the_new_client_beside_the_audio_keeps_the_sidecar(shared, whisper_cli, server_process, tmp_path):
    audio = tmp_path / "audio"
    copy_audio(shared, audio, {"x.mp3": "jfk.mp3"})
    (audio / "x.json").write_text(json.dumps(SIDECAR))
    srv = server_process(RESULTS_BESIDE_AUDIO="true").start()
    r = run_client(client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "new"), "--until-idle")
    assert r.returncode == 0, r.stdout + r.stderr
    names = sorted(p.name for p in audio.iterdir())
    assert names == ["x.json", "x.meta.json", "x.mp3", "x.srt", "x.txt", "x.vtt", "x.whisper.json"]
    assert json.loads((audio / "x.json").read_text()) == SIDECAR
    assert json.loads((audio / "x.whisper.json").read_text())["transcription"]
    assert json.loads((audio / "x.meta.json").read_text())["language"] == "en"


def test_legacy_error_keeps_its_text(api, shared, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"a.mp3": "jfk.mp3"})
    c = api(MAX_ATTEMPTS=2)
    task_id = c.get("/task").headers["X-Task-ID"]
    error = "ffmpeg failed (1):\n" + "x" * 10_000 + "\n[mp3 @ 0x1] Header missing"
    assert c.post("/error", json={"id": task_id, "error": error}).status_code == 200
    task = c.get(f"/api/v1/tasks/{task_id}").json()
    assert task["state"] == "queued" and task["attempts"] == 1
    assert task["last_error"].endswith("[mp3 @ 0x1] Header missing") and len(task["last_error"]) == 4000
    # Without a text, as before; a text too long to be an error message is refused, not stored.
    c.get("/task")
    assert c.post("/error", json={"id": task_id}).status_code == 200
    assert c.get(f"/api/v1/tasks/{task_id}").json()["last_error"] == "reported by a legacy client"
    assert c.post("/error", json={"id": task_id, "error": "x" * 70_000}).status_code == 422
