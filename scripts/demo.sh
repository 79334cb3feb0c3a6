#!/usr/bin/env bash
# The demo: a server and a client on localhost transcribe whisper.cpp's bundled samples/jfk.mp3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN=$REPO/.venv/bin
demo=$(mktemp -d /tmp/batch-stt-demo.XXXXXX)
mkdir -p "$demo/audio"
cp client/whisper/whisper.cpp/samples/jfk.mp3 "$demo/audio/"
port=$("$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

echo "==> starting stt-server on 127.0.0.1:$port (audio: $demo/audio)"
# VALIDATION=off: one client, and nobody to check its results (docs/operator.md, "Validation").
(cd "$demo" && AUDIO_DIR="$demo/audio" DATA_DIR="$demo/data" PORT=$port SCAN_INTERVAL=0 VALIDATION=off \
  exec "$BIN/stt-server" serve >"$demo/server.log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.2; done

echo "==> running stt-client until the queue is empty"
# SUSPEND_CPU_LOAD=0: the demo runs while you watch, so it does not pause for your other programs.
(cd "$demo" && SERVER_URL="http://127.0.0.1:$port" WORK_DIR="$demo/client" NODE_NAME=demo-client SUSPEND_CPU_LOAD=0 \
  "$BIN/stt-client" run --until-idle)

echo "==> status"
(cd "$demo" && AUDIO_DIR="$demo/audio" DATA_DIR="$demo/data" "$BIN/stt-server" status)
echo "==> transcript ($demo/data/results/jfk.txt):"
cat "$demo/data/results/jfk.txt"
