"""The serving process's runtime: what `stt-server serve` (and each WORKERS process) sets up once."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_collector_is_settled_once_the_app_is_built():
    """In a process of its own: freezing and the threshold are process-wide."""
    probe = textwrap.dedent(
        """
        import gc
        from server.app import settle_collector
        before = gc.get_threshold()[0], gc.get_freeze_count()
        settle_collector()
        print(*before, gc.get_threshold()[0], gc.get_freeze_count())
        """
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    threshold_before, frozen_before, threshold, frozen = map(int, out.split())
    assert threshold_before != 20_000 and frozen_before == 0  # so what changed is the function's doing
    assert threshold == 20_000
    assert frozen > 50_000  # the loaded modules and the app's objects: never walked again
