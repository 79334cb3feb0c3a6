"""Speakers kept apart: which tracks a file has under each SPEAKERS mode (real ffmpeg on small
generated files), how their parts are planned, and how their segments are merged (pure text)."""

from __future__ import annotations

import json
import subprocess

import pytest

from server.disk.audio import AudioFile
from server.ledger import PlannedPart, Speakers, TaskState, TaskView
from server.parts import speakers
from server.parts.cut import cut
from server.parts.plan import per_speaker
from server.parts.speakers import AudioStream, Track
from server.transcripts.heard import LEAK, QUIET, VOICE, within_heard
from server.transcripts.join import PartResult, stitch
from server.transcripts.markdown import to_markdown
from server.transcripts.verbose import verbose_json
from server.transcripts.vtt import cues


def tone(path, *graph: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *graph, str(path)], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("speakers")
    sine = "sine=frequency={}:duration=3"
    tone(d / "mono.mp3", "-f", "lavfi", "-i", sine.format(440))
    tone(d / "same.mp3", "-f", "lavfi", "-i", sine.format(440), "-ac", "2")
    tone(d / "call.mp3", "-f", "lavfi", "-i", sine.format(440), "-f", "lavfi", "-i", sine.format(300),
         "-filter_complex", "[0][1]join=inputs=2:channel_layout=stereo")  # fmt: skip
    tone(d / "two.mka", "-f", "lavfi", "-i", sine.format(440), "-f", "lavfi", "-i", sine.format(300),
         "-map", "0", "-map", "1", "-metadata:s:a:1", "language=deu")  # fmt: skip
    tone(d / "one.mka", "-f", "lavfi", "-i", sine.format(440))
    tone(d / "one.m4a", "-f", "lavfi", "-i", sine.format(440))
    names = ["-metadata:s:a:0", "handler_name=Ann", "-metadata:s:a:1", "handler_name=Bo"]
    tone(d / "two.m4a", "-f", "lavfi", "-i", sine.format(440), "-f", "lavfi", "-i", sine.format(300),
         "-map", "0", "-map", "1", *names)  # fmt: skip
    tone(d / "mixed.mkv", "-f", "lavfi", "-i", "sine=frequency=440:duration=10", "-f", "lavfi", "-i",
         "sine=frequency=300:duration=10", "-filter_complex", "[1]pan=stereo|c0=c0|c1=c0[s]", "-map", "0", "-map",
         "[s]", "-c:a", "aac")  # fmt: skip
    return d


@pytest.mark.parametrize(
    ("name", "mode", "expected"),
    [
        ("two.mka", Speakers.AUTO, [Track(0, None, "Speaker 1"), Track(1, None, "Speaker 2 (deu)")]),
        ("two.mka", Speakers.STREAMS, [Track(0, None, "Speaker 1"), Track(1, None, "Speaker 2 (deu)")]),
        ("two.mka", Speakers.CHANNELS, [Track(0, None, "Speaker 1"), Track(1, None, "Speaker 2 (deu)")]),
        ("two.mka", Speakers.OFF, []),
        ("one.mka", Speakers.AUTO, []),
        ("one.m4a", Speakers.AUTO, []),
        ("two.m4a", Speakers.AUTO, [Track(0, None, "Ann"), Track(1, None, "Bo")]),
        ("call.mp3", Speakers.CHANNELS, [Track(0, 0, "Speaker 1"), Track(0, 1, "Speaker 2")]),
        ("call.mp3", Speakers.AUTO, []),  # auto never splits channels
        ("call.mp3", Speakers.STREAMS, []),
        ("same.mp3", Speakers.CHANNELS, []),  # the same audio on both channels: one speaker
        ("mono.mp3", Speakers.CHANNELS, []),
    ],
)
def test_each_mode_finds_the_speakers_a_recording_keeps_apart(files, name, mode, expected):
    assert speakers.find(files / name, mode) == expected


def test_mp4_tracks_are_counted_from_the_headers(files, tmp_path):
    assert (speakers.mp4_sound_tracks(files / "one.m4a"), speakers.mp4_sound_tracks(files / "two.m4a")) == (1, 2)
    (tmp_path / "bad.m4a").write_bytes(b"\x00\x00\x00\x08moov nonsense")
    assert speakers.mp4_sound_tracks(tmp_path / "bad.m4a") is None


def test_a_file_ffprobe_cannot_read_is_one_speaker(tmp_path):
    (tmp_path / "junk.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really")
    assert speakers.find(tmp_path / "junk.mkv", Speakers.STREAMS) == []


