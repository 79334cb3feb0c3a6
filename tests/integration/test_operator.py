"""What the operator sees and hears: /metrics (parsed by prometheus-client's own parser, also with
WORKERS=2), and notifications from a running server to a local receiver."""

from __future__ import annotations

import hashlib
import hmac
import http.client

import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import copy_audio
from tests.receiver import Receiver


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_in_prometheus_format(api, shared, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"a.mp3": "jfk.mp3", "b.mp3": "jfk.mp3", "c.mp3": "jfk.mp3"})
    c = api(MAX_ATTEMPTS=1)
    ids = [c.get("/task").headers["X-Task-ID"] for _ in range(3)]
    assert c.post("/result", json={"id": ids[0], "vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"}).status_code == 200
    assert c.post("/result", json={"id": ids[0], "vtt": "WEBVTT\n"}).status_code == 200  # a duplicate
    assert c.post("/error", json={"id": ids[1], "error": "ffmpeg: invalid data"}).status_code == 200
    ask = {"client": "v1-host", "capabilities": {"backend": "cpu", "model": "ggml-base.bin"}}
    assert [c.post("/api/v1/leases", json=ask).status_code for _ in range(2)] == [204, 204]  # all three are out
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    assert m[("batch_stt_tasks", (("state", "done"),))] == 1
    assert m[("batch_stt_tasks", (("state", "failed"),))] == 1
    assert m[("batch_stt_tasks", (("state", "leased"),))] == 1
    assert m[("batch_stt_leases_granted_total", (("protocol", "legacy"),))] == 3
    assert m[("batch_stt_results_total", (("outcome", "accepted"),))] == 1
    assert m[("batch_stt_results_total", (("outcome", "duplicate"),))] == 1
    assert m[("batch_stt_errors_total", (("kind", "legacy"),))] == 1
    assert m[("batch_stt_tasks_failed_total", ())] == 1
    # jfk.mp3 once: 11.0 s from its LAME header (encoder delay and padding left out), 11.09 by ffprobe
    assert 10.9 < m[("batch_stt_audio_transcribed_seconds_total", ())] < 11.2
    assert m[("batch_stt_audio_seconds", (("state", "leased"),))] > 10  # jfk.mp3, probed: 11 s
    get_task = (("le", "+Inf"), ("method", "GET"), ("route", "/task"))
    assert m[("batch_stt_request_seconds_bucket", get_task)] == 3
    # The daemon's routes sit on the app itself (server/app.py): still timed under their template.
    lease = (("le", "+Inf"), ("method", "POST"), ("route", "/api/v1/leases"))
    assert m[("batch_stt_request_seconds_bucket", lease)] == 2


def test_metrics_add_up_across_workers(shared, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {f"{n}.mp3": "jfk.mp3" for n in range(8)})
    srv = server_process(WORKERS=2).start()
    for _ in range(8):
        assert requests.get(f"{srv.url}/task", timeout=10).status_code == 200
    workers = psutil.Process(srv.proc.pid).children(recursive=True)
    assert len(workers) >= 2
    served_by: set[int] = set()
    for _ in range(60):  # fresh connections until each worker has answered: each reports all eight grants
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/metrics")
        m = samples(conn.getresponse().read().decode())
        mine = conn.sock.getsockname()[1]  # still open: the worker that answered holds its other end
        served_by |= {w.pid for w in workers if any(c.raddr and c.raddr.port == mine for c in w.net_connections())}
        conn.close()
        assert m[("batch_stt_leases_granted_total", (("protocol", "legacy"),))] == 8
        assert m[("batch_stt_tasks", (("state", "leased"),))] == 8
        if len(served_by) == 2:
            break
    assert len(served_by) == 2, "one worker answered every scrape: the sums across workers were never shown"


def test_operator_hears_of_failures_and_the_end_of_the_batch(shared, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"good.mp3": "jfk.mp3", "bad.mp3": "jfk.mp3"})
    with Receiver() as hook:
        srv = server_process(MAX_ATTEMPTS=1, WEBHOOK_URL=hook.url, WEBHOOK_SECRET="k" * 20).start()
        tasks = {requests.get(f"{srv.url}/task", timeout=10).headers["X-Task-ID"] for _ in range(2)}
        by_path = {t["id"]: t["path"] for t in requests.get(f"{srv.url}/api/v1/tasks", timeout=10).json()}
        bad = next(t for t in tasks if by_path[t] == "bad.mp3")
        good = next(t for t in tasks if by_path[t] == "good.mp3")
        requests.post(f"{srv.url}/error", json={"id": bad, "error": "Header missing"}, timeout=10)
        requests.post(f"{srv.url}/result", json={"id": good, "vtt": "WEBVTT\n"}, timeout=10)
        received = hook.wait_for(2)
    events = {r.json()["event"]: r for r in received}
    assert set(events) == {"task.failed", "queue.empty"}
    failed = events["task.failed"].json()
    assert (failed["path"], failed["error"], failed["attempts"]) == ("bad.mp3", "Header missing", 1)
    assert events["queue.empty"].json()["files_done"] == 1
    for r in received:
        assert r.headers["X-Batch-STT-Signature"] == "sha256=" + hmac.new(b"k" * 20, r.body, hashlib.sha256).hexdigest()


def test_a_receiver_that_hangs_does_not_hold_up_leasing(shared, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {f"{n}.mp3": "jfk.mp3" for n in range(4)})
    with Receiver() as hook:
        hook.gate.clear()  # takes each notification in and never answers
        srv = server_process(MAX_ATTEMPTS=1, WEBHOOK_URL=hook.url).start()
        first = requests.get(f"{srv.url}/task", timeout=10).headers["X-Task-ID"]
        requests.post(f"{srv.url}/error", json={"id": first, "error": "bad"}, timeout=10)
        assert len(hook.wait_for(1)) == 1  # the server is stuck sending it...
        for _ in range(3):  # ...while leases and results go on as usual
            task_id = requests.get(f"{srv.url}/task", timeout=5).headers["X-Task-ID"]
            assert requests.post(f"{srv.url}/result", json={"id": task_id, "vtt": "WEBVTT\n"}, timeout=5).ok
        assert len(list((tmp_path / "data" / "notifications").glob("*.json"))) >= 1  # kept until delivered
