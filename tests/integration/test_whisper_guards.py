"""The client's guards against whisper.cpp's failure modes, with the real daemon, server, ffmpeg and
whisper-cli. No GPU here: a stand-in aborts as a crashing Vulkan build does unless given --no-gpu,
and another makes whisper-cli's output loop; both hand the real work to the real whisper-cli."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from client import transcribe
from client.guard import ANTI_LOOP, Guard, find_loop
from client.notify import Notifiers
from client.settings import ClientSettings
from tests.helpers import client_env, copy_audio, run_client
from tests.receiver import Receiver

TINY = "models/ggml-tiny.en.bin"
CRASHING_GPU = """\
    # A GPU build that crashes on this machine (whisper.cpp #3537): aborts unless told --no-gpu.
    with open(LOG, "a") as f:
        f.write(os.environ.get("GGML_VK_VISIBLE_DEVICES", "-") + " " + " ".join(args) + "\\n")
    if "--no-gpu" not in args:
        print("ggml_vulkan: vk::Queue::submit: ErrorDeviceLost", file=sys.stderr, flush=True)
        os.abort()
    os.execv(REAL, [REAL, *args])
"""

HEARS_NOTHING = """\
    # A GPU build that exits 0 with outputs of nothing (some Vulkan drivers, whisper.cpp #2618) or
    # only a marker (SAY); with --no-gpu, the real whisper-cli (or the same marker when SAY is set:
    # a tone, which the CPU does not hear either).
    with open(LOG, "a") as f:
        f.write(" ".join(args) + "\\n")
    if "--no-gpu" not in args or os.environ.get("SAY"):
        base = args[args.index("-of") + 1]
        said = os.environ.get("SAY", "")
        for flag, ext, text in (("-otxt", "txt", said), ("-ovtt", "vtt", "WEBVTT\\n\\n"), ("-osrt", "srt", "")):
            if flag in args:
                open(f"{base}.{ext}", "w").write(text)
        if "-ojf" in args:
            open(base + ".json", "w").write('{"transcription": []}')
        sys.exit(0)
    os.execv(REAL, [REAL, *args])
"""

LOOPING = """\
    # Real whisper-cli, then its text made to loop, as whisper.cpp #1507 shows, unless run with
    # the anti-loop flags (or ALWAYS_LOOP is set).
    rc = subprocess.call([REAL, *args])
    if "--max-context" not in args or os.environ.get("ALWAYS_LOOP"):
        base = args[args.index("-of") + 1]
        line = " And so, my fellow Americans, ask not."
        with open(base + ".txt", "w") as f:
            f.write((line + "\\n") * 40)
        with open(base + ".vtt", "w") as f:
            cues = (f"00:00:{i:02}.000 --> 00:00:{i + 1:02}.000\\n{line}\\n\\n" for i in range(40))
            f.write("WEBVTT\\n\\n" + "".join(cues))
    sys.exit(rc)
