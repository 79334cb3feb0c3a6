#!/usr/bin/env bash
# One command for a newcomer: install everything, then run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
scripts/demo.sh
