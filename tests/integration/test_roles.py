"""Who may do what: volunteers lease, submitters own their jobs, admins do everything; tokens from
the database (`stt-server token`), the settings and the users file; jobs of others do not exist."""

from __future__ import annotations

import base64
import time

import requests

from server.auth import hash_password
from tests.helpers import client_env, copy_audio, run_client

VOLUNTEER = "box1-token-0123456789"
ALICE = "alice-token-0123456789"
BOB = "bob-token-01234567890"
ADMIN = "admin-token-0123456789"
TOKENS = f"box1:{VOLUNTEER},alice:{ALICE}:submitter,bob:{BOB}:submitter"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(c, token: str, shared, **data):
    with open(shared / "audio" / "jfk.mp3", "rb") as f:
        return c.post("/api/v1/jobs", files={"file": ("jfk.mp3", f)}, data=data, headers=bearer(token))


def test_each_role_may_do_its_own_work_only(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"talk.mp3": "jfk.mp3"})
    c = api(AUTH_TOKENS=TOKENS, ADMIN_TOKENS=ADMIN)
    # A volunteer leases and reports, and reads the fleet's state; it submits and sees no job.
    lease = c.post("/api/v1/leases", json={"client": "box1"}, headers=bearer(VOLUNTEER))
    assert lease.status_code == 200
    assert c.get("/api/v1/stats", headers=bearer(VOLUNTEER)).status_code == 200
    refused = submit(c, VOLUNTEER, shared)
    assert refused.status_code == 403 and "box1 is a volunteer" in refused.json()["detail"]
    assert c.get("/api/v1/jobs", headers=bearer(VOLUNTEER)).status_code == 403
    # A submitter submits and follows its jobs, and leases nothing.
    assert c.post("/api/v1/leases", json={"client": "alice"}, headers=bearer(ALICE)).status_code == 403
    assert c.get("/task", headers=bearer(ALICE)).status_code == 403  # the legacy protocol too
    assert c.post("/api/v1/admin/scan", headers=bearer(ALICE)).status_code == 403
    assert c.post("/api/v1/admin/scan", headers=bearer(VOLUNTEER)).status_code == 403
    assert c.post("/api/v1/admin/scan", headers=bearer(ADMIN)).status_code == 200
    # An admin may lease too (a test host of the operator's).
    assert c.post("/api/v1/leases", json={"client": "ops"}, headers=bearer(ADMIN)).status_code in (200, 204)


def test_a_submitter_sees_and_controls_only_its_own_jobs(shared, api, tmp_path):
    c = api(AUTH_TOKENS=TOKENS, ADMIN_TOKENS=ADMIN)
    mine = submit(c, ALICE, shared).json()
    theirs = submit(c, BOB, shared).json()
    assert [j["id"] for j in c.get("/api/v1/jobs", headers=bearer(ALICE)).json()] == [mine["id"]]
    assert [j["id"] for j in c.get("/api/v1/jobs", headers=bearer(BOB)).json()] == [theirs["id"]]
    assert {j["id"] for j in c.get("/api/v1/jobs", headers=bearer(ADMIN)).json()} == {mine["id"], theirs["id"]}
    for method, suffix in (("get", ""), ("get", "/result"), ("post", "/cancel"), ("delete", "")):
        r = getattr(c, method)(f"/api/v1/jobs/{theirs['id']}{suffix}", headers=bearer(ALICE))
        assert r.status_code == 404, (method, suffix, r.status_code)  # as if it never existed
        assert r.json()["detail"] == f"no such job: {theirs['id']}"
    assert c.get(f"/api/v1/jobs/{theirs['id']}", headers=bearer(BOB)).json()["state"] == "queued"  # untouched
    assert c.post(f"/api/v1/jobs/{mine['id']}/cancel", headers=bearer(ALICE)).json()["state"] == "cancelled"
    assert c.post(f"/api/v1/jobs/{theirs['id']}/cancel", headers=bearer(ADMIN)).json()["state"] == "cancelled"
    assert c.delete(f"/api/v1/jobs/{theirs['id']}", headers=bearer(BOB)).status_code == 204


def test_users_file_roles(shared, api, tmp_path):
    users = tmp_path / "users"
    users.write_text(
        f"carol:{hash_password('c-pw', 1000)}:submitter\n"
        f"laptop:{hash_password('l-pw', 1000)}\n"  # no role: a volunteer, as the client daemon logs in
        f"boss:{hash_password('b-pw', 1000)}:admin\n"
    )
    c = api(AUTH_USERS_FILE=users)

    def basic(user: str, pw: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    with open(shared / "audio" / "jfk.mp3", "rb") as f:
        job = c.post("/api/v1/jobs", files={"file": ("jfk.mp3", f)}, headers=basic("carol", "c-pw")).json()
    assert c.get(f"/api/v1/jobs/{job['id']}", headers=basic("carol", "c-pw")).status_code == 200
    assert c.get(f"/api/v1/jobs/{job['id']}", headers=basic("laptop", "l-pw")).status_code == 403
    assert c.get(f"/api/v1/jobs/{job['id']}", headers=basic("boss", "b-pw")).status_code == 200
    leased = c.post("/api/v1/leases", json={"client": "laptop"}, headers=basic("laptop", "l-pw"))
    assert leased.status_code == 204  # let in: nothing for a host that names no model (the job needs one)


def test_without_builtin_auth_the_proxy_decides_as_before(shared, api, tmp_path):
    c = api()
    job = submit(c, "ignored", shared).json()
    assert c.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    assert c.post("/api/v1/leases", json={"client": "box"}).status_code == 204  # let in; the job needs a model
    refused = c.post("/api/v1/admin/scan")
    assert refused.status_code == 403 and "admin actions over HTTP are off" in refused.json()["detail"]


def test_tokens_from_the_cli_work_until_revoked(shared, whisper_cli, server_process, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3"})
    srv = server_process()
    made = srv.cli("token", "add", "fedora-laptop", "--role", "volunteer")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("stt_") and len(token) > 40 and "not shown again" in made.stderr
    assert srv.cli("token", "add", "fedora-laptop", "--role", "admin").returncode == 1  # one live token a name
    assert srv.cli("token", "add", "bad name", "--role", "admin").returncode == 2
    assert srv.cli("token", "add", "x", "--role", "root").returncode == 2
    owner_token = srv.cli("token", "add", "alice", "--role", "submitter").stdout.strip()
    listing = srv.cli("token", "list").stdout
    assert "fedora-laptop" in listing and "volunteer" in listing and token not in listing
    db = (tmp_path / "data" / "batch-stt.db").read_bytes()
    assert token.encode() not in db  # only its digest is kept
    srv.start()
    assert requests.get(f"{srv.url}/api/v1/stats", timeout=10).status_code == 401  # a token exists: auth is on
    env = client_env(tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "fedora-laptop", AUTH_TOKEN=token)
    assert run_client(env, "--until-idle").returncode == 0
    done = requests.get(f"{srv.url}/api/v1/tasks", headers=bearer(owner_token), timeout=10).json()
    assert [t["state"] for t in done] == ["done"]
    assert srv.cli("token", "revoke", "fedora-laptop").returncode == 0
    assert srv.cli("token", "revoke", "fedora-laptop").returncode == 1
    time.sleep(5.5)  # the server's cache of tokens holds for 5 s
    assert requests.post(f"{srv.url}/api/v1/leases", json={"client": "fedora-laptop"}, headers=bearer(token),
                         timeout=10).status_code == 401  # fmt: skip
    assert srv.cli("token", "list").stdout.count("fedora-laptop") == 1  # kept, with when it was revoked
