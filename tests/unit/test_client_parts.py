"""The client's parts that need no process: command lines, model rules, backoff, windows, settings."""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pytest

from client.backoff import Backoff
from client.schedule import Window, WindowError
from client.settings import ClientSettings, SettingsError
from client.transcribe import TranscribeError, WhisperConfig, command, model_language
from server.transcripts.vtt import vtt_to_text


def test_command_line():
    cfg = WhisperConfig(Path("/w"), Path("/m/ggml-tiny.en.bin"), 3, Path("/m/vad.bin"), beam_size=8)
    cmd = command(cfg, Path("a.wav"), Path("/o/out"), "en", ["txt", "json"])
    assert cmd[:9] == ["/w", "-m", "/m/ggml-tiny.en.bin", "-f", "a.wav", "-t", "3", "-l", "en"]
    assert {"-otxt", "-ojf", "-pp", "--vad"} <= set(cmd) and "-p" not in cmd  # -p loses text
    assert cmd[cmd.index("-bs") + 1] == "8"


def test_english_only_models():
    assert model_language(Path("ggml-tiny.en.bin"), "auto") == "en"
    assert model_language(Path("ggml-base-q5_1.bin"), "es") == "es"
    with pytest.raises(TranscribeError):
        model_language(Path("ggml-tiny.en.bin"), "de")


def test_backoff_is_jittered_and_capped():
    b = Backoff(base=1, cap=60, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(20)]
    assert all(0 < d <= 60 for d in delays)
    assert max(delays[:3]) <= 4 and max(delays[10:]) > 10  # grows
    assert len(set(delays)) == 20  # jitter: no two clients in step
    b.reset()
    assert b.next_delay() <= 1


def test_processing_window():
    w = Window.parse("0 22 * * *", "8")
    assert w.is_open(datetime(2026, 1, 5, 23, 30)) and w.is_open(datetime(2026, 1, 6, 5, 59))
    assert not w.is_open(datetime(2026, 1, 6, 6, 0)) and not w.is_open(datetime(2026, 1, 6, 12, 0))
    assert w.seconds_until_open(datetime(2026, 1, 6, 21, 0)) == 3600
    weekend = Window.parse("0 8 * * 6,0", "10")  # Saturday and Sunday from 08:00
    assert weekend.is_open(datetime(2026, 1, 4, 9, 0)) and not weekend.is_open(datetime(2026, 1, 5, 9, 0))
    assert Window.parse("", "") is None
    for cron, hours in [("0 22 * *", "8"), ("61 * * * *", "1"), ("0 22 * * *", "x"), ("", "8")]:
        with pytest.raises(WindowError):
            Window.parse(cron, hours)


def test_client_settings():
    s = ClientSettings.from_env({"WHISPER_MODEL": "/m/ggml-tiny.en.bin", "NODE_NAME": "laptop"}, dotenv_path=None)
    assert s.english_only and s.node_name == "laptop" and s.server_url == "http://127.0.0.1:8000"
    for bad in [{"AUTH_ENABLED": "true"}, {"SERVER_URL": "ftp://x"}, {"THREADS": "0"}, {"CRON": "bad"}]:
        with pytest.raises(SettingsError):
            ClientSettings.from_env(bad, dotenv_path=None)


def test_vtt_to_text():
    vtt = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\n Hello\nworld\n\n00:01.000 --> 00:02.000\n2024 is here\n"
    assert vtt_to_text(vtt) == "Hello world\n2024 is here\n"


def test_a_spot_check_transcodes_its_range_alone_and_says_so(shared, tmp_path):
    """Real ffmpeg: the lease's range of millbrook (62 s) becomes a 20 s WAV; the lease names it."""
    from client.api import Lease
    from client.transcribe import prepare_audio

    lease = Lease("t", "k", "talks/millbrook.mp3", "/a", "en", 1, None, 0.0, 60, 15.0, 1,
                  check_start_seconds=12.5, check_end_seconds=32.5)  # fmt: skip
    wav, seconds, _ = prepare_audio(shared / "audio" / "millbrook.mp3", tmp_path, lease.spot)
    assert seconds == 20.0 and abs(wav.stat().st_size - 44 - 20 * 16000 * 2) <= 2 * 16000 * 0.03
    assert lease.describe() == "talks/millbrook.mp3 (a spot check of 0:00:12-0:00:32)"
    (tmp_path / "whole").mkdir()
    whole, seconds, _ = prepare_audio(shared / "audio" / "millbrook.mp3", tmp_path / "whole")
    assert seconds > 60 and whole.stat().st_size > 3 * wav.stat().st_size