def test_a_title_is_cleaned_and_a_muxers_default_handler_name_is_no_name():
    raw = {"channels": 2, "tags": {"title": "  <b>Ann</b>\n ", "language": "und"}}
    assert speakers._stream(raw) == AudioStream(2, "bAnn/b", None)
    assert speakers._stream({"channels": 1, "tags": {"handler_name": "SoundHandler"}}).title is None


def test_titles_name_speakers_and_repeated_ones_are_numbered():
    found = [
        AudioStream(1, "Ann", None),
        AudioStream(1, None, "eng"),
        AudioStream(1, "Ann", None),
        AudioStream(1, None, None),
    ]
    assert speakers.names(found) == ["Ann", "Speaker 2 (eng)", "Ann (3)", "Speaker 4"]


def test_every_time_range_is_planned_once_per_speaker():
    times = [PlannedPart(0, 500, "start of the file"), PlannedPart(500, 900, "pause of 0.4 s")]
    planned = per_speaker(times, [Track(0, None, "A"), Track(1, None, "B")])
    assert [(p.start_ms, p.stream, p.speaker) for p in planned] == [
        (0, 0, "A"),
        (500, 0, "A"),
        (0, 1, "B"),
        (500, 1, "B"),
    ]
    assert len({p.track for p in planned}) == 2 and per_speaker(times, []) == times


def whisper_json(*segments):
    entries = [{"offsets": {"from": a, "to": b}, "text": text,
                "words": [{"word": text.split()[0], "offsets": {"from": a, "to": a + 100}}]}
               for a, b, text in segments]  # fmt: skip
    return json.dumps({"result": {"language": "en"}, "transcription": entries})


ALICE = PartResult(0, 20_000, {"json": whisper_json((0, 4000, " Hello there."), (9000, 12_000, " [BLANK_AUDIO]"),
                                                    (12_000, 15_000, " Bye now."))}, speaker="Alice")  # fmt: skip
BOB = PartResult(0, 20_000, {"json": whisper_json((0, 6000, " Hi Alice."), (6000, 8000, " (silence)"))}, speaker="Bob")


def test_speakers_are_merged_in_time_order_each_labelled_in_every_format():
    out = {k: v.decode() for k, v in stitch([ALICE, BOB], "en").items()}
    entries = json.loads(out["json"])["transcription"]
    assert [(e["offsets"]["from"], e["speaker"], e["text"]) for e in entries] == [
        (0, "Alice", " Hello there."),
        (0, "Bob", " Hi Alice."),  # overlapping speech keeps both, in start order
        (12_000, "Alice", " Bye now."),  # non-speech left out
    ]
    assert all(w["speaker"] == e["speaker"] for e in entries for w in e["words"])
    assert [c.text for c in cues(out["vtt"])] == ["<v Alice>Hello there.", "<v Bob>Hi Alice.", "<v Alice>Bye now."]
    assert [c.text for c in cues(out["srt"])] == ["Alice: Hello there.", "Bob: Hi Alice.", "Alice: Bye now."]
    assert out["txt"] == "Alice: Hello there.\nBob: Hi Alice.\nAlice: Bye now.\n"
    md = to_markdown("call", {"json": out["json"]})
    assert "**[00:00:00]** **Alice:** Hello there." in md and "**Bob:** Hi Alice." in md
    verbose = verbose_json(out["json"], task="transcribe", language="en", duration=20, words=True)
    assert [s["speaker"] for s in verbose["segments"]] == ["Alice", "Bob", "Alice"]
    assert [w["speaker"] for w in verbose["words"]] == ["Alice", "Bob", "Alice"]


def test_a_speaker_is_kept_only_where_its_track_is_heard_and_starts_there():
    heard = {"Alice": bytes([1] * 40 + [0] * 160), "Bob": bytes([0] * 20 + [1] * 40 + [0] * 140)}
    out = json.loads(stitch([ALICE, BOB], "en", heard)["json"])["transcription"]
    # Bob's whisper segment began in the silence before him: it starts where he is heard (2 s);
    # Alice's "Bye now." lies where her track is silent: made up, left out.
    assert [(e["offsets"]["from"], e["offsets"]["to"], e["speaker"]) for e in out] == [
        (0, 4000, "Alice"),
        (2000, 6000, "Bob"),
    ]
    assert within_heard(0, 1000, None) == (0, 1000) and within_heard(25_000, 26_000, heard["Bob"]) == (25_000, 26_000)
    assert within_heard(0, 2000, bytes([0, 0, 1, 1, 0] + [0] * 15)) is None  # 0.2 s heard: less than a word


