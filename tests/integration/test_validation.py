"""Validation on the real fleet: real stt-client daemons with real whisper-cli, one of them lying (a
modified client whose transcripts are plausible garbage: other words, same length). No garbage
reaches RESULTS_DIR, the liar is shown untrusted, and honest hosts, once trusted, are checked only
now and then."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

from server.ledger import TaskState, ValidationMode, ValidationRule
from tests.helpers import WHISPER_CLI, Clock, add_tasks, client_env, make_ledger
from tests.unit.test_validation import SMALL, upload

# A modified client: the real whisper-cli, then each word of its outputs swapped for another one.
LIAR = textwrap.dedent("""\
    #!{python}
    import re, subprocess, sys
    args = sys.argv[1:]
    rc = subprocess.run(["{cli}", *args]).returncode
    base = args[args.index("-of") + 1]
    words = ["banana", "window", "seventeen", "purple", "engine", "quietly", "marble", "harbour"]
    swap = lambda m: words[len(m.group(0)) % len(words)]
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


def test_a_liar_among_honest_clients_leaves_no_garbage_and_trust_is_earned(
    shared, whisper_cli, server_process, tmp_path
):
    liar = tmp_path / "liar-whisper-cli"
    liar.write_text(LIAR.format(python=sys.executable, cli=WHISPER_CLI))
    liar.chmod(liar.stat().st_mode | stat.S_IEXEC)
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
    events = [json.loads(line) for line in (srv.root / "data" / "events.log").read_text().splitlines()]
    assert any(e["event"] == "granted" and e["client"] == "liar" for e in events), log  # it did lie
    assert hosts["liar"]["invalid_results"] >= 1 and hosts["liar"]["tasks_done"] == 0, hosts["liar"]
    assert {e["client"] for e in events if e["event"] == "result.invalid"} == {"liar"}
    assert not [e for e in events if e["event"] == "completed" and e["client"] == "liar"]

    # Honest, trusted hosts: one result in n (n: their confirmed run, 2 or more) is checked.
    _library(srv.root / "audio", shared, [f"more-{i}" for i in range(6)])
    assert srv.cli("scan").returncode == 0
    runs = _fleet(tmp_path, srv.url, model, {"honest-a": WHISPER_CLI, "honest-b": WHISPER_CLI})
    assert all(r.returncode == 0 for r in runs), "\n".join(r.stdout for r in runs)
    assert len(list(results.glob("more-*.txt"))) == 6
    events = [json.loads(line) for line in (srv.root / "data" / "events.log").read_text().splitlines()]
    done = [e for e in events if e["event"] == "completed" and e["task"] in _ids(srv, "more-")]
    held = [e for e in events if e["event"] == "result.pending" and e["task"] in _ids(srv, "more-")]
    assert len(done) == 6 and len(held) < 6, (done, held)  # some went unchecked: trusted


def _ids(srv, prefix: str) -> set[str]:
    tasks = requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()
    return {t["id"] for t in tasks if t["path"].startswith(prefix)}


def test_a_third_host_decides_on_postgresql(pg_url):
    """The same ledger steps on PostgreSQL: held results, the check pick (FOR UPDATE SKIP LOCKED), the vote."""
    ledger = make_ledger(pg_url, Clock(), validation=ValidationRule(ValidationMode.ADAPTIVE), scheduler="fifo")
    (tid,) = add_tasks(ledger, 1)
    shelf: dict = {}
    assert upload(ledger, "liar", "garbage", shelf)[1].held
    assert ledger.leases.claim("liar", capabilities=SMALL) is None
    assert upload(ledger, "b", "the words", shelf)[1].held
    _, done = upload(ledger, "c", "the words", shelf)
    assert done.verdict.outvoted == ("liar",) and ledger.reports.task(tid).state == TaskState.DONE
    liar = next(h for h in ledger.fleet.hosts() if h.name == "liar")
    assert (liar.invalid_results, liar.valid_streak) == (1, 0) and shelf[("kept", tid)] == "the words"
    ledger.db.dispose()
