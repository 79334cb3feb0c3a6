"""Cut planning on audio with pauses where we put them (real ffmpeg decoding only the windows)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from server.parts.plan import choose_cut, nominal_cuts, plan

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed")


def tone(path, expression: str, seconds: int = 90):
    """A loud 440 Hz tone shaped by `expression` (1 = loud, 0 = silent), as a 64 kb/s MP3."""
    source = f"aevalsrc='0.5*sin(2*PI*440*t)*{expression}':d={seconds}:s=16000"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-b:a", "64k", str(path)], check=True)
    return path


def test_nominal_cuts_make_parts_of_at_most_split_length():
    assert nominal_cuts(1_800_000, 600_000) == [600_000, 1_200_000]
    assert nominal_cuts(700_000, 600_000) == [350_000]  # two parts of 350 s, not 600 + 100


def test_cuts_go_in_the_middle_of_the_longest_nearby_pause(tmp_path):
    # Pauses of 0.2 s (too short), 0.6 s and 1.0 s near the nominal cuts at 30 s and 60 s.
    f = tone(tmp_path / "p.mp3", "(1-between(t,31,31.2))*(1-between(t,34,34.6))*(1-between(t,55,56))")
    parts = plan(f, 90_000, 30_000)
    assert [(p.start_ms, p.end_ms) for p in parts] == [(0, 34_300), (34_300, 55_500), (55_500, 90_000)]
    assert [p.note for p in parts[1:]] == ["pause of 0.6 s", "pause of 1.0 s"]


def test_without_a_pause_the_cut_goes_to_the_quietest_point_and_says_so(tmp_path):
    f = tone(tmp_path / "q.mp3", "(1-0.9*between(t,62,63))")  # never silent; 20 dB quieter for a second
    parts = plan(f, 90_000, 30_000)
    assert 62_000 <= parts[2].start_ms <= 63_000
    assert parts[2].note.startswith("no pause found: cut at the quietest point")
    assert parts[1].start_ms == 30_000  # all equally loud: the nominal point


def test_choose_cut_on_levels():
    loud, quiet = -10.0, -80.0
    levels = [loud] * 100 + [quiet] * 20 + [loud] * 100 + [quiet] * 40 + [loud] * 100
    assert choose_cut(levels, 110) == (240, "pause of 0.8 s")  # the longer pause wins over the nearer


def test_an_undecodable_window_falls_back_to_the_nominal_point(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00" * 4096)
    parts = plan(junk, 90_000, 30_000)
    assert [p.start_ms for p in parts] == [0, 30_000, 60_000]
    assert "could not be decoded" in parts[1].note
