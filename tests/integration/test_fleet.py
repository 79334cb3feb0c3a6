"""The scheduler with real servers: a tail replica beats a slow real client, which stops on its 409;
two servers on one PostgreSQL never grant a task twice, except as an intended replica."""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.helpers import copy_audio, start_transcribing

pytestmark = pytest.mark.slow
VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{}\n"


def result(url: str, token: str, words: str, name: str) -> requests.Response:
    meta = {"model": "ggml-tiny.en.bin", "backend": "cpu", "audio_seconds": 11.0, "processing_seconds": 0.1}
    files = {"vtt": ("v.vtt", VTT.format(words).encode()), "txt": ("t.txt", f"{words}\n".encode())}
    return requests.post(
        f"{url}/api/v1/leases/{token}/result", data={"meta": json.dumps({**meta, "by": name})}, files=files
    )


def test_a_replica_wins_and_the_slow_holder_stops_on_its_409(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"millbrook.mp3": "millbrook.mp3"})
    srv = server_process(LEASE_SECONDS=6, REPLICA_BUDGET=1).start()  # heartbeats every 1.5 s
    model = shared / "models/ggml-tiny.en.bin"
    work = tmp_path / "work-slow"
    work.mkdir()
    # The holder's own benchmark says it is slow (as `stt-client bench` would have saved it).
    (work / "bench.json").write_text(json.dumps({"model": model.name, "rtf": 0.2}))
    holder = start_transcribing(tmp_path, srv.url, model, "slow", "--once")
    caps = {"backend": "cuda", "model": model.name, "rtf": 50.0}
    copy = requests.post(f"{srv.url}/api/v1/leases", json={"client": "gpu", "capabilities": caps}).json()
    assert copy["replica"] is True
    again = requests.post(f"{srv.url}/api/v1/leases", json={"client": "gpu2", "capabilities": caps})
    assert again.status_code == 204  # one extra copy at most
    assert result(srv.url, copy["token"], "the replica was first", "gpu").json()["status"] == "accepted"
    out, _ = holder.communicate(timeout=60)
    assert holder.returncode == 0, out
    assert "taken back by the server; dropped" in out  # its next heartbeat said 409: whisper-cli stopped
    assert (tmp_path / "data/results/millbrook.txt").read_text() == "the replica was first\n"
    assert json.loads((tmp_path / "data/results/millbrook.meta.json").read_text())["by"] == "gpu"
    stats = requests.get(f"{srv.url}/api/v1/stats").json()
    assert (stats["replicas"], stats["replicas_won"], stats["counts"]["done"]) == (1, 1, 1)


def test_two_servers_on_one_postgresql_grant_each_task_once_plus_intended_replicas(
    shared, server_process, pg_url, tmp_path
):
    copy_audio(shared, tmp_path / "audio", {f"talk-{i:02}.mp3": "jfk.mp3" for i in range(40)})
    options = {"DATABASE_URL": pg_url, "REPLICA_BUDGET": 1, "SPLIT_SECONDS": 0}
    servers = [server_process(**options).start(), server_process(**options).start()]
    deadline = time.time() + 60
    while any(t["duration_ms"] is None for t in requests.get(f"{servers[0].url}/api/v1/tasks").json()):
        assert time.time() < deadline
        time.sleep(0.1)

    def host(name: str, rtf: float, pause: float) -> None:
        rng = random.Random(name)
        session = requests.Session()
        while True:
            url = servers[rng.randrange(2)].url
            r = session.post(f"{url}/api/v1/leases", json={"client": name, "capabilities": {"rtf": rtf}})
            if r.status_code == 204:
                counts = session.get(f"{url}/api/v1/stats").json()["counts"]
                if counts["queued"] + counts["leased"] == 0:
                    return
                time.sleep(0.05)
                continue
            time.sleep(pause)
            result(url, r.json()["token"], name, name)

    # The slow hosts start first (the fleet is theirs alone until the fast ones show up), so they
    # hold tasks at the end that the fast ones can then copy.
    slow = [threading.Thread(target=host, args=(f"slow{i}", 0.3, 2.0)) for i in range(2)]
    fast = [threading.Thread(target=host, args=(f"fast{i}", 100.0, 0.0)) for i in range(6)]
    for t in slow:
        t.start()
    while requests.get(f"{servers[0].url}/api/v1/stats").json()["active_leases"] < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    for t in fast:
        t.start()
    for t in slow + fast:
        t.join(120)
    engine = create_engine(pg_url)
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT t.id, t.state, t.replicas, sum(CASE WHEN a.replica THEN 0 ELSE 1 END),"
                " sum(CASE WHEN a.replica THEN 1 ELSE 0 END) FROM task t JOIN attempt a ON a.task_id = t.id"
                " GROUP BY t.id, t.state, t.replicas"
            )
        ).all()
    engine.dispose()
    assert len(rows) == 40 and all(state == "done" for _, state, *_ in rows)
    assert all(firsts == 1 for *_, firsts, _ in rows), rows  # nobody was granted a task another held
    assert all(replicas == copies <= 1 for _, _, replicas, _, copies in rows), rows
    assert sum(copies for *_, copies in rows) >= 1  # the slow hosts' tasks were replicated at the end
