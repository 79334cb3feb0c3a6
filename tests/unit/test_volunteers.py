"""The volunteers' credit: audio hours and results per volunteer (the credentials a host leased
with, or the host itself), a recent average that halves every 7 days, display names."""

from __future__ import annotations

import math

from server.ledger import Grant, Made
from tests.helpers import Clock, Kept, add_tasks, make_ledger

DAY = 86400.0


def deliver(ledger, host: str, principal, caps=None) -> None:
    grant = ledger.leases.claim(host, capabilities=caps or {"model": "ggml-tiny.en.bin", "backend": "cpu"},
                                principal=principal)  # fmt: skip
    assert isinstance(grant, Grant)
    ledger.leases.complete(grant.token, Kept(), Made("ggml-tiny.en.bin", "cpu", 1.0))


def test_credit_by_volunteer_with_a_seven_day_half_life(tmp_path):
    clock = Clock(1_000 * DAY + 3600)  # 1 a.m. on day 1000
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db'}", clock)
    for tid in add_tasks(ledger, 5):
        ledger.catalogue.set_duration(tid, 100, 1_800_000)  # half an hour each
    deliver(ledger, "alice-laptop", "alice")
    deliver(ledger, "alice-gpu", "alice", {"model": "ggml-small.bin", "backend": "cuda", "display_name": "Alice"})
    deliver(ledger, "bob-box", None)  # behind a proxy alone: the host is the volunteer
    clock.t += 7 * DAY  # a week later
    deliver(ledger, "alice-laptop", "alice")
    failed = ledger.leases.claim("bob-box", capabilities={"model": "ggml-tiny.en.bin"})
    ledger.leases.fail(failed.token, "cannot decode", None, retryable=False)  # not a result: no credit

    alice, bob = ledger.volunteers.board()
    assert (alice.name, alice.key, alice.results, alice.valid_results, alice.hosts) == ("Alice", "alice", 3, 3, 2)
    assert alice.audio_hours == 1.5 and alice.backends == ("cpu", "cuda")
    assert (bob.name, bob.results, bob.audio_hours, bob.hosts) == ("bob-box", 1, 0.5, 1)
    # Recent average (audio hours a day): each result decays with a 7-day half-life from its day's
    # middle: two from day 1000 (6.54 days ago now), one from today (no age yet).
    rate, age = math.log(2) / 7, 1007 + 1 / 24 - 1000.5
    expected = 0.5 * rate * (2 * 2 ** (-age / 7) + 1)
    assert abs(alice.recent_hours_per_day - expected) < 0.002
    assert bob.recent_hours_per_day < alice.recent_hours_per_day
    clock.t += 70 * DAY
    assert all(v.recent_hours_per_day < 0.001 for v in ledger.volunteers.board())  # ten half-lives on
    assert ledger.volunteers.board()[0].audio_hours == 1.5  # the total stays
