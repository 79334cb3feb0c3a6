"""Validation on the real fleet: real stt-client daemons with real whisper-cli, one of them lying (a
modified client whose transcripts are plausible garbage: other words, same length). No garbage
reaches RESULTS_DIR, the liar is shown untrusted, and honest hosts, once trusted, are checked only
now and then."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jiwer
import pytest
import requests

from server.disk.durations import duration
from server.ledger import TaskState, ValidationMode, ValidationRule
from server.transcripts.compare import words
from tests.helpers import WHISPER_CLI, Clock, add_tasks, client_env, copy_audio, make_ledger
from tests.receiver import Receiver
from tests.unit.test_validation import SMALL, upload

# A modified client: the real whisper-cli, then each word of its outputs swapped for another one.
LIAR = textwrap.dedent("""\
    #!{python}
    import re, subprocess, sys
    args = sys.argv[1:]
    rc = subprocess.run(["{cli}", *args]).returncode
    base = args[args.index("-of") + 1]
    words = ["banana", "window", "seventeen", "purple", "engine", "quietly", "marble", "harbour"]
    swap = {swap}
    for ext in ("txt", "vtt", "srt", "json"):
        try:
            text = open(f"{{base}}.{{ext}}").read()
        except FileNotFoundError:
            continue
        lines = [l if "-->" in l or l.startswith("WEBVTT") or l.strip().isdigit() else re.sub(r"[A-Za-z]+", swap, l)
                 for l in text.splitlines()]
        if ext == "json":  # keep the JSON valid: only the texts change
            import json
            doc = json.loads(text)
            for seg in doc.get("transcription", []):
                seg["text"] = re.sub(r"[A-Za-z]+", swap, seg["text"])
                seg.pop("tokens", None)
            lines = [json.dumps(doc)]
        open(f"{{base}}.{{ext}}", "w").write("\\n".join(lines) + "\\n")
    sys.exit(rc)
