"""Property-based fuzzing of the whole API with schemathesis, against the server's own OpenAPI
document: no 5xx, and every answer conforms to the documented schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import copy_audio


def test_schemathesis_finds_nothing(shared, server_process, tmp_path, report):
    exe = Path(sys.executable).parent / "schemathesis"  # the one installed beside this Python
    if not exe.exists():
        pytest.skip("schemathesis is not installed (pip install '.[dev]')")
    copy_audio(shared, tmp_path / "audio", {"jfk.mp3": "jfk.mp3", "de/a.mp3": "jfk.mp3"})
    srv = server_process().start()
    # Any bytes fit the upload's schema, but only audio is accepted: 415 is a right answer there too;
    # and so is 422 for a callback_url whose host is private or does not resolve (no schema says that).
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-path = "/api/v1/jobs"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", 401, 403, 404, 409, 415, 422, 429]\n'
        '[[operations]]\ninclude-path = "/v1/audio/transcriptions"\ninclude-method = "POST"\n'
        'checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 408, 415]\n'
    )
    r = subprocess.run(
        [
            str(exe),
            "run",
            f"{srv.url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--seed",
            "20261122",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    lines = r.stdout.splitlines()
    summary = [line.strip() for line in lines if " generated" in line or (line.startswith("=") and " in " in line)]
    report("schemathesis: " + (" | ".join(summary) if summary else r.stdout[-500:]))
    assert r.returncode == 0, r.stdout[-6000:]
    assert "500 Internal Server Error" not in (tmp_path / "server.out").read_text()
