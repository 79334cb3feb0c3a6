"""Fast tests of the client's parts. The whisper-cli stand-in here only checks the subprocess
contract (exit codes that lie, progress, cancel); real transcription is tested in test_e2e.py."""

from __future__ import annotations

import stat
import sys
import textwrap
import threading

import pytest

from client.settings import ClientSettings
from client.transcribe import Cancelled, TranscribeError, WhisperConfig, run

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
    # no-speech: what the real one writes for five minutes of a tone (no segment at all)
    silent = {{"txt": "", "srt": "", "vtt": "WEBVTT\\n\\n", "json": '{{"transcription": []}}'}}
    for flag, ext in (("-otxt", "txt"), ("-ovtt", "vtt"), ("-osrt", "srt"), ("-ojf", "json")):
        if flag in args and not (mode == "no-json" and ext == "json"):
            open(f"{{base}}.{{ext}}", "w").write(silent[ext] if mode == "no-speech" else "hallo\\n")
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


def test_no_speech_is_an_empty_transcript_not_a_failure(fake_cli):
    t = fake_cli("no-speech")
    assert sorted(t.files) == ["json", "srt", "txt", "vtt"]
    assert t.files["txt"].read_text() == "" and t.files["vtt"].read_text() == "WEBVTT\n\n"


@pytest.mark.parametrize(
    "mode,message,retryable",
    [
        ("read-error", "failed to read audio file", False),  # rc 0 but an error line and no files
        ("no-json", "wrote no json output", False),  # rc 0, one output missing
        ("abort", "exited with 134", True),  # a crash may be this machine's fault
    ],
)
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


def test_outbox_keeps_results_through_refusals(shared, server_process, tmp_path):
    """Wrong credentials: the result stays queued. A final refusal (unknown lease): kept aside, not lost."""
    from client.api import ServerAPI, Transient
    from client.outbox import Outbox
    from tests.helpers import copy_audio

    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    srv = server_process(AUTH_TOKENS="box:right-token-0123456789").start()
    settings = ClientSettings.from_env(
        {"SERVER_URL": srv.url, "AUTH_TOKEN": "wrong-token-0123456789"}, dotenv_path=None
    )
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
