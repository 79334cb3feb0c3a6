"""simulate_fleet.py's hosts: each a thread speaking the v1 protocol over HTTP, transcribing in
simulated time (its speed, with noise), prefetching one lease and waiting out Retry-After. Honest
hosts upload the task's true words; a liar, other words as many."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import requests
from sim_library import File

from server.ledger import model_tier

VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n{text}\n"
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


def transcript(task_id: str, liar: Optional[random.Random] = None) -> str:
    """The task's true words (the same for every honest host), or a liar's as many other words."""
    truth = random.Random(task_id)
    n = truth.randint(20, 40)
    return " ".join((liar.choice(LIES) if liar else truth.choice(WORDS)) for _ in range(n))


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
            length = lease["end_seconds"] - lease["start_seconds"]
        else:
            length = lease["file_duration_seconds"] or 1.0
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
        meta = f'{{"model": "{self.model}", "backend": "sim", "audio_seconds": {length}, "processing_seconds": 0}}'
        text = transcript(lease["task_id"], self.rng if self.liar else None)
        files = {"vtt": ("v.vtt", VTT.format(text=text).encode()), "txt": ("t.txt", f"{text}\n".encode())}
        self.session.post(f"{self.url}/api/v1/leases/{lease['token']}/result", data={"meta": meta}, files=files)

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