""")
GARBAGE = {"banana", "window", "seventeen", "purple", "engine", "quietly", "marble", "harbour"}


def _library(audio: Path, shared: Path, names: list[str]) -> None:
    for name in names:
        shutil.copy(shared / "audio" / "jfk.mp3", audio / f"{name}.mp3")


def _fleet(tmp_path: Path, url: str, model: Path, hosts: dict[str, Path]) -> list[subprocess.CompletedProcess]:
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "client.cli", "run", "--until-idle"],
            env=client_env(tmp_path, url, model, name, THREADS=1, WHISPER_CLI=cli, PREFETCH=0),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, cli in hosts.items()
    }
    out = []
    for name, p in procs.items():
        stdout, _ = p.communicate(timeout=600)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, f"--- {name}\n{stdout}"))
    return out


# Other words, as many: from a list of eight (the loop guard lets a short transcript through), or
# each word reversed (as many different words as the truth: a long one passes the loop guard too).
FEW_WORDS = "lambda m: words[len(m.group(0)) % len(words)]"
REVERSED = "lambda m: 'zz' + m.group(0)[::-1]"


def _liar(tmp_path: Path, swap: str = FEW_WORDS) -> Path:
    liar = tmp_path / "liar-whisper-cli"
    liar.write_text(LIAR.format(python=sys.executable, cli=WHISPER_CLI, swap=swap))
    liar.chmod(liar.stat().st_mode | stat.S_IEXEC)
    return liar


def _events(srv) -> list[dict]:
    return [json.loads(line) for line in (srv.root / "data" / "events.log").read_text().splitlines()]


def test_a_liar_among_honest_clients_leaves_no_garbage_and_trust_is_earned(
    shared, whisper_cli, server_process, tmp_path
):
    liar = _liar(tmp_path)
    model = shared / "models" / "ggml-tiny.en.bin"
    srv = server_process(VALIDATION="adaptive", TRUST_AFTER=2)
    _library(srv.root / "audio", shared, [f"talk-{i}" for i in range(4)])
    srv.start()

    runs = _fleet(tmp_path, srv.url, model, {"honest-a": WHISPER_CLI, "honest-b": WHISPER_CLI, "liar": liar})
    log = "\n".join(r.stdout for r in runs)
    assert all(r.returncode == 0 for r in runs), log
    results = srv.root / "data" / "results"
    texts = {p.name: p.read_text() for p in results.glob("talk-*.txt")}
    assert len(texts) == 4, log
    for name, text in texts.items():
        assert "fellow Americans" in text and not GARBAGE & set(text.lower().split()), (name, text)
    hosts = {h["name"]: h for h in requests.get(f"{srv.url}/api/v1/stats", timeout=10).json()["hosts"]}
    assert not hosts["liar"]["trusted"] and hosts["liar"]["valid_streak"] == 0, hosts["liar"]
    assert hosts["honest-a"]["trusted"] and hosts["honest-b"]["trusted"], hosts
    events = _events(srv)
    assert any(e["event"] == "granted" and e["client"] == "liar" for e in events), log  # it did lie
    assert hosts["liar"]["invalid_results"] >= 1 and hosts["liar"]["tasks_done"] == 0, hosts["liar"]
    assert {e["client"] for e in events if e["event"] == "result.invalid"} == {"liar"}
    assert not [e for e in events if e["event"] == "completed" and e["client"] == "liar"]
    assert not list((results / ".held").glob("*/*"))  # every vote settled: its held results removed

    # Honest, trusted hosts: one result in n (n: their confirmed run, 2 or more) is checked.
    _library(srv.root / "audio", shared, [f"more-{i}" for i in range(6)])
    assert srv.cli("scan").returncode == 0
    runs = _fleet(tmp_path, srv.url, model, {"honest-a": WHISPER_CLI, "honest-b": WHISPER_CLI})
    assert all(r.returncode == 0 for r in runs), "\n".join(r.stdout for r in runs)
    assert len(list(results.glob("more-*.txt"))) == 6
    events = _events(srv)
    done = [e for e in events if e["event"] == "completed" and e["task"] in _ids(srv, "more-")]
    held = [e for e in events if e["event"] == "result.pending" and e["task"] in _ids(srv, "more-")]
    assert len(done) == 6 and len(held) < 6, (done, held)  # some went unchecked: trusted


def test_spot_checks_with_real_whisper_outvote_a_liar_and_cost_their_range(
    shared, whisper_cli, server_process, tmp_path, report
):
    """CHECK_SECONDS=40: each check transcribes 40 s of a 62 s recording with real whisper-cli (the
    client cuts the range) and is compared with the held transcript there. A liar's whole result is
    outvoted by two honest checks and transcribed whole again; its checks are outvoted too."""
    model = shared / "models" / "ggml-tiny.en.bin"
    srv = server_process(VALIDATION="adaptive", CHECK_SECONDS=40)
    for i in range(3):
        shutil.copy(shared / "audio" / "millbrook.mp3", srv.root / "audio" / f"talk-{i}.mp3")
    srv.start()
    hosts = {"honest-a": WHISPER_CLI, "honest-b": WHISPER_CLI, "liar": _liar(tmp_path, REVERSED)}
    runs = _fleet(tmp_path, srv.url, model, hosts)
    log = "\n".join(r.stdout for r in runs)
    assert all(r.returncode == 0 for r in runs), log
    truth = (shared / "audio" / "millbrook.txt").read_text()
    for i in range(3):
        text = (srv.root / "data" / "results" / f"talk-{i}.txt").read_text()
        assert "zz" not in text and jiwer.wer(words(truth), words(text)) < 0.3, text
    events = _events(srv)
    spots = [e for e in events if e["event"] == "granted" and "spot" in e]
    last_start = duration(shared / "audio" / "millbrook.mp3") - 40 + 0.001  # the server's length, to the ms
    assert spots and all(round(e["spot"][1] - e["spot"][0], 3) == 40.0 for e in spots), spots
    assert all(0 <= e["spot"][0] <= last_start for e in spots), (spots, last_start)
    assert "spot check" in log  # the client says what it does
    metrics = requests.get(f"{srv.url}/metrics", timeout=10).text
    checked = float(re.search(r"^batch_stt_validation_audio_seconds (\S+)$", metrics, re.M).group(1))
    assert checked == pytest.approx(40.0 * len(spots), abs=0.01)  # each check cost its range, not 62 s
    lied = {e["task"] for e in events if e["event"] == "granted" and e["client"] == "liar" and "spot" not in e}
    requeued = {e["task"] for e in events if e["event"] == "requeued"}
    assert lied <= requeued, (lied, requeued)  # two ranges outvoted each whole garbage result
    liar = {h["name"]: h for h in requests.get(f"{srv.url}/api/v1/stats", timeout=10).json()["hosts"]}["liar"]
    assert liar["invalid_results"] >= 1 and liar["valid_streak"] == 0 and liar["tasks_done"] == 0, liar
    report(
        f"spot checks (CHECK_SECONDS=40, 3 x 62 s, tiny.en): {len(spots)} checks, {checked:.0f} s transcribed to"
        f" check {3 * 62} s; the liar outvoted {liar['invalid_results']} times, {len(lied)} whole result(s) redone"
    )


def _ids(srv, prefix: str) -> set[str]:
    tasks = requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()
    return {t["id"] for t in tasks if t["path"].startswith(prefix)}


def test_a_third_host_decides_on_postgresql(pg_url):
    """The same ledger steps on PostgreSQL: held results, the check pick (FOR UPDATE SKIP LOCKED), the vote,
    the report of checks no host seen may make."""
    ledger = make_ledger(pg_url, Clock(), validation=ValidationRule(ValidationMode.ADAPTIVE), scheduler="fifo")
    (tid,) = add_tasks(ledger, 1)
    shelf: dict = {}
    assert upload(ledger, "liar", "garbage", shelf)[1].held
    assert ledger.leases.claim("liar", capabilities=SMALL) is None
    assert [s.task_id for s in ledger.reports.stalled_checks()] == [tid]  # no host but its own seen yet
    assert upload(ledger, "b", "the words", shelf)[1].held
    _, done = upload(ledger, "c", "the words", shelf)
    assert done.verdict.outvoted == ("liar",) and ledger.reports.task(tid).state == TaskState.DONE
    assert ledger.reports.stalled_checks() == []
    liar = next(h for h in ledger.fleet.hosts() if h.name == "liar")
    assert (liar.invalid_results, liar.valid_streak) == (1, 0) and shelf[("kept", tid)] == "the words"
    ledger.db.dispose()


def test_two_spot_checks_send_a_liars_task_back_on_postgresql(pg_url):
    """The spot-check vote on PostgreSQL: the range chosen at the hold, both checks given it, the
    liar's whole result outvoted by two ranges and the task queued to be transcribed whole again."""
    from tests.unit.test_spot_checks import RANGE, send

    rule = ValidationRule(ValidationMode.ADAPTIVE, chance=lambda: 0.5)
    ledger = make_ledger(pg_url, Clock(), validation=rule, scheduler="fifo")
    (tid,) = add_tasks(ledger, 1)
    with ledger.db.writing() as c:
        c.connection.exec_driver_sql("UPDATE task SET duration_ms = 600000")
    shelf: dict = {}
    send(ledger, "liar", "garbage", shelf)
    first, _ = send(ledger, "b", "truth", shelf, spot=RANGE)
    second, decided = send(ledger, "c", "truth", shelf, spot=RANGE)
    assert first.spot == second.spot == RANGE and decided.verdict.redo
    assert ledger.reports.task(tid).state == TaskState.QUEUED and ("kept", tid) not in shelf
    again, _ = send(ledger, "b", "truth", shelf)
    assert again.task_id == tid and again.spot is None
    assert ledger.reports.stats().check_seconds == 120.0
    ledger.db.dispose()


