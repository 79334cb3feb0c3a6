#!/usr/bin/env python3
"""Memory benchmark: a 3-hour MP3 (about 170 MB) through the real server and the real client,
whole (SPLIT_SECONDS=0, as before parts) and as parts (SPLIT_SECONDS, default 600), in one run.

Prints the peak RSS of the server, the client daemon (the Python process alone), ffmpeg and
whisper-cli for both. whisper-cli is limited to the first seconds of its audio (-d) so the run stays
short; it still loads all the audio it is given, which is what its memory follows. Also prints the
server's CPU time to plan the cuts of the file, next to decoding the whole file once (what a
silence search over the whole file would cost at least).

    python scripts/bench_memory.py [--hours 3] [--split-seconds 600] [--model ../shared/models/ggml-tiny.en.bin]
"""

from __future__ import annotations

import argparse
import os
import resource
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
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

from loadgen import free_port  # noqa: E402


def make_audio(source: str, hours: float, dest: Path) -> None:
    base = dest.with_name("base128k.mp3")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", source, "-b:a", "128k", str(base)], check=True)
    loops = int(hours * 3600 / 60) + 2
    # fmt: off
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", str(loops), "-i", str(base),
                    "-c", "copy", "-t", str(int(hours * 3600)), str(dest)], check=True)
    # fmt: on
    base.unlink()


def cpu_seconds(fn) -> tuple[float, float]:
    """(CPU seconds of this process and its children, wall seconds) that fn() took."""

    def used() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    cpu, wall = used(), time.monotonic()
    fn()
    return used() - cpu, time.monotonic() - wall


def planning(audio: Path, split_seconds: int) -> None:
    from server.parts import plan
    from stt_common.media import probe_seconds

    duration_ms = round(probe_seconds(audio) * 1000)
    parts: list = []
    cpu, wall = cpu_seconds(lambda: parts.extend(plan.plan(audio, duration_ms, split_seconds * 1000)))
    base_cpu, base_wall = cpu_seconds(
        lambda: subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(audio), "-f", "null", "-"], check=True)
    )
    pauses = sum(p.note.startswith("pause") for p in parts[1:])
    print(f"planning {len(parts)} parts ({pauses} of {len(parts) - 1} cuts in a pause): "
          f"{cpu:.2f} s CPU, {wall:.2f} s wall")  # fmt: skip
    print(f"decoding the whole file once: {base_cpu:.1f} s CPU, {base_wall:.1f} s wall "
          f"(planning costs {cpu / base_cpu:.3f} of it)")  # fmt: skip


def run_fleet(root: Path, args: argparse.Namespace, split_seconds: int) -> dict[str, float]:
    """Server + one client on the file; the client takes one task (the whole file, or its first part)."""
    data = root / f"data-{split_seconds}"
    port = free_port()
    env = {**os.environ, "AUDIO_DIR": str(root / "audio"), "DATA_DIR": str(data), "PORT": str(port),
           "SCAN_INTERVAL": "0", "LOG_FILE": str(data / "events.log"), "SPLIT_SECONDS": str(split_seconds)}  # fmt: skip
    server = subprocess.Popen([sys.executable, "-m", "server.cli", "serve"], env=env, cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):  # up, and the file probed (and cut): then a lease gets it
        try:
            tasks = requests.get(url + "/api/v1/tasks", timeout=1).json()
            if tasks and tasks[0]["duration_ms"]:
                break
        except requests.RequestException:
            pass
        time.sleep(0.1)
    cenv = {**os.environ, "SERVER_URL": url, "WHISPER_CLI": args.whisper_cli, "WHISPER_MODEL": args.model,
            "THREADS": "2", "WORK_DIR": str(root / f"work-{split_seconds}"), "SUSPEND_CPU_LOAD": "0",
            "WHISPER_ARGS": f"-d {args.transcribe_ms}"}  # fmt: skip
    client = subprocess.Popen([sys.executable, "-m", "client.cli", "run", "--once"], env=cenv, cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
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
    server.terminate()
    server.wait(15)
    print(f"-- SPLIT_SECONDS={split_seconds}: client exit {client.returncode}")
    print("\n".join(line for line in out.splitlines() if " task " in line or "transcribed" in line or "failed" in line))
    return peaks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--split-seconds", type=int, default=600)
    ap.add_argument("--source", default=str(REPO.parent / "shared/audio/millbrook.mp3"))
    ap.add_argument("--model", default=str(REPO.parent / "shared/models/ggml-tiny.en.bin"))
    ap.add_argument("--whisper-cli", default=str(REPO / "client/whisper/whisper.cpp/build/bin/whisper-cli"))
    ap.add_argument("--transcribe-ms", type=int, default=20000, help="whisper-cli -d: audio it processes")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="stt-mem-") as tmp:
        return measure(Path(tmp), args)


def measure(root: Path, args: argparse.Namespace) -> int:
    """Both runs over `root` (hours of audio: removed after), and the table."""
    (root / "audio").mkdir()
    audio = root / "audio" / "long.mp3"
    make_audio(args.source, args.hours, audio)
    print(f"audio: {audio.stat().st_size / 1e6:.0f} MB, {args.hours:g} h")
    planning(audio, args.split_seconds)
    runs = {"whole": run_fleet(root, args, 0), "parts": run_fleet(root, args, args.split_seconds)}
    print(f"{'peak RSS (MB)':16s} {'whole file':>11s} {'one part':>11s}")
    for key in ("server", "client daemon", "ffmpeg", "ffprobe", "whisper-cli"):
        print(f"{key:16s} {runs['whole'].get(key, 0):11.1f} {runs['parts'].get(key, 0):11.1f}")
    w, p = runs["whole"].get("whisper-cli", 0), runs["parts"].get("whisper-cli", 0)
    if w and p:
        print(f"whisper-cli with parts uses {p / w:.2f} of its whole-file peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
