"""A SIGKILL during writes loses nothing the server acknowledged (SQLite WAL, synchronous=FULL,
results written with fsync and rename before the commit)."""

from __future__ import annotations

import json
import threading
import time

import requests


def test_sigkill_loses_nothing_acknowledged(tmp_path, server_process, report):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(3000):
        (audio / f"f{i:04}.mp3").write_bytes(b"ID3" + i.to_bytes(2, "big") * 50)
    srv = server_process(LEASE_SECONDS=600).start(timeout=60)
    acked: list[str] = []
    stop = threading.Event()

    def worker(n: int):
        s = requests.Session()
        while not stop.is_set():
            try:
                L = s.post(f"{srv.url}/api/v1/leases", json={"client": f"w{n}"}, timeout=5).json()
                r = s.post(
                    f"{srv.url}/api/v1/leases/{L['token']}/result",
                    data={"meta": json.dumps({"model": "k"})},
                    files={"txt": ("t", f"text of {L['task_id']}\n")},
                    timeout=5,
                )
                if r.status_code == 200:
                    acked.append(L["task_id"])
            except (requests.RequestException, ValueError, KeyError):
                return  # the server is gone

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    srv.kill()  # SIGKILL in the middle of commits and result writes
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 50, "the load did not get going"

    srv.start()
    tasks = {t["id"]: t for t in requests.get(f"{srv.url}/api/v1/tasks", params={"limit": 10000}).json()}
    assert len(tasks) == 3000
    for task_id in acked:
        t = tasks[task_id]
        assert t["state"] == "done", t
        stem = tmp_path / "data" / "results" / t["path"].rsplit(".", 1)[0]
        assert stem.with_suffix(".txt").read_text() == f"text of {task_id}\n"
        assert json.loads(stem.with_suffix(".meta.json").read_text())["task_id"] == task_id
    # Whatever was in flight is either done or still leased (to expire and be re-issued): none vanished.
    assert {t["state"] for t in tasks.values()} <= {"done", "leased", "queued"}
    # Files a batch staged and the kill left unbooked were removed at start.
    assert not list((tmp_path / "data" / "staged").iterdir())
    report(f"durability: {len(acked)} acknowledged results, all present after SIGKILL and restart")
