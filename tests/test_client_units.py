"""Fast tests of the client's parts. The whisper-cli stand-in here only checks the subprocess
contract (exit codes that lie, progress, cancel); real transcription is tested in test_e2e.py."""

from __future__ import annotations

import random
import stat
import sys
import textwrap
import threading
from datetime import datetime
from pathlib import Path

import pytest

from client.backoff import Backoff
from client.schedule import Window, WindowError
from client.settings import ClientSettings, SettingsError
from client.transcribe import Cancelled, TranscribeError, WhisperConfig, command, model_language, run
from server.results import vtt_to_text

STAND_IN = textwrap.dedent("""\
    #!{python}
    # Behaves like whisper-cli as far as the client can tell; MODE picks the behaviour.
    import os, sys, time
    args = sys.argv[1:]
    base = args[args.index("-of") + 1]
    mode = os.environ.get("MODE", "ok")
    for p in (10, 50, 145):
        print(f"whisper_print_progress_callback: progress = {{p}}%", file=sys.stderr, flush=True)
    if mode == "hang":
        time.sleep(60)
    if mode == "read-error":  # what the real one does with a corrupt file: rc 0, no outputs
        print("error: failed to read audio file 'x.wav'", file=sys.stderr); sys.exit(0)
    if mode == "abort":
        sys.exit(134)
    print("auto-detected language: de (p = 0.98)", file=sys.stderr)
    for flag, ext in (("-otxt", "txt"), ("-ovtt", "vtt"), ("-osrt", "srt"), ("-oj", "json")):
        if flag in args and not (mode == "no-json" and ext == "json"):
            open(f"{{base}}.{{ext}}", "w").write("hallo\\n")
""")


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    cli = tmp_path / "whisper-cli"
    cli.write_text(STAND_IN.format(python=sys.executable))
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    model = tmp_path / "ggml-base.bin"
    model.write_bytes(b"model")
    wav = tmp_path / "in.wav"
    wav.write_bytes(b"RIFF")

    def go(mode: str, **kwargs):
        monkeypatch.setenv("MODE", mode)
        return run(WhisperConfig(cli, model, 2), wav, tmp_path / "out", "auto", **kwargs)

    return go


def test_success_needs_every_output(fake_cli):
    progress = []
    t = fake_cli("ok", on_progress=progress.append)
    assert sorted(t.files) == ["json", "srt", "txt", "vtt"] and t.language == "de"
    assert progress == [10.0, 50.0, 100.0]  # 145 % clamped


@pytest.mark.parametrize("mode,message,retryable", [
    ("read-error", "failed to read audio file", False),  # rc 0 but an error line and no files
    ("no-json", "wrote no json output", False),  # rc 0, one output missing
    ("abort", "exited with 134", True),  # a crash may be this machine's fault
])
def test_exit_codes_lie(fake_cli, mode, message, retryable):
    with pytest.raises(TranscribeError) as e:
        fake_cli(mode)
    assert message in str(e.value) and e.value.retryable is retryable
    assert "progress" not in e.value.stderr_tail


def test_cancel_kills_whisper(fake_cli):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(Cancelled):
        fake_cli("hang", cancel=cancel)


def test_command_line():
    cfg = WhisperConfig(Path("/w"), Path("/m/ggml-tiny.en.bin"), 3, Path("/m/vad.bin"), beam_size=8)
    cmd = command(cfg, Path("a.wav"), Path("/o/out"), "en", ["txt", "json"])
    assert cmd[:9] == ["/w", "-m", "/m/ggml-tiny.en.bin", "-f", "a.wav", "-t", "3", "-l", "en"]
    assert {"-otxt", "-oj", "-pp", "--vad"} <= set(cmd) and "-p" not in cmd  # -p loses text
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


def test_outbox_keeps_results_through_refusals(shared, server_process, tmp_path):
    """Wrong credentials: the result stays queued. A final refusal (unknown lease): kept aside, not lost."""
    from client.api import ServerAPI, Transient
    from client.outbox import Outbox
    from tests.conftest import copy_audio

    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    srv = server_process(AUTH_TOKENS="box:right-token-0123456789").start()
    settings = ClientSettings.from_env({"SERVER_URL": srv.url, "AUTH_TOKEN": "wrong-token-0123456789"}, dotenv_path=None)
    outbox = Outbox(tmp_path / "outbox")
    entry = outbox.put_result("aaaaaaaaaaaaaaaa", "B" * 32, {"txt": b"hello\n"}, {"model": "m"})
    with pytest.raises(Transient):
        outbox.send(ServerAPI(settings), entry)
    assert [e.path for e in outbox.pending()] == [entry.path]

    good = ClientSettings.from_env({"SERVER_URL": srv.url, "AUTH_TOKEN": "right-token-0123456789"}, dotenv_path=None)
    assert "refused" in outbox.send(ServerAPI(good), entry)  # 404: that lease never existed
    assert outbox.pending() == []
    kept = list((tmp_path / "outbox" / "rejected").iterdir())
    assert len(kept) == 1 and (kept[0] / "out.txt").read_bytes() == b"hello\n"
    assert "unknown lease token" in (kept[0] / "refused.txt").read_text()
