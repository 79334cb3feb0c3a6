"""Prometheus metrics at /metrics: counters fed by the lease-event log, and gauges read from the
database at scrape time (tasks by state, per-host speed), so every process reports the same truth.

With WORKERS > 1 the counters live in PROMETHEUS_MULTIPROC_DIR (set by `stt-server serve` before the
workers start) and each scrape merges them, as prometheus-client's multiprocess mode prescribes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from ..ledger import Event, Ledger

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class LedgerCollector(Collector):
    """What the database knows, read when scraped: never stale, never double-counted across processes."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats, overview = self.ledger.reports.stats(), self.ledger.reports.overview()
        tasks = GaugeMetricFamily("batch_stt_tasks", "Tasks by state (parts count as tasks)", labels=["state"])
        for state, n in stats.counts.items():
            tasks.add_metric([str(state)], n)
        yield tasks
        audio = GaugeMetricFamily("batch_stt_audio_seconds", "Audio by task state, seconds", labels=["state"])
        for state, seconds in overview.audio_seconds.items():
            audio.add_metric([str(state)], seconds)
        yield audio
        speed = GaugeMetricFamily(
            "batch_stt_host_speed", "A host's learned speed, audio seconds per second", labels=["host", "backend"]
        )
        done = GaugeMetricFamily("batch_stt_host_tasks", "A host's tasks, by outcome", labels=["host", "outcome"])
        trusted = GaugeMetricFamily(
            "batch_stt_host_trusted", "1: the host's results are checked one in n", labels=["host"]
        )
        streak = GaugeMetricFamily(
            "batch_stt_host_confirmed_streak", "Results in a row a check confirmed", labels=["host"]
        )
        for h in self.ledger.fleet.hosts():
            if h.speed:
                speed.add_metric([h.name, h.backend or ""], h.speed)
            done.add_metric([h.name, "done"], h.tasks_done)
            done.add_metric([h.name, "failed"], h.tasks_failed)
            done.add_metric([h.name, "invalid"], h.invalid_results)
            trusted.add_metric([h.name], int(h.trusted))
            streak.add_metric([h.name], h.valid_streak)
        yield from (speed, done, trusted, streak)
        yield GaugeMetricFamily(
            "batch_stt_validation_audio_seconds", "Audio transcribed again to check results", value=stats.check_seconds
        )
        yield GaugeMetricFamily(
            "batch_stt_checks_stalled",
            "Held results that no host seen in the last hour may check",
            value=len(self.ledger.reports.stalled_checks()),
        )


class Metrics:
    def __init__(self, ledger: Ledger):
        self.registry = CollectorRegistry()
        self.ledger = ledger
        r = self.registry
        self.granted = Counter("batch_stt_leases_granted", "Leases granted", ["protocol"], registry=r)
        self.expired = Counter("batch_stt_leases_expired", "Leases that ran out", registry=r)
        self.replicated = Counter("batch_stt_leases_replicated", "Tail replicas granted", registry=r)
        self.results = Counter("batch_stt_results", "Results received", ["outcome"], registry=r)
        self.errors = Counter("batch_stt_errors", "Error reports, by kind", ["kind"], registry=r)
        self.failed = Counter("batch_stt_tasks_failed", "Tasks that failed for good", registry=r)
        self.audio = Counter("batch_stt_audio_transcribed_seconds", "Audio transcribed, seconds", registry=r)
        self.requests = Histogram("batch_stt_request_seconds", "HTTP request latency", ["method", "route"], registry=r)
        self._on: Mapping[Event, Callable[[dict[str, Any]], None]] = {
            Event.GRANTED: lambda f: self.granted.labels(f.get("protocol", "v1")).inc(),
            Event.EXPIRED: lambda f: self.expired.inc(),
            Event.REPLICATED: lambda f: self.replicated.inc(),
            Event.COMPLETED: self._completed,
            Event.DUPLICATE: lambda f: self.results.labels("duplicate").inc(),
            Event.RESULT_PENDING: lambda f: self.results.labels("pending").inc(),
            Event.RESULT_INVALID: lambda f: self.results.labels("invalid").inc(),
            Event.FAILED: self._failed,
        }
        if not os.environ.get(MULTIPROC_ENV):
            self.registry.register(LedgerCollector(ledger))

    def observe(self, event: Event, fields: dict[str, Any]) -> None:
        """An EventLog listener."""
        handler = self._on.get(event)
        if handler is not None:
            handler(fields)

    def _completed(self, f: dict[str, Any]) -> None:
        self.results.labels("late" if f.get("late") else "accepted").inc()
        if f.get("audio_seconds"):
            self.audio.inc(f["audio_seconds"])

    def _failed(self, f: dict[str, Any]) -> None:
        retryable = f.get("retryable")
        self.errors.labels("legacy" if retryable is None else "retryable" if retryable else "permanent").inc()
        if f.get("task_state") == "failed":
            self.failed.inc()

    def exposition(self) -> bytes:
        if not os.environ.get(MULTIPROC_ENV):
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        merged.register(LedgerCollector(self.ledger))
        return generate_latest(merged)
