"""The suite's own rule: under CI a skipped test fails the run (CI installs what every test needs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_pytest(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no such tool')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_fails_the_run_under_ci_and_only_there(tmp_path):
    under_ci = run_pytest(tmp_path, ci=True)
    assert under_ci.returncode == 1 and "skipped under CI" in under_ci.stdout and "no such tool" in under_ci.stdout
    local = run_pytest(tmp_path, ci=False)
    assert local.returncode == 0 and "1 skipped" in local.stdout
