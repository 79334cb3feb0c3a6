"""client/whisper/: the model download (real code, served from a local HTTP server) and the build
script's checks. The build itself runs in scripts/install.sh before the tests."""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading

import pytest

from tests.helpers import REPO

SCRIPTS = REPO / "client" / "whisper"


@pytest.fixture
def model_server(shared):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shared / "models"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *map(str, args)], capture_output=True, text=True, timeout=120, **kw)


def test_download_model_over_http_verifies_sha256(shared, model_server, tmp_path):
    good = sha256(shared / "models/ggml-silero-v6.2.0.bin")
    url = f"{model_server}/ggml-silero-v6.2.0.bin"
    r = run(SCRIPTS / "download-model.sh", "silero-v6.2.0", "--url", url, "--sha256", good, "--dir", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sha256(tmp_path / "ggml-silero-v6.2.0.bin") == good and "verified" in r.stdout
    r = run(
        SCRIPTS / "download-model.sh", "silero-v6.2.0", "--url", url, "--sha256", "0" * 64, "--dir", tmp_path / "bad"
    )
    assert r.returncode != 0 and "mismatch" in r.stderr
    assert not list((tmp_path / "bad").glob("*.bin*"))  # nothing half-verified left behind


def test_download_model_from_local_file(shared, tmp_path):
    r = run(
        SCRIPTS / "download-model.sh",
        "ggml-tiny.en.bin",
        "--from",
        shared / "models/ggml-tiny.en.bin",
        "--dir",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "SHA-256 verified" in r.stdout  # checked against the SHA256SUMS beside the fixtures
    r = run(SCRIPTS / "download-model.sh", "../../etc/passwd", "--dir", tmp_path)
    assert r.returncode != 0 and "odd model name" in r.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--backend", "quantum"], "unknown backend"),
        (["--backend", "metal"], "only for macOS"),
        (["--backend", "vulkan"], "vulkan needs"),
        (["--backend", "openvino"], "OpenVINO toolkit"),
    ],
)
def test_build_refuses_what_it_cannot_build(args, message):
    r = run(SCRIPTS / "build.sh", *args, "--no-deps", env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert r.returncode != 0 and message in r.stderr, r.stderr


def test_build_is_idempotent(whisper_cli):
    r = run(SCRIPTS / "build.sh", "--backend", "cpu", "--no-deps")
    assert r.returncode == 0 and "already built" in r.stdout, r.stdout + r.stderr
