"""HTTP behaviour in-process (TestClient): the v1 flow, and client mistakes that must be 4xx, never 500."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.helpers import copy_audio

VTT = (
    "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\n And so my fellow Americans,\n\n"
    "00:00:02.000 --> 00:00:04.000\n ask not.\n"
)


def lease(client, name="box", **caps):
    r = client.post("/api/v1/leases", json={"client": name, "capabilities": caps})
    return r.json() if r.status_code == 200 else r.status_code


def test_v1_full_cycle(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"talks/jfk.mp3": "jfk.mp3"})
    c = api()
    for _ in range(100):  # checksums are computed in the background after start
        if c.get("/api/v1/tasks").json()[0]["sha256"]:
            break
        time.sleep(0.05)
    started = time.monotonic()
    L = lease(c, backend="cpu", model="ggml-tiny.en.bin", threads=2, rtf=11.0)
    raw = (shared / "audio/jfk.mp3").read_bytes()
    assert L["size"] == len(raw) and L["language"] == "auto" and len(L["sha256"]) == 64
    part = c.get(L["audio_url"], headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == raw[1000:]
    assert c.post(f"/api/v1/leases/{L['token']}/heartbeat", json={"progress": 145}).status_code == 200
    files = {"txt": ("t", b"ask not\n"), "vtt": ("v", VTT.encode()), "srt": ("s", b"1\n"), "json": ("j", b"{}")}
    # The client claims 11 s in 0.1 ms, 110,000x real time, to look like the fleet's fastest.
    meta = {"model": "ggml-tiny.en.bin", "backend": "cpu", "audio_seconds": 11.0, "processing_seconds": 0.0001}
    r = c.post(f"/api/v1/leases/{L['token']}/result", data={"meta": json.dumps(meta)}, files=files)
    elapsed = time.monotonic() - started
    assert r.json() == {"task_id": L["task_id"], "status": "accepted", "late": False}
    out = tmp_path / "data/results/talks"
    assert sorted(p.name for p in out.iterdir()) == ["jfk.json", "jfk.meta.json", "jfk.srt", "jfk.txt", "jfk.vtt"]
    assert json.loads((out / "jfk.meta.json").read_text())["backend"] == "cpu"
    again = c.post(f"/api/v1/leases/{L['token']}/result", data={"meta": json.dumps(meta)}, files=files)
    assert again.json()["status"] == "duplicate"
    assert c.get(f"/api/v1/tasks/{L['task_id']}").json()["audio_seconds"] == 11.0
    stats = c.get("/api/v1/stats").json()
    assert stats["counts"]["done"] == 1 and stats["scheduler"] == "speed" and stats["replicas"] == 0
    # The speed the server measured (the file's 11 s over its own clock from grant to result, which
    # took over a millisecond: an audio request, a heartbeat and an upload), beside the benchmark.
    [host] = stats["hosts"]
    assert (host["name"], host["bench_rtf"], host["backend"]) == ("box", 11.0, "cpu")
    assert 10.9 / elapsed <= host["speed"] < 11_000


def test_a_transcript_with_nothing_heard_is_a_result(shared, api, tmp_path):
    """What whisper-cli writes for a tone: no segment at all. Stored as it is, the task done."""
    copy_audio(shared, tmp_path / "audio", {"tone.mp3": "jfk.mp3"})
    c = api()
    L = lease(c, backend="cpu", model="ggml-tiny.en.bin")
    files = {"txt": ("t", b""), "vtt": ("v", b"WEBVTT\n\n"), "srt": ("s", b""), "json": ("j", b'{"transcription": []}')}
    r = c.post(f"/api/v1/leases/{L['token']}/result", data={"meta": '{"model": "ggml-tiny.en.bin"}'}, files=files)
    assert r.json() == {"task_id": L["task_id"], "status": "accepted", "late": False}
    out = tmp_path / "data/results"
    assert (out / "tone.txt").read_bytes() == b"" and (out / "tone.vtt").read_bytes() == b"WEBVTT\n\n"
    assert c.get(f"/api/v1/tasks/{L['task_id']}").json()["state"] == "done"


def test_v1_error_report_and_lost_lease(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"bad.mp3": "corrupt-garbage.mp3"})
    c = api(MAX_ATTEMPTS=1)
    L = lease(c)
    r = c.post(
        f"/api/v1/leases/{L['token']}/error",
        json={"message": "whisper-cli could not read the audio", "stderr_tail": "error: failed to read audio file"},
    )
    assert r.json()["task_state"] == "failed"
    assert c.post(f"/api/v1/leases/{L['token']}/heartbeat", json={}).status_code == 409
    wrong = c.post(f"/api/v1/leases/{'x' * 32}/result", data={"meta": "{}"}, files={"txt": ("t", b"whose?\n")})
    assert wrong.status_code == 404
    assert "failed to read audio" in c.get("/api/v1/tasks", params={"state": "failed"}).json()[0]["last_error"]


def test_english_only_clients_get_only_en_or_auto(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"es/tren.mp3": "tren-es.mp3", "en/jfk.mp3": "jfk.mp3"})
    c = api()
    assert lease(c, "en-box", english_only=True)["language"] == "en"
    assert lease(c, "en-box", english_only=True) == 204
    assert lease(c, "multi", languages=["es"])["language"] == "es"


def test_file_deleted_while_leased(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"gone.mp3": "jfk.mp3"})
    c = api()
    L = lease(c)
    (tmp_path / "audio/gone.mp3").unlink()
    assert c.get(L["audio_url"]).status_code == 410
    assert c.get(f"/api/v1/tasks/{L['task_id']}").json()["state"] == "missing"


JSON = {"headers": {"Content-Type": "application/json"}}
BAD_REQUESTS = [
    ("post", "/result", {"content": b"{not json"}),
    ("post", "/result", {"json": {"id": "zzzzzzzzzzzzzzzz", "vtt": "x"}}),
    ("post", "/result", {"json": {"vtt": "x"}}),
    ("post", "/result", {"json": [1, 2]}),
    ("post", "/error", {"json": {"id": None}}),
    ("post", "/error", {"json": {"id": "../../etc/passwd"}}),
    ("post", "/api/v1/leases", {"content": b"\xff\xfe"}),
    ("post", "/api/v1/leases", {"json": {"client": "../evil"}}),
    ("post", "/api/v1/leases", {"json": {"client": "a", "capabilities": {"threads": -1}}}),
    ("post", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/heartbeat", {"json": {}}),
    ("post", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/error", {"json": {"message": "x"}}),
    ("post", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/result", {"files": {"txt": ("t", b"x")}}),
    ("post", "/api/v1/leases/..%2F..%2Fetc/result", {"files": {"txt": ("t", b"x")}}),
    ("get", "/api/v1/leases/%2e%2e%2f%2e%2e%2fpasswd/audio", {}),
    ("get", "/api/v1/tasks/..%2F..%2Fetc%2Fpasswd", {}),
    ("get", "/api/v1/tasks", {"params": {"state": "bogus"}}),
    ("get", "/api/v1/tasks", {"params": {"limit": "99999999999999999999"}}),
    ("post", "/api/v1/admin/requeue", {"json": {"failed": True}}),
    # Out-of-range numbers: JSON has no infinity, so echoing 1e309 back once broke the 422 (a 500).
    ("post", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/heartbeat", {"content": b'{"progress": 1e309}', **JSON}),
    ("post", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/heartbeat", {"content": b'{"progress": -1e309}', **JSON}),
    ("post", "/api/v1/leases", {"content": b'{"client": "a", "capabilities": {"rtf": 1e999}}', **JSON}),
    ("post", "/api/v1/leases", {"content": b'{"client": "a", "capabilities": {"threads": 1e309}}', **JSON}),
    ("get", "/api/v1/tasks", {"params": {"offset": "1e309"}}),
]


@pytest.mark.parametrize("method,path,kwargs", BAD_REQUESTS, ids=[f"{m} {p}" for m, p, _ in BAD_REQUESTS])
def test_client_mistakes_are_4xx(api, method, path, kwargs):
    r = getattr(api(), method)(path, **kwargs)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.json()["detail"]


def test_bad_results_on_a_real_lease(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    c = api(MAX_RESULT_BYTES=4096)
    L = lease(c)
    url = f"/api/v1/leases/{L['token']}/result"
    cases = [
        ({"files": {"txt": ("t", b"\xff\xfe invalid utf-8")}, "data": {"meta": "{}"}}, 422),
        ({"files": {"json": ("j", b"{broken")}, "data": {"meta": "{}"}}, 422),
        ({"files": {"txt": ("t", b"x"), "json": ("j", b"[1]")}, "data": {"meta": "{}"}}, 422),  # not an object
        ({"files": {"srt": ("s", b"1\n")}, "data": {"meta": "{}"}}, 422),  # no txt or vtt
        ({"files": {"txt": ("t", b"x")}}, 422),  # no meta
        ({"files": {"txt": ("t", b"x")}, "data": {"meta": "{nope"}}, 422),
        ({"files": {"txt": ("t", b"x")}, "data": {"meta": '{"audio_seconds": 1e309}'}}, 422),
        ({"files": {"txt": ("t", b"x" * 10_000_000)}}, 413),
        (
            {
                "content": b'--x\r\nContent-Disposition: form-data; name="txt"; filename="t"\r\n\r\nabc',
                "headers": {"Content-Type": "multipart/form-data; boundary=x"},
            },
            422,
        ),  # truncated: no complete part
    ]
    for kwargs, status in cases:
        r = c.post(url, **kwargs)
        assert r.status_code == status, (kwargs.keys(), r.status_code, r.text)
    assert c.get(f"/api/v1/tasks/{L['task_id']}").json()["state"] == "leased"  # nothing was lost
    assert c.post(url, data={"meta": "{}"}, files={"txt": ("t", b"fine")}).json()["status"] == "accepted"


def test_openapi_describes_everything(api):
    paths = api().get("/openapi.json").json()["paths"]
    for p in [
        "/task",
        "/result",
        "/error",
        "/api/v1/leases",
        "/api/v1/leases/{token}/audio",
        "/api/v1/leases/{token}/heartbeat",
        "/api/v1/leases/{token}/result",
        "/api/v1/leases/{token}/error",
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/stats",
        "/health",
        "/health/ready",
    ]:
        assert p in paths, p


def test_health(api):
    c = api()
    assert c.get("/health").json() == {"status": "ok"}
    assert c.get("/health/ready").json() == {"status": "ready"}


def test_state_changing_requests_from_another_site_are_refused(api):
    c = api()
    body = {"client": "box", "capabilities": {}}
    # What a page elsewhere makes a browser send (with the operator's basic-auth credentials).
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        r = c.post("/api/v1/leases", json=body, headers=headers)
        assert r.status_code == 403 and "cross-site request refused" in r.json()["detail"], (headers, r.text)
        assert c.post("/api/v1/admin/scan", headers=headers).status_code == 403
        assert c.post("/dashboard/requeue/abc", headers=headers).status_code == 403
        assert c.post("/v1/audio/transcriptions", files={"file": ("a.mp3", b"x")}, headers=headers).status_code == 403
    # This server's own pages, a browser's address bar, and clients that are not browsers pass.
    for headers in ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        assert c.post("/api/v1/leases", json=body, headers=headers).status_code in (200, 204), headers
    assert c.get("/api/v1/stats", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reading is not writing


def test_the_dashboards_forms_carry_the_sessions_token(api):
    """Besides the origin check: a requeue form must carry the token of the session that rendered it."""
    c = api(ADMIN_TOKENS="admin-token-0123456789")
    auth = {"Authorization": "Bearer admin-token-0123456789"}
    page = c.get("/", headers=auth)
    token = page.cookies.get("stt_form")
    assert token and "samesite=strict" in page.headers["set-cookie"].lower()
    c.cookies.clear()
    refused = c.post("/dashboard/requeue/abc", data={"form_token": token}, headers=auth)  # no cookie
    assert refused.status_code == 403 and "not from this session" in refused.json()["detail"]
    c.cookies.set("stt_form", token)
    forged = c.post("/dashboard/requeue/abc", data={"form_token": "guess"}, headers=auth)
    assert forged.status_code == 403
    ok = c.post("/dashboard/requeue/abc", data={"form_token": token}, headers=auth, follow_redirects=False)
    assert ok.status_code == 404  # past both checks: there is no task abc


def test_a_job_whose_callback_would_reach_a_private_address_is_refused(api):
    c = api()
    for url in ("http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]:80/"):
        r = c.post("/api/v1/jobs", files={"file": ("a.mp3", b"ID3 not audio")}, data={"callback_url": url})
        assert r.status_code == 422 and "private, loopback or reserved" in r.json()["detail"], r.text
    for url, why in (
        ("http://93.184.216.34:0/hook", "port 0"),
        ("http://93.184.216.34:70000/hook", "not a valid URL"),
        ("http://93.184.216.34/a\x01b", "control characters"),
        ("gopher://93.184.216.34/", "http:// or https://"),
    ):
        r = c.post("/api/v1/jobs", files={"file": ("a.mp3", b"ID3 not audio")}, data={"callback_url": url})
        assert r.status_code == 422 and why in r.json()["detail"], (url, r.text)
    assert c.get("/api/v1/jobs").json() == []  # nothing was stored


def test_a_client_that_hangs_up_mid_upload_gets_a_quiet_4xx(api):
    """A daemon killed while its result streams in: the app answers (to nobody) instead of raising,
    so the server logs no traceback; nothing is kept."""
    app = api().app
    boundary = b"cut"
    first = b'--cut\r\nContent-Disposition: form-data; name="txt"; filename="t"\r\n\r\nhalf a transcr'
    messages = [{"type": "http.request", "body": first, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    path = "/api/v1/leases/" + "a" * 24 + "/result"
    headers = [(b"host", b"testserver"), (b"content-type", b"multipart/form-data; boundary=" + boundary)]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