def test_one_speaker_stays_as_before():
    whole = PartResult(0, 20_000, {"json": whisper_json((0, 4000, " Hello."), (5000, 6000, " [BLANK_AUDIO]"))})
    out = {k: v.decode() for k, v in stitch([whole], "en").items()}
    assert out["txt"] == " Hello.\n [BLANK_AUDIO]\n" and "speaker" not in out["json"]


def part(path, start_ms, end_ms, stream, channel) -> TaskView:
    return TaskView(id=f"part{start_ms}x{stream}x{channel}", path=path.name, result_stem="x", language="en",
                    state=TaskState.LEASED, attempts=1, size=1, sha256=None, last_error=None, audio_seconds=None,
                    updated_at=0.0, done_at=None, mtime=0.0, duration_ms=10_000, parent_id="file", start_ms=start_ms,
                    end_ms=end_ms, note=None, job_id=None, priority=0, min_tier=0, validate_all=False, translate=False,
                    prompt=None, temperature=None, stream=stream, channel=channel, speaker="S")  # fmt: skip


def probed(path) -> tuple[str, int, float]:
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries",
                        "stream=codec_name,channels:format=duration", "-of", "json", str(path)],
                       capture_output=True, text=True, check=True)  # fmt: skip
    doc = json.loads(r.stdout)
    (stream,) = doc["streams"]
    return stream["codec_name"], stream["channels"], float(doc["format"]["duration"])


def test_a_speakers_part_is_its_stream_or_channel_alone_and_exactly_its_range(files, tmp_path):
    source = files / "mixed.mkv"
    # A stream: copied (AAC, its two channels), from where the range starts, not the cue point before.
    codec, channels, seconds = probed(
        cut(AudioFile(source, source.stat()), tmp_path, part(source, 4000, 7000, 1, None)).path
    )
    assert (codec, channels) == ("aac", 2) and abs(seconds - 3.0) < 0.1
    codec, channels, seconds = probed(
        cut(AudioFile(source, source.stat()), tmp_path, part(source, 6000, 10_000, 0, None)).path
    )
    assert (codec, channels) == ("aac", 1) and abs(seconds - 4.0) < 0.1
    call = files / "call.mp3"
    # A channel: decoded alone into 16 kHz mono FLAC.
    made = cut(AudioFile(call, call.stat()), tmp_path, part(call, 1000, 2500, 0, 1)).path
    assert made.suffix == ".flac" and probed(made)[:2] == ("flac", 1) and abs(probed(made)[2] - 1.5) < 0.1


def test_a_word_is_dropped_where_its_track_has_only_anothers_voice_never_for_a_quiet_stretch():
    words = [("leaked", 1000, 1300), ("early", 3000, 3300), ("mine", 6000, 6300)]
    entry = {"offsets": {"from": 1000, "to": 6300}, "text": " leaked early mine",
             "words": [{"word": w, "offsets": {"from": a, "to": b}} for w, a, b in words]}  # fmt: skip
    part = PartResult(0, 8000, {"json": json.dumps({"transcription": [entry]})}, speaker="Ann")
    # 0-2 s: another speaker's voice leaks into Ann's track; 2-5.5 s quiet; then Ann.
    frames = bytes([LEAK] * 20 + [QUIET] * 35 + [VOICE] * 25)
    (kept,) = json.loads(stitch([part], "en", {"Ann": frames})["json"])["transcription"]
    # "early" is whisper timing Ann's first words seconds too early (it does after a silence): kept.
    assert [w["word"] for w in kept["words"]] == ["early", "mine"] and kept["text"] == " early mine"
    assert (kept["offsets"]["from"], kept["offsets"]["to"]) == (5500, 6300)  # where Ann is heard


def test_a_track_that_is_silence_throughout_contributes_nothing():
    said = whisper_json((0, 10_000, " [BLANK_AUDIO]"), (10_000, 12_000, " Thank you."))
    silent = PartResult(0, 20_000, {"json": said}, speaker="Cy")
    heard = {"Cy": bytes([QUIET] * 200), "Alice": bytes([VOICE] * 40 + [QUIET] * 160)}
    out = {k: v.decode() for k, v in stitch([ALICE, silent], "en", heard).items()}
    assert "Cy" not in out["txt"] + out["vtt"] + out["srt"] + out["json"]  # whisper's "Thank you." in silence too
    assert out["txt"] == "Alice: Hello there.\n"
