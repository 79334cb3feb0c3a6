"""Joining parts' results: every timestamp on the file's timeline, in order, nothing lost or doubled."""

from __future__ import annotations

import json

from server.transcripts.join import PartResult, stitch
from server.transcripts.vtt import cues, parse_time


def whisper_json(*segments, tokens=False):
    def entry(a, b, text):
        e = {
            "timestamps": {"from": "x", "to": "y"},
            "offsets": {"from": a, "to": b},
            "text": text,
        }
        if tokens:
            e["tokens"] = [{"text": text.split()[0], "offsets": {"from": a, "to": a + 100}}]
        return e

    return json.dumps(
        {"model": {"type": "tiny"}, "result": {"language": "en"}, "transcription": [entry(*s) for s in segments]}
    )


VTT = "WEBVTT\n\n00:00.500 --> 00:04.000\n legacy one\n\n00:04.000 --> 00:09.999\n legacy two\n"


def test_parts_from_json_and_legacy_vtt_join_on_the_file_timeline():
    parts = [
        PartResult(0, 10_000, {"json": whisper_json((0, 5000, " first"), (5000, 10_400, " second"), tokens=True)}),
        PartResult(10_000, 20_000, {"vtt": VTT, "txt": "legacy one\nlegacy two\n"}),
        PartResult(20_000, 25_000, {"srt": "1\n00:00:00,000 --> 00:00:02,000\n last\n"}),
    ]
    out = {k: v.decode() for k, v in stitch(parts, "en").items()}
    assert out["txt"] == " first\n second\n legacy one\n legacy two\n last\n"
    assert [(c.start_ms, c.end_ms, c.text) for c in cues(out["vtt"])] == [
        (0, 5000, " first"),
        (5000, 10_000, " second"),  # clamped to its part: never overlaps the next
        (10_500, 14_000, " legacy one"),
        (14_000, 19_999, " legacy two"),
        (20_000, 22_000, " last"),
    ]
    assert cues(out["srt"]) == cues(out["vtt"]) and out["srt"].startswith("1\n00:00:00,000 --> 00:00:05,000\n")
    doc = json.loads(out["json"])
    assert doc["model"] == {"type": "tiny"} and doc["result"] == {"language": "en"}
    entries = doc["transcription"]
    assert [e["offsets"]["from"] for e in entries] == [0, 5000, 10_500, 14_000, 20_000]
    assert entries[2]["timestamps"] == {"from": "00:00:10,500", "to": "00:00:14,000"}
    assert entries[1]["tokens"][0]["offsets"] == {"from": 5000, "to": 5100}  # word timings move too


def test_a_later_part_is_shifted_by_its_start():
    parts = [
        PartResult(3_600_000, 4_200_000, {"json": whisper_json((1000, 2000, " b"))}),
        PartResult(0, 3_600_000, {"json": whisper_json((0, 1000, " a"))}),
    ]
    doc = json.loads(stitch(parts)["json"])
    assert [e["timestamps"]["from"] for e in doc["transcription"]] == ["00:00:00,000", "01:00:01,000"]


def test_time_parsing():
    assert parse_time("01:02:03.456") == 3_723_456
    assert parse_time("02:03,456") == 123_456


def test_a_part_with_nothing_said_adds_nothing():
    parts = [PartResult(0, 10_000, {"vtt": "WEBVTT\n\n"}), PartResult(10_000, 20_000, {"txt": " hi\n"})]
    out = stitch(parts)
    assert out["txt"] == b"hi\n" and cues(out["vtt"].decode())[0].start_ms == 10_000