def test_the_operator_is_told_of_a_result_only_its_own_host_could_check(shared, server_process, tmp_path):
    """The fleet's only multilingual host transcribes the French file; its English-only peer may not
    check it. `stt-server status`, the dashboard and /metrics say so until a second multilingual host
    comes and checks it; the notification waits 10 minutes (tests/unit/test_validation.py)."""
    copy_audio(shared, tmp_path / "audio", {"fr/discours.mp3": "jfk.mp3"})
    with Receiver() as hook:
        srv = server_process(VALIDATION="adaptive", WEBHOOK_URL=hook.url, LEASE_SECONDS=8).start()  # sweeps every 2 s
        multilingual = {"model": "ggml-small.bin", "backend": "cpu"}
        english_only = {"model": "ggml-small.en.bin", "backend": "cpu", "english_only": True}

        def lease(name: str, caps: dict) -> requests.Response:
            return requests.post(f"{srv.url}/api/v1/leases", json={"client": name, "capabilities": caps}, timeout=10)

        def stalled() -> tuple[str, str, float]:
            metrics = requests.get(f"{srv.url}/metrics", timeout=10).text
            (value,) = [float(line.split()[1]) for line in metrics.splitlines() if line.startswith("batch_stt_checks_")]
            return srv.cli("status").stdout, requests.get(f"{srv.url}/dashboard/live", timeout=10).text, value

        first = lease("multi", multilingual).json()
        meta = json.dumps({"model": "ggml-small.bin", "backend": "cpu"})
        done = requests.post(
            f"{srv.url}/api/v1/leases/{first['token']}/result", data={"meta": meta}, files={"txt": ("t", b"ask not\n")}
        )
        assert done.json()["status"] == "pending"
        assert lease("en-only", english_only).status_code == 204 and lease("multi", multilingual).status_code == 204
        status, page, value = stalled()
        assert "1 held result(s) wait for a check" in status and "fr/discours.mp3 (fr)" in status
        assert 'id="stalled-checks"' in page and value == 1
        time.sleep(4.5)  # two housekeeping sweeps have looked: held for seconds, not yet for 10 minutes
        assert hook.received == [] and "housekeeping failed" not in (tmp_path / "server.out").read_text()
        check = lease("multi-2", multilingual).json()  # a second multilingual host: it checks the result
        assert check["task_id"] == first["task_id"]
        status, page, value = stalled()
        assert "wait for a check" not in status and 'id="stalled-checks"' not in page and value == 0
