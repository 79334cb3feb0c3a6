#!/usr/bin/env bash
# One command for the whole test suite (installs what it needs first). Extra args go to pytest.
# Lint (ruff), format (ruff format --check) and types (mypy) come first: any finding fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --dev
export STT_TEST_ASSETS=${STT_TEST_ASSETS:-$(pwd)/../shared}
if [ ! -f "$STT_TEST_ASSETS/models/ggml-tiny.en.bin" ] || [ ! -d "$STT_TEST_ASSETS/audio" ]; then
  echo "test.sh: the shared test assets (models/ggml-tiny.en.bin, audio/) are not in $STT_TEST_ASSETS:" >&2
  echo "test.sh: put the shared/ folder beside the checkout, or set STT_TEST_ASSETS to where it is" >&2
  exit 1
fi
echo "==> ruff check, ruff format --check, mypy, import-linter (the house rules in pyproject.toml)"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet . || { echo "test.sh: run '.venv/bin/ruff format .'" >&2; exit 1; }
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
echo "==> pytest (tests/unit, then tests/integration)"
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "test.sh: pytest collected no tests: that is a failure" >&2; exit 1; fi
exit $rc
