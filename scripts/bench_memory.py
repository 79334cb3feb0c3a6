#!/usr/bin/env python3
"""Memory benchmark: a 3-hour MP3 (about 170 MB) through the real server and the real client.

Prints the peak RSS of the server, the client daemon (the Python process alone), ffmpeg and
whisper-cli. whisper-cli is limited to the first seconds of audio (-d) so the run stays short;
download, ffprobe, ffmpeg and the upload handle the whole file.

    python scripts/bench_memory.py [--hours 3] [--model ../shared/models/ggml-tiny.en.bin]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--source", default=str(REPO.parent / "shared/audio/millbrook.mp3"))
    ap.add_argument("--model", default=str(REPO.parent / "shared/models/ggml-tiny.en.bin"))
    ap.add_argument("--whisper-cli", default=str(REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"))
    ap.add_argument("--transcribe-ms", type=int, default=20000, help="whisper-cli -d: audio it processes")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="stt-mem-"))
    (root / "audio").mkdir()
    long_mp3 = root / "audio" / "long.mp3"
    base = root / "base128k.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", args.source, "-b:a", "128k", str(base)], check=True
    )
    loops = int(args.hours * 3600 / 60) + 2
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-stream_loop",
            str(loops),
            "-i",
            str(base),
            "-c",
            "copy",
            "-t",
            str(int(args.hours * 3600)),
            str(long_mp3),
        ],
        check=True,
    )
    print(f"audio: {long_mp3.stat().st_size / 1e6:.0f} MB, {args.hours:g} h")

    port = free_port()
    env = {
        **os.environ,
        "AUDIO_DIR": str(root / "audio"),
        "DATA_DIR": str(root / "data"),
        "PORT": str(port),
        "SCAN_INTERVAL": "0",
        "LOG_FILE": str(root / "events.log"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(url + "/health/ready", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    cenv = {
        **os.environ,
        "SERVER_URL": url,
        "WHISPER_CLI": args.whisper_cli,
        "WHISPER_MODEL": args.model,
        "THREADS": "2",
        "WORK_DIR": str(root / "work"),
        "WHISPER_ARGS": f"-d {args.transcribe_ms}",
    }
    started = time.time()
    client = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "run", "--once"],
        env=cenv,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peaks: dict[str, float] = defaultdict(float)
    done = threading.Event()

    def sample() -> None:
        procs = {"server": psutil.Process(server.pid), "client daemon": psutil.Process(client.pid)}
        while not done.is_set():
            try:
                for child in procs["client daemon"].children(recursive=True):
                    name = Path(child.exe()).name if child.is_running() else ""
                    key = "whisper-cli" if "whisper" in name else name
                    peaks[key] = max(peaks[key], child.memory_info().rss / 1e6)
                for key, p in procs.items():
                    peaks[key] = max(peaks[key], p.memory_info().rss / 1e6)
            except psutil.Error:
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = client.communicate(timeout=3600)
    done.set()
    sampler.join()
    elapsed = time.time() - started
    server.terminate()
    server.wait(15)
    print(
        "\n".join(line for line in out.splitlines() if "transcribed" in line or "uploaded" in line or "failed" in line)
    )
    print(f"client run: {elapsed:.1f} s, exit {client.returncode}")
    for key in ("server", "client daemon", "ffmpeg", "ffprobe", "whisper-cli"):
        if key in peaks:
            print(f"peak RSS {key:14s} {peaks[key]:7.1f} MB")
    return client.returncode


if __name__ == "__main__":
    sys.exit(main())
