"""Nobody uploads without credentials: behind a real Caddy, and with the built-in auth."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time

import pytest
import requests

from server.auth import hash_password
from tests.helpers import REPO, client_env, copy_audio, free_port, run_client

TOKEN = "box1-token-0123456789"
ADMIN = "admin-token-0123456789"
PROTECTED = [
    ("get", "/task"),
    ("post", "/result"),
    ("post", "/error"),
    ("post", "/api/v1/leases"),
    ("get", "/api/v1/tasks"),
    ("get", "/api/v1/stats"),
    ("post", "/api/v1/admin/requeue"),
    ("post", "/api/v1/admin/hosts/box/clear-cooldown"),
    ("get", "/api/v1/leases/AAAAAAAAAAAAAAAAAAAAAAAA/audio"),
]


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_builtin_tokens_and_users(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    users = tmp_path / "users"
    users.write_text(f"# volunteers\nann:{hash_password('s3cret')}\nboss:{hash_password('b0ss')}:admin\n")
    c = api(AUTH_TOKENS=f"box1:{TOKEN}", ADMIN_TOKENS=ADMIN, AUTH_USERS_FILE=users)
    for method, path in PROTECTED:
        r = getattr(c, method)(path)
        assert r.status_code == 401, (path, r.status_code)
        assert r.headers["WWW-Authenticate"].startswith("Basic")
    for bad in (
        {"Authorization": "Bearer wrong-token-0123456789"},
        basic("ann", "nope"),
        basic("eve", "s3cret"),
        {"Authorization": "Basic !!notbase64"},
        {"Authorization": "Digest x"},
    ):
        assert c.get("/api/v1/stats", headers=bad).status_code == 401
    assert c.get("/health").status_code == 200 and c.get("/health/ready").status_code == 200

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    lease = c.post("/api/v1/leases", json={"client": "box1"}, headers=bearer).json()
    assert c.get(lease["audio_url"], headers=basic("ann", "s3cret")).status_code == 200
    assert c.post("/api/v1/admin/requeue", json={"failed": True}, headers=bearer).status_code == 403
    assert c.post("/api/v1/admin/requeue", json={"failed": True}, headers=basic("ann", "s3cret")).status_code == 403
    assert c.post(
        "/api/v1/admin/requeue", json={"failed": True}, headers={"Authorization": f"Bearer {ADMIN}"}
    ).json() == {"requeued": []}
    assert c.post("/api/v1/admin/scan", headers=basic("boss", "b0ss")).status_code == 200
    boss = basic("boss", "b0ss")
    assert c.post("/api/v1/admin/hosts/box1/clear-cooldown", headers=bearer).status_code == 403
    assert c.post("/api/v1/admin/hosts/box1/clear-cooldown", headers=boss).status_code == 200
    assert c.post("/api/v1/admin/hosts/nobody/clear-cooldown", headers=boss).status_code == 404
    assert c.post("/api/v1/admin/hosts/..%2Fx/clear-cooldown", headers=boss).status_code in (404, 422)


def test_wrong_lease_token_cannot_upload(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    c = api()
    lease = c.post("/api/v1/leases", json={"client": "a"}).json()
    forged = lease["token"][:-2] + ("AA" if not lease["token"].endswith("AA") else "BB")
    assert c.post(f"/api/v1/leases/{forged}/result", data={"meta": "{}"}, files={"txt": ("t", b"x")}).status_code == 404
    assert c.post(f"/api/v1/leases/{forged}/heartbeat", json={}).status_code == 404
    assert c.get(f"/api/v1/tasks/{lease['task_id']}").json()["state"] == "leased"


@pytest.fixture
def caddy(tmp_path):
    if not shutil.which("caddy"):
        pytest.skip("caddy is not installed (scripts/install.sh --dev installs it)")
    procs = []

    def start(upstream_port: int, user: str, password: str) -> str:
        port = free_port()
        hashed = subprocess.run(
            ["caddy", "hash-password", "--plaintext", password], capture_output=True, text=True, check=True
        ).stdout.strip()
        env = {
            **os.environ,
            "STT_DOMAIN": f":{port}",
            "STT_UPSTREAM": f"127.0.0.1:{upstream_port}",
            "STT_USER": user,
            "STT_PASSWORD_HASH": hashed,
            "CADDY_ADMIN": "off",
            "XDG_DATA_HOME": str(tmp_path / "caddy-data"),
            "XDG_CONFIG_HOME": str(tmp_path / "caddy-config"),
        }
        proc = subprocess.Popen(
            ["caddy", "run", "--config", str(REPO / "deploy/Caddyfile"), "--adapter", "caddyfile"],
            env=env,
            stdout=open(tmp_path / "caddy.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/health", timeout=1)
                return url
            except requests.ConnectionError:
                assert proc.poll() is None, (tmp_path / "caddy.log").read_text()
                time.sleep(0.1)
        raise RuntimeError("caddy did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


@pytest.mark.slow
def test_behind_caddy_basic_auth(shared, whisper_cli, server_process, caddy, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"a/jfk.mp3": "jfk.mp3", "b/jfk.mp3": "jfk.mp3"})
    srv = server_process().start()
    url = caddy(srv.port, "friends", "correct horse")
    assert requests.get(url + "/health").json() == {"status": "ok"}
    for method, path in PROTECTED:
        assert getattr(requests, method)(url + path).status_code == 401, path
    assert requests.get(url + "/task", auth=("friends", "wrong")).status_code == 401

    # The legacy protocol through the proxy, exactly as field clients speak it.
    r = requests.get(url + "/task", auth=("friends", "correct horse"))
    assert r.status_code == 200 and r.content == (shared / "audio/jfk.mp3").read_bytes()
    assert (
        requests.post(
            url + "/result",
            json={"id": r.headers["X-Task-ID"], "vtt": "WEBVTT\n\n00:00.000 --> 00:01.000\nask not\n"},
            auth=("friends", "correct horse"),
        ).status_code
        == 200
    )

    # And our own client, end to end.
    env = client_env(tmp_path, url, shared / "models/ggml-tiny.en.bin", "caddy-client")
    env.update({"AUTH_ENABLED": "true", "USERNAME": "friends", "PASSWORD": "correct horse"})
    r = run_client(env, "--until-idle")
    assert r.returncode == 0, r.stderr[-2000:]
    states = [t["state"] for t in requests.get(url + "/api/v1/tasks", auth=("friends", "correct horse")).json()]
    assert states == ["done", "done"]
    assert "ask not what your country" in (tmp_path / "data/results/b/jfk.txt").read_text().lower()
