"""simulate_fleet.py's hosts: each a thread speaking the v1 protocol over HTTP, transcribing in
simulated time (its speed, with noise), prefetching one lease and waiting out Retry-After. Honest
hosts upload the task's true words, two a second, timed in VTT cues; a liar, other words as many.
A spot check transcribes its range alone, timed from the range's start, as the real client does."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import requests
from sim_library import File

from server.ledger import model_tier

WORDS_PER_SECOND = 2
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
]
LIES = [
    "banana",
    "window",
    "seventeen",
    "purple",
    "engine",
    "quietly",
    "marble",
    "harbour",
    "ladder",
    "cobalt",
    "violin",
    "meadow",
]


def transcript(
    task_id: str, seconds: float, liar: Optional[random.Random] = None, spot: Optional[tuple[float, float]] = None
) -> tuple[str, str]:
    """(txt, vtt) of the task's true words (the same for every honest host), or a liar's as many
    other words; `spot`: those of that range alone, timed from its start."""
    truth = random.Random(task_id)
    count = max(1, int(seconds * WORDS_PER_SECOND))
    timed = [((i + 0.5) / WORDS_PER_SECOND, truth.choice(WORDS)) for i in range(count)]
    start, end = spot or (0.0, seconds)
    said = [(t - start, liar.choice(LIES) if liar else w) for t, w in timed if start <= t < end]
    cues = []
    for k in range(0, len(said), 10):
        chunk = said[k : k + 10]
        a, b = chunk[0][0] - 0.25, chunk[-1][0] + 0.25
        cues.append(f"{_clock(a)} --> {_clock(b)}\n{' '.join(w for _, w in chunk)}\n")
    return " ".join(w for _, w in said), "WEBVTT\n\n" + "\n".join(cues)


def _clock(seconds: float) -> str:
    ms = round(max(0.0, seconds) * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


@dataclass
class Host:
    name: str
    speed: float  # real, x real time
    url: str
    timescale: float
    model: str = "ggml-base.bin"
    english_only: bool = False
    bench: float = 1.0  # what its benchmark says, as a share of its real speed
    noise: float = 0.0  # each task takes x(1 +- noise) of its speed
    busy: float = 0.0
    tasks: int = 0
    waits: Counter[str] = field(default_factory=Counter)  # 204s by reason (X-Wait-Reason; "nothing": none)
    lost: int = 0
    rng: random.Random = field(default_factory=random.Random)
    session: requests.Session = field(default_factory=requests.Session)
    liar: bool = False  # uploads plausible garbage: other words, as many

    def takes(self, f: File) -> bool:
        return (not self.english_only or f.language in ("en", "auto")) and model_tier(self.model) >= f.min_tier

    def lease(self, session: requests.Session, wait: bool = True) -> Optional[dict]:
        """A lease with its audio downloaded; None after a 204 (waited out unless `wait` is off)."""
        caps = {
            "backend": "sim",
            "model": self.model,
            "english_only": self.english_only,
            "rtf": self.speed * self.timescale * self.bench,
        }
        r = session.post(f"{self.url}/api/v1/leases", json={"client": self.name, "capabilities": caps})
        if r.status_code == 204:
            self.waits[r.headers.get("X-Wait-Reason", "nothing")] += 1
            if wait:  # Retry-After, in simulated time
                time.sleep(max(0.2, float(r.headers.get("Retry-After", 0)) / self.timescale))
            return None
        r.raise_for_status()
        lease = r.json()
        with session.get(self.url + lease["audio_url"], stream=True) as audio:
            for _ in audio.iter_content(1 << 16):
                pass
        return lease

    def work(self, lease: dict, held: list[Optional[dict]]) -> None:
        """Sleep the simulated transcription, heartbeating every lease held; upload unless lost."""
        if lease["start_seconds"] is not None:
            seconds = lease["end_seconds"] - lease["start_seconds"]
        else:
            seconds = lease["file_duration_seconds"] or 1.0
        checks = lease["check_start_seconds"] is not None
        spot = (lease["check_start_seconds"], lease["check_end_seconds"]) if checks else None
        length = spot[1] - spot[0] if spot else seconds
        wall = length / self.speed / self.timescale * self.rng.uniform(1 - self.noise, 1 + self.noise)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < wall:
            time.sleep(min(0.5, wall - elapsed))
            for other in held:
                if other is None:
                    continue
                progress = min(100.0, 100 * (time.monotonic() - started) / wall) if other is lease else None
                r = self.session.post(
                    f"{self.url}/api/v1/leases/{other['token']}/heartbeat", json={"progress": progress}
                )
                if r.status_code == 409 and other is lease:
                    self.lost += 1
                    self.busy += time.monotonic() - started
                    return
        self.busy += wall
        self.tasks += 1
        meta = {"model": self.model, "backend": "sim", "audio_seconds": length, "processing_seconds": 0}
        if spot:
            meta["spot"] = list(spot)
        text, vtt = transcript(lease["task_id"], seconds, self.rng if self.liar else None, spot)
        files = {"vtt": ("v.vtt", vtt.encode()), "txt": ("t.txt", f"{text}\n".encode())}
        url = f"{self.url}/api/v1/leases/{lease['token']}/result"
        self.session.post(url, data={"meta": json.dumps(meta)}, files=files)

    def run(self, finished: threading.Event) -> None:
        try:
            self._loop(finished)
        except requests.RequestException:
            if not finished.is_set():  # the servers stop once the batch is done; before that, it is a bug
                raise

    def _loop(self, finished: threading.Event) -> None:
        nxt: Optional[dict] = None
        while not finished.is_set():
            lease = nxt or self.lease(self.session)
            if lease is None:
                continue
            held: list[Optional[dict]] = [lease]  # the prefetched lease joins it, and is heartbeated too
            prefetch = threading.Thread(target=self._prefetch, args=(held,))
            prefetch.start()
            self.work(lease, held)
            prefetch.join()
            nxt = held[1]

    def _prefetch(self, held: list[Optional[dict]]) -> None:
        with requests.Session() as session:
            held.append(self.lease(session, wait=False))