"""


def stand_in(tmp_path: Path, real: Path, body: str) -> Path:
    script = tmp_path / "stand-in" / "whisper-cli"
    script.parent.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    head = f"#!{sys.executable}\nimport os, subprocess, sys\nREAL = {str(real)!r}\nLOG = {str(log)!r}\n"
    script.write_text(head + "args = sys.argv[1:]\n" + textwrap.dedent(body))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def metas(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in results.glob("*.meta.json")}


def test_a_crashing_gpu_build_falls_back_to_cpu(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"a.mp3": "jfk.mp3", "b.mp3": "jfk.mp3", "c.mp3": "jfk.mp3"})
    srv = server_process(DEFAULT_LANGUAGE="en").start()
    with Receiver() as gotify:
        env = client_env(
            tmp_path,
            srv.url,
            shared / "models/ggml-tiny.en.bin",
            "xe-laptop",
            WHISPER_CLI=stand_in(tmp_path, whisper_cli, CRASHING_GPU),
            WHISPER_BACKEND="vulkan",
            GOTIFY_URL=gotify.url,
            GOTIFY_KEY="app-token",
        )
        (tmp_path / ".env").write_text("GGML_VK_VISIBLE_DEVICES=1\n")  # the old client's .env: passed on
        r = run_client(env, "--until-idle")
        assert r.returncode == 0, r.stdout + r.stderr
        messages = gotify.wait_for(1)
    assert requests.get(f"{srv.url}/api/v1/stats").json()["counts"]["done"] == 3
    out = r.stdout + r.stderr
    assert out.count("running this task again with --no-gpu") == 2
    assert "failed 2 times on the vulkan build (last: vulkan build crashed: " in out
    assert "this client uses --no-gpu" in out
    calls = (tmp_path / "calls.log").read_text().splitlines()
    # Two crashes, each run again on the CPU; the third task goes straight to the CPU.
    assert [("--no-gpu" in c) for c in calls] == [False, True, False, True, True]
    assert all(c.startswith("1 ") for c in calls)  # GGML_VK_VISIBLE_DEVICES from .env reached whisper-cli
    assert all(meta["backend"] == "cpu" for meta in metas(tmp_path / "data/results").values())
    fallbacks = [m.get("gpu_fallback", "") for m in metas(tmp_path / "data/results").values()]
    assert sorted(bool(f) for f in fallbacks) == [False, True, True]
    assert all("vulkan build crashed: whisper-cli died of SIGABRT" in f for f in fallbacks if f)
    assert "fellow Americans" in (tmp_path / "data/results/a.txt").read_text()
    (msg,) = messages
    assert msg.headers["X-Gotify-Key"] == "app-token" and msg.path == "/message"
    body = msg.json()
    assert (body["title"], body["priority"]) == ("xe-laptop", 7)
    assert "uses --no-gpu" in body["message"] and "ErrorDeviceLost" in body["message"]


def guard_for(tmp_path: Path, cli: Path, model: Path, backend: str) -> tuple[Guard, list[str]]:
    env = {
        "WHISPER_CLI": str(cli),
        "WHISPER_MODEL": str(model),
        "THREADS": "2",
        "WHISPER_BACKEND": backend,
        "WORK_DIR": str(tmp_path / "work"),
    }
    said: list[str] = []
    return Guard(ClientSettings.from_env(env, dotenv_path=None), Notifiers(), said.append), said


def test_a_gpu_build_that_hears_nothing_is_overruled_by_the_cpu(shared, whisper_cli, tmp_path):
    guard, said = guard_for(tmp_path, stand_in(tmp_path, whisper_cli, HEARS_NOTHING), shared / TINY, "vulkan")
    made = []
    for n in range(3):
        result, meta = guard.run(shared / "audio/jfk.wav", tmp_path / f"out{n}", "en", lambda p: None, None)
        assert "fellow Americans" in result.files["txt"].read_text()
        made.append(meta)
    calls = (tmp_path / "calls.log").read_text().splitlines()
    # Heard nothing twice, overruled each time; then the CPU only, for the rest of the run.
    assert [("--no-gpu" in c) for c in calls] == [False, True, False, True, True]
    assert [m["backend"] for m in made] == ["cpu", "cpu", "cpu"]
    assert [m.get("gpu_fallback") for m in made] == [
        "vulkan build heard nothing where the CPU heard speech",
        "vulkan build heard nothing where the CPU heard speech",
        None,
    ]
    assert guard.cpu_only and any("failed 2 times on the vulkan build" in line for line in said)


def test_a_gpu_builds_silence_is_believed_once_the_cpu_confirmed_two(shared, tmp_path, monkeypatch):
    """A stand-in alone (no GPU here): music, say, where neither build hears a word."""
    monkeypatch.setenv("SAY", "[Music]\n")
    cli = stand_in(tmp_path, Path("/nonexistent"), HEARS_NOTHING)
    guard, said = guard_for(tmp_path, cli, shared / TINY, "cuda")
    made = [guard.run(shared / "audio/jfk.wav", tmp_path / f"o{n}", "en", lambda p: None, None)[1] for n in range(4)]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert [("--no-gpu" in c) for c in calls] == [False, True, False, True, False, False]
    assert [m["backend"] for m in made] == ["cpu", "cpu", "cuda", "cuda"]
    assert not any("gpu_fallback" in m for m in made) and not guard.cpu_only and said == []


def test_a_looping_transcript_is_retried_with_the_anti_loop_flags(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    srv = server_process(DEFAULT_LANGUAGE="en").start()
    env = client_env(
        tmp_path,
        srv.url,
        shared / "models/ggml-tiny.en.bin",
        "looper",
        WHISPER_CLI=stand_in(tmp_path, whisper_cli, LOOPING),
    )
    r = run_client(env, "--until-idle")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "whisper-cli looped (the line 'and so my fellow americans ask not' 40 times in a row)" in r.stderr
    text = (tmp_path / "data/results/jfk.txt").read_text()
    assert find_loop(text) is None and "ask what you can do for your country" in text
    meta = metas(tmp_path / "data/results")["jfk.meta.json"]
    assert "40 times in a row" in meta["loop_retry"]


def test_a_transcript_that_still_loops_is_an_error_with_the_evidence(shared, whisper_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("ALWAYS_LOOP", "1")
    s = ClientSettings.from_env(
        {
            "WHISPER_CLI": str(stand_in(tmp_path, whisper_cli, LOOPING)),
            "WHISPER_MODEL": str(shared / "models/ggml-tiny.en.bin"),
            "THREADS": "2",
            "WORK_DIR": str(tmp_path / "work"),
        },
        dotenv_path=None,
    )
    said: list[str] = []
    guard = Guard(s, Notifiers(), said.append)
    with pytest.raises(transcribe.TranscribeError) as e:
        guard.run(shared / "audio/jfk.wav", tmp_path / "out", "en", lambda p: None, None)
    assert f"loops on this audio, also with {' '.join(ANTI_LOOP)}" in str(e.value)
    assert "first run: the line 'and so my fellow americans ask not' 40 times" in e.value.stderr_tail
    assert not e.value.retryable and len(said) == 1


def test_a_failed_task_reaches_the_volunteer_on_gotify(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"bad.mp3": "corrupt-garbage.mp3"})
    srv = server_process(MAX_ATTEMPTS=1).start()
    with Receiver() as gotify:
        env = client_env(
            tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "fedora", GOTIFY_URL=gotify.url, GOTIFY_KEY="k"
        )
        assert run_client(env, "--until-idle").returncode == 0
        (msg,) = gotify.wait_for(1)
    body = msg.json()
    assert (body["title"], body["priority"]) == ("fedora", 7)
    assert "bad.mp3" in body["message"] and "failed" in body["message"]
    assert len(body["message"].splitlines()) <= 2 + 15  # the message, a blank line, the output's last lines


@pytest.mark.parametrize("name", ["jfk.txt", "millbrook.txt", "tren-es.txt"])
def test_real_speech_is_not_taken_for_a_loop(shared, name):
    assert find_loop((shared / "audio" / name).read_text()) is None


@pytest.mark.parametrize(
    "text,evidence",
    [
        ("Thank you.\n" * 8, "'thank you' 8 times in a row"),
        ("Thank you.\n" * 7 + "Goodbye.\n", None),
        ("la " * 300, "only 1 distinct words in 200"),
        ("we will go to the place and we will go to the place " * 20, "only 7 distinct words"),
        # Not speech: whisper's own markers repeat on silence and music by design.
        ("[BLANK_AUDIO]\n" * 40, None),
        ("[Music]\n(music)\n[SOUND]\n♪ ♪\n*music playing*\n" * 20, None),
        ("[Music]\n" * 10 + "Thank you.\n" * 8, "'thank you' 8 times in a row"),
    ],
)
def test_find_loop(text, evidence):
    found = find_loop(text)
    assert (found is None) if evidence is None else (evidence in (found or ""))
