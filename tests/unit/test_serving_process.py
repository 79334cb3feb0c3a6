"""The serving process's runtime: what `stt-server serve` (and each WORKERS process) sets up once."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.helpers import server_env

# How each serving entry builds its app; uvicorn.run is a no-op in the probe, so nothing listens.
ENTRIES = {
    "stt-server serve": """
        from server.cli import app
        sys.argv = ["stt-server", "serve"]
        try:
            app()
        except SystemExit as e:
            assert not e.code, e.code
        """,
    "a WORKERS process": """
        from server.app import app_from_env
        app_from_env()
        """,
}
PROBE = """
import gc, sys, uvicorn
uvicorn.run = lambda *a, **k: None
before = gc.get_threshold()[0], gc.get_freeze_count()
{entry}
print(*before, gc.get_threshold()[0], gc.get_freeze_count())
"""


@pytest.mark.parametrize("entry", ENTRIES)
def test_the_collector_is_settled_once_the_app_is_built(tmp_path, entry):
    """In a process of its own: freezing and the threshold are process-wide."""
    probe = PROBE.format(entry=textwrap.dedent(ENTRIES[entry]))
    run = subprocess.run(
        [sys.executable, "-c", probe], env=server_env(tmp_path), cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    threshold_before, frozen_before, threshold, frozen = map(int, run.stdout.split()[-4:])
    assert threshold_before != 20_000 and frozen_before == 0  # so what changed is the entry's doing
    assert threshold == 20_000
    assert frozen > 50_000  # the loaded modules and the app's objects: never walked again
