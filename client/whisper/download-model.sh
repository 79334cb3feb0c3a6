#!/usr/bin/env bash
# Fetch a whisper.cpp ggml model into client/whisper/models/ and verify its SHA-256.
#
#   client/whisper/download-model.sh NAME [--from FILE] [--sha256 HEX] [--url URL] [--dir DIR]
#
# NAME: tiny, tiny.en, base, base.en, small, medium, large-v3, large-v3-turbo, and their
#       -q5_1 / -q8_0 variants (e.g. base-q5_1), or a file name like ggml-base.bin.
# --from FILE   use a local copy instead of downloading (verified when a checksum is known)
# --sha256 HEX  the expected checksum (default: the one the model host publishes)
# --url URL     download from a mirror instead of the official host
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HOST=https://huggingface.co/ggerganov/whisper.cpp/resolve/main
dir="$HERE/models" from="" expected="" url=""
die() { echo "download-model.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || { sed -n '2,11p' "$0"; exit 2; }
name=$1; shift
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from=${2:?}; shift 2 ;;
    --sha256) expected=$(echo "${2:?}" | tr 'A-F' 'a-f'); shift 2 ;;
    --url) url=${2:?}; shift 2 ;;
    --dir) dir=${2:?}; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
name=${name#ggml-}; name=${name%.bin}
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "odd model name '$name'"
file="ggml-$name.bin"
dest="$dir/$file"
mkdir -p "$dir"

sha256() { if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi; }

verify() {  # verify FILE: against $expected when known
  local got
  got=$(sha256 "$1")
  if [ -z "$expected" ]; then
    echo "warning: no published SHA-256 known for $file; got $got" >&2
  elif [ "$got" != "$expected" ]; then
    rm -f "$1"
    die "SHA-256 mismatch for $file: expected $expected, got $got (file removed)"
  else
    echo "SHA-256 verified: $got"
  fi
}

if [ -n "$from" ]; then
  [ -f "$from" ] || die "$from does not exist"
  if [ -z "$expected" ] && [ -f "$(dirname "$from")/../SHA256SUMS" ]; then  # e.g. a shared/ fixtures folder
    expected=$(awk -v f="models/$(basename "$from")" '$2==f {print $1}' "$(dirname "$from")/../SHA256SUMS")
  fi
  cp "$from" "$dest.part"
  verify "$dest.part"
  mv "$dest.part" "$dest"
  echo "model ready: $dest"
  exit 0
fi

if [ -f "$dest" ] && [ -n "$expected" ] && [ "$(sha256 "$dest")" = "$expected" ]; then
  echo "model already present and verified: $dest"; exit 0
fi
command -v curl >/dev/null || die "curl is needed to download models"
src=${url:-$HOST/$file}
if [ -z "$expected" ] && [ -z "$url" ]; then
  # The host serves models from Git LFS; X-Linked-Etag carries the file's SHA-256.
  expected=$(curl -sSIL --max-time 30 "$src" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-linked-etag" {gsub(/"/,"",$2); print $2}' | tail -1)
  [[ "$expected" =~ ^[0-9a-f]{64}$ ]] || expected=""
fi
echo "downloading $file from $src"
curl -fL --retry 5 --retry-delay 2 -C - --progress-bar -o "$dest.part" "$src" || die "download failed: $src"
verify "$dest.part"
mv "$dest.part" "$dest"
echo "model ready: $dest"
