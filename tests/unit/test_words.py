"""Word timings from whisper-cli's token timings (`-ojf`), and the stitcher keeping them in place."""

from __future__ import annotations

import json

from client.words import add_words, words_of
from server.transcripts.join import PartResult, stitch


def tok(text, a, b, p=0.9):
    return {"text": text, "offsets": {"from": a, "to": b}, "p": p}


TOKENS = [
    tok("[_BEG_]", 0, 0),
    tok(" And", 320, 400),
    tok(" so", 400, 520),
    tok(" Amer", 600, 800, p=0.5),
    tok("icans", 800, 1000),
    tok(",", 1000, 1010),
    tok("[_TT_52]", 1040, 1040),
]


def test_tokens_become_words():
    assert words_of(TOKENS) == [
        {"word": "And", "offsets": {"from": 320, "to": 400}, "p": 0.9},
        {"word": "so", "offsets": {"from": 400, "to": 520}, "p": 0.9},
        {"word": "Americans,", "offsets": {"from": 600, "to": 1010}, "p": 0.5},  # the least sure piece
    ]


def test_add_words_leaves_other_json_alone():
    assert add_words(b"not json") == b"not json"
    assert add_words(b'{"transcription": [{"text": " hi"}]}') == b'{"transcription": [{"text": " hi"}]}'
    doc = json.loads(add_words(json.dumps({"transcription": [{"text": " x", "tokens": TOKENS}]}).encode()))
    assert [w["word"] for w in doc["transcription"][0]["words"]] == ["And", "so", "Americans,"]


def test_stitched_words_stay_on_the_file_timeline():
    part = add_words(
        json.dumps({"transcription": [{"offsets": {"from": 300, "to": 1040}, "text": " x", "tokens": TOKENS}]}).encode()
    ).decode()
    doc = json.loads(stitch([PartResult(60_000, 120_000, {"json": part})])["json"])
    words = doc["transcription"][0]["words"]
    assert [w["offsets"]["from"] for w in words] == [60_320, 60_400, 60_600]
    assert "timestamps" not in words[0]  # words carry offsets only, as the client wrote them


def test_markdown_paragraphs_with_times_and_speakers():
    from server.transcripts.markdown import title_of, to_markdown

    def seg(a, b, text, **extra):
        return {"offsets": {"from": a, "to": b}, "text": text, **extra}

    doc = {"transcription": [seg(0, 2000, " Hello there."), seg(2100, 4000, " Welcome."), seg(9000, 11_000, " Later.")]}
    assert to_markdown(title_of("talk_1.mp3"), {"json": json.dumps(doc)}) == (
        "# talk\\_1\n\n**[00:00:00]** Hello there. Welcome.\n\n**[00:00:09]** Later.\n"
    )
    doc = {"transcription": [seg(0, 1000, " Hi.", speaker="A"), seg(1100, 2000, " Hello.", speaker="B")]}
    assert "**[00:00:01]** **B:** Hello." in to_markdown("x", {"json": json.dumps(doc)})
    vtt = "WEBVTT\n\n01:00:00.000 --> 01:00:02.000\n From the VTT.\n"
    assert to_markdown("x", {"vtt": vtt}) == "# x\n\n**[01:00:00]** From the VTT.\n"
