"""The original server's data layout: language from `x.json` sidecars, results beside the audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.disk.results import ResultClash, ResultLayout, remove_stale_temps
from server.disk.scanner import scan
from server.disk.sidecar import LanguageRule
from tests.helpers import make_ledger


def touch(path: Path, data: bytes = b"ID3 not really audio") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sidecar(audio: Path, body: object) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    audio.with_suffix(".json").write_text(text)


@pytest.mark.parametrize(
    "rel,body,expected",
    [
        ("de/a.mp3", {"sql_params": {"language": "fr"}}, "fr"),  # the sidecar beats the folder
        ("de/a.mp3", None, "de"),  # no sidecar: the folder
        ("a.mp3", None, "en"),  # neither: DEFAULT_LANGUAGE
        ("a.mp3", {"sql_params": {"language": "de-DE"}}, "de"),  # a region is dropped
        ("a.mp3", {"sql_params": {"language": "AUTO"}}, "auto"),
    ],
)
def test_language_precedence(tmp_path, rel, body, expected):
    audio = touch(tmp_path / rel)
    if body is not None:
        sidecar(audio, body)
    assert LanguageRule(default="en").decide(tmp_path, rel).code == expected


@pytest.mark.parametrize(
    "body,problem",
    [
        ("{not json", "a.json is not valid JSON"),
        ({"sql_params": {}}, "a.json has no sql_params.language"),
        ({"sql_params": "de"}, "a.json has no sql_params.language"),
        ([1, 2], "a.json has no sql_params.language"),
        ({"sql_params": {"language": "klingon"}}, "'klingon' is not a Whisper language code"),
        ({"sql_params": {"language": 7}}, "7 is not a Whisper language code"),
    ],
)
def test_a_broken_sidecar_is_a_problem_not_a_crash(tmp_path, body, problem):
    sidecar(touch(tmp_path / "a.mp3"), body)
    found = LanguageRule().decide(tmp_path, "a.mp3")
    assert found is not None and problem in (found.problem or "")


def test_sidecars_off_and_required(tmp_path):
    sidecar(touch(tmp_path / "de" / "a.mp3"), "{not json")
    touch(tmp_path / "b.mp3")
    off = LanguageRule(json_key="")
    assert off.decide(tmp_path, "de/a.mp3").code == "de" and off.decide(tmp_path, "de/a.mp3").problem is None
    required = LanguageRule(require_sidecar=True)
    assert required.decide(tmp_path, "b.mp3") is None
    assert required.decide(tmp_path, "de/a.mp3").problem


def test_a_sidecar_link_out_of_the_tree_is_not_read(tmp_path):
    (tmp_path / "secret.json").write_text('{"sql_params": {"language": "de"}}')
    audio = tmp_path / "audio"
    touch(audio / "a.mp3")
    (audio / "a.json").symlink_to(tmp_path / "secret.json")
    assert "outside AUDIO_DIR" in LanguageRule().decide(audio, "a.mp3").problem


def test_scan_holds_a_broken_sidecar_until_it_is_fixed(tmp_path):
    audio = tmp_path / "audio"
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}")
    layout, rule = ResultLayout(audio, beside_audio=True), LanguageRule()
    for name in ("good", "broken", "done", "plain"):
        touch(audio / f"{name}.mp3")
    sidecar(audio / "good.mp3", {"sql_params": {"language": "de"}})
    sidecar(audio / "broken.mp3", "{oops")
    touch(audio / "done.vtt", b"WEBVTT\n")  # the original server's own result
    assert scan(ledger.catalogue, audio, layout, rule).added == 4
    tasks = {t.path: t for t in ledger.reports.tasks()}
    assert (tasks["good.mp3"].state, tasks["good.mp3"].language) == ("queued", "de")
    assert tasks["broken.mp3"].state == "held" and "broken.json is not valid JSON" in tasks["broken.mp3"].last_error
    assert tasks["done.mp3"].state == "done" and tasks["plain.mp3"].state == "queued"
    handed = set()
    while (grant := ledger.leases.claim("c")) is not None:
        handed.add(grant.task_id)
    assert handed == {tasks["good.mp3"].id, tasks["plain.mp3"].id}  # held work is never handed out

    scan(ledger.catalogue, audio, layout, rule)  # a rescan of the unfixed file changes nothing
    assert ledger.reports.task(tasks["broken.mp3"].id).state == "held"
    sidecar(audio / "broken.mp3", {"sql_params": {"language": "es"}})
    scan(ledger.catalogue, audio, layout, rule)
    fixed = ledger.reports.task(tasks["broken.mp3"].id)
    assert (fixed.state, fixed.language, fixed.last_error) == ("queued", "es", None)


def test_require_sidecar_queues_only_audio_with_one(tmp_path):
    audio = tmp_path / "audio"
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}")
    touch(audio / "with.mp3")
    touch(audio / "without.mp3")
    sidecar(audio / "with.mp3", {"sql_params": {"language": "en"}})
    scan(ledger.catalogue, audio, ResultLayout(tmp_path / "r"), LanguageRule(require_sidecar=True))
    assert [t.path for t in ledger.reports.tasks()] == ["with.mp3"]


FILES = {"txt": b"hello\n", "vtt": b"WEBVTT\n", "srt": b"1\n", "json": b"{}"}


def test_results_beside_the_audio_never_touch_the_sidecar(tmp_path):
    touch(tmp_path / "x.mp3")
    sidecar(tmp_path / "x.mp3", {"sql_params": {"language": "en"}})
    written = ResultLayout(tmp_path, beside_audio=True).write("x", FILES, {"task_id": "t"})
    assert sorted(p.name for p in written) == [
        "x.meta.json",
        "x.srt",
        "x.txt",
        "x.vtt",
        "x.whisper.json",
    ]
    assert json.loads((tmp_path / "x.json").read_text()) == {"sql_params": {"language": "en"}}
    assert (tmp_path / "x.mp3").read_bytes() == b"ID3 not really audio"
    assert ResultLayout(tmp_path, beside_audio=True).exists("x")


def test_result_formats_choose_the_files(tmp_path):
    layout = ResultLayout(tmp_path, formats=("vtt",))
    layout.write("a/x", FILES, {})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.meta.json", "x.vtt"]
    assert json.loads((tmp_path / "a" / "x.meta.json").read_text())["formats"] == ["vtt"]
    assert not layout.exists("a/y")
    with pytest.raises(ValueError, match="unknown result format"):
        layout.write("a/x", {"exe": b"MZ"}, {})


def test_a_result_that_would_overwrite_a_sidecar_is_refused(tmp_path):
    touch(tmp_path / "x.mp3")
    touch(tmp_path / "x.meta.mp3")  # its sidecar is x.meta.json: our metadata's name for x
    sidecar(tmp_path / "x.meta.mp3", {"sql_params": {"language": "en"}})
    with pytest.raises(ResultClash, match=r"x\.meta\.json would overwrite the sidecar of x\.meta\.mp3"):
        ResultLayout(tmp_path, beside_audio=True).write("x", FILES, {})
    assert json.loads((tmp_path / "x.meta.json").read_text()) == {"sql_params": {"language": "en"}}
    assert not (tmp_path / "x.vtt").exists()  # refused before anything was written


def test_only_our_own_temp_files_are_swept(tmp_path):
    touch(tmp_path / "a" / ".x.vtt.123-456.tmp")
    touch(tmp_path / "a" / ".operators-notes.tmp")
    assert remove_stale_temps(tmp_path) == 1
    assert (tmp_path / "a" / ".operators-notes.tmp").exists()
