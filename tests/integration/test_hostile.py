"""Hostile and broken input against a real server process: it answers 4xx, stays up, keeps memory
bounded, and never reads or writes outside its folders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import psutil
import pytest
import requests

from tests.helpers import copy_audio, post_endless_multipart


@pytest.fixture
def live(shared, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3", "sub/millbrook.mp3": "millbrook.mp3"})
    return server_process(MAX_RESULT_BYTES=1_000_000).start()


def lease(srv, name="x"):
    return requests.post(f"{srv.url}/api/v1/leases", json={"client": name}).json()


def test_oversized_uploads_are_cut_off_with_bounded_memory(live, report):
    L = lease(live)
    proc = psutil.Process(live.proc.pid)
    before = proc.memory_info().rss

    assert post_endless_multipart(f"{live.url}/api/v1/leases/{L['token']}/result", "txt") in (413, None)
    big_json = json.dumps({"id": L["task_id"], "vtt": "x" * 5_000_000})
    assert (
        requests.post(f"{live.url}/result", data=big_json, headers={"Content-Type": "application/json"}).status_code
        == 413
    )
    grown = (proc.memory_info().rss - before) / 1e6
    report(f"hostile: server RSS grew by {grown:.1f} MB while refusing 205 MB of uploads")
    assert grown < 50
    assert requests.get(f"{live.url}/health/ready").ok
    assert requests.get(f"{live.url}/api/v1/tasks/{L['task_id']}").json()["state"] == "leased"


def test_slow_and_truncated_bodies_do_not_hurt(live):
    L = lease(live)
    for body in (b'--zz\r\nContent-Disposition: form-data; name="txt"; filename="t"\r\n\r\npartial', b""):
        s = socket.create_connection(("127.0.0.1", live.port))
        s.sendall(
            f"POST /api/v1/leases/{L['token']}/result HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n".encode()
            + body
        )
        time.sleep(0.5)  # a slow client...
        s.close()  # ...that gives up half-way
    r = requests.post(
        f"{live.url}/api/v1/leases/{L['token']}/result", data={"meta": "{}"}, files={"txt": ("t", "ok")}
    ).json()
    assert r["status"] == "accepted"  # the half-sent uploads changed nothing


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/%00",
        "/api/v1/tasks/..%2f..%2fetc%2fpasswd",
        "/api/v1/tasks/%2e%2e",
        "/api/v1/leases/..%2F..%2F..%2Fetc%2Fpasswd/audio",
        "/api/v1/leases/%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00/audio",
        "/api/v1/leases/" + "A" * 5000 + "/audio",
    ],
)
def test_path_tricks_in_urls(live, path):
    r = requests.get(live.url + path)
    assert 400 <= r.status_code < 500 and b"root:" not in r.content


def test_symlink_swapped_in_after_scan_is_not_served(live, tmp_path):
    secret = tmp_path / "secret.mp3"
    secret.write_bytes(b"TOP SECRET")
    L = lease(live)
    target = tmp_path / "audio" / L["path"]
    target.unlink()
    os.symlink(secret, target)
    r = requests.get(live.url + L["audio_url"])
    assert r.status_code == 410 and b"SECRET" not in r.content


def test_file_replaced_while_leased_is_handed_back(live, tmp_path):
    L = lease(live)
    target = tmp_path / "audio" / L["path"]
    target.write_bytes(target.read_bytes()[: L["size"] // 2])  # different content, same name
    r = requests.get(live.url + L["audio_url"])
    assert r.status_code == 409 and "changed" in r.json()["detail"]
    for _ in range(50):  # back in the queue once the new content is probed (at once, in the background)
        r = requests.post(f"{live.url}/api/v1/leases", json={"client": "x"})
        if r.status_code == 200 and (again := r.json())["task_id"] == L["task_id"]:
            break
        time.sleep(0.1)
    assert again["task_id"] == L["task_id"] and again["size"] == L["size"] // 2 and again["attempt"] == 1
    assert requests.get(live.url + again["audio_url"]).content == target.read_bytes()


def test_zero_byte_file_fails_at_once(shared, server_process, tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "empty.mp3").write_bytes(b"")
    srv = server_process().start()
    assert requests.post(f"{srv.url}/api/v1/leases", json={"client": "x"}).status_code == 204
    [t] = requests.get(f"{srv.url}/api/v1/tasks", params={"state": "failed"}).json()
    assert t["last_error"] == "empty file (0 bytes)"


def test_invalid_utf8_and_garbage_json(live):
    L = lease(live)
    url = f"{live.url}/api/v1/leases/{L['token']}/result"
    assert requests.post(url, data={"meta": "{}"}, files={"vtt": ("v", b"WEBVTT\n\xc3\x28")}).status_code == 422
    for raw in (b"\x00\x01\x02", b'{"id": "' + b"a" * 100 + b'"', b"[]" * 1000, b'{"id": {"$gt": ""}, "vtt": 1}'):
        r = requests.post(f"{live.url}/result", data=raw, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500
    assert requests.get(f"{live.url}/api/v1/tasks/{L['task_id']}").json()["state"] == "leased"


@pytest.mark.slow
def test_silence_is_transcribed_as_blank(shared, whisper_cli, tmp_path):
    silent = tmp_path / "silence.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=16000:cl=mono",
            "-t",
            "8",
            str(silent),
        ],
        check=True,
    )
    env = {
        **os.environ,
        "WHISPER_CLI": str(whisper_cli),
        "WHISPER_MODEL": str(shared / "models/ggml-tiny.en.bin"),
        "THREADS": "2",
    }
    r = subprocess.run(
        [sys.executable, "-m", "client.cli", "transcribe", str(silent), "--out", str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "out/silence.txt").read_text().strip() == "[BLANK_AUDIO]"
