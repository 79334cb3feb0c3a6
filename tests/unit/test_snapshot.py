"""The claims' shared view of the fleet (server/ledger/snapshot.py): stale by design for up to a
second, so what it offers is checked by the picks and a "nothing" against the queue itself; and a
claim's work does not grow with the fleet."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

from sqlalchemy import event, text

from server.ledger import Grant, Made, fleet_state, policy, snapshot
from tests.helpers import Clock, Kept, add_tasks, make_ledger

CAPS = {"backend": "cpu", "model": "ggml-base.bin", "rtf": 5.0}


def test_a_stale_snapshot_never_answers_nothing_while_work_is_queued_for_the_host(tmp_path):
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", Clock(), snapshot_seconds=3600)
    assert ledger.leases.claim("box", capabilities=CAPS) is None  # read now: an empty queue
    add_tasks(ledger, 3, lang="fr")
    assert isinstance(ledger.leases.claim("box", capabilities=CAPS), Grant)  # the snapshot is an hour "fresh"
    english_only = {**CAPS, "english_only": True}
    assert ledger.leases.claim("en-box", capabilities=english_only) is None  # French is not for it


def test_two_servers_each_with_its_own_snapshot_never_grant_a_task_twice(tmp_path):
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    clock = Clock()
    servers = [make_ledger(db, clock, snapshot_seconds=3600) for _ in range(2)]
    ids = add_tasks(servers[0], 40)
    granted = []
    for i in range(60):
        g = servers[i % 2].leases.claim(f"host-{i % 10}", capabilities=CAPS)
        if isinstance(g, Grant):
            granted.append(g.task_id)
    assert sorted(granted) == sorted(ids)  # every task once, none twice, none left behind


def test_a_task_granted_since_the_last_read_can_be_copied_by_a_faster_host(tmp_path):
    clock = Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock, snapshot_seconds=3600, replica_budget=1.0)
    [tid] = add_tasks(ledger, 1)
    ledger.catalogue.set_duration(tid, 100, 600_000)
    slow = ledger.leases.claim("laptop", capabilities={**CAPS, "rtf": 0.5})  # reads the snapshot, then takes it
    assert isinstance(slow, Grant) and not slow.replica
    clock.t += 10
    copy = ledger.leases.claim("gpu", capabilities={**CAPS, "rtf": 50.0})  # the same snapshot, an hour "fresh"
    assert isinstance(copy, Grant) and copy.replica and copy.task_id == tid
    assert ledger.leases.claim("gpu2", capabilities={**CAPS, "rtf": 50.0}) is None  # one copy at most


def seed_hosts(db: str, n: int, now: float) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(db)
    with engine.begin() as c:
        for i in range(n):
            c.execute(
                text(
                    "insert into client (name, capabilities, first_seen, last_seen, tasks_done, tasks_failed,"
                    " strikes, cooldowns) values (:n, :caps, :t, :t, 0, 0, 0, 0)"
                ),
                {"n": f"seen-{i:05}", "caps": json.dumps({**CAPS, "english_only": i % 2 == 0}), "t": now},
            )
    engine.dispose()


def statements_per_claim(tmp_path, hosts: int) -> list[str]:
    db = f"sqlite:///{tmp_path / f'db-{hosts}.sqlite'}"
    clock = Clock()
    ledger = make_ledger(db, clock, snapshot_seconds=3600)
    add_tasks(ledger, 50)
    seed_hosts(db, hosts, clock.t)
    assert isinstance(ledger.leases.claim("warm-up", capabilities=CAPS), Grant)  # reads the snapshot
    seen: list[str] = []
    listener = lambda conn, cursor, statement, *rest: seen.append(statement.split()[0])  # noqa: E731
    event.listen(ledger.db.engine, "before_cursor_execute", listener)
    g = ledger.leases.claim("box", capabilities=CAPS)
    event.remove(ledger.db.engine, "before_cursor_execute", listener)
    assert isinstance(g, Grant)
    return seen


def test_a_claim_runs_the_same_statements_with_ten_hosts_as_with_two_thousand(tmp_path):
    few, many = statements_per_claim(tmp_path, 10), statements_per_claim(tmp_path, 2000)
    assert few == many and len(few) <= 12, (few, many)


def test_a_host_is_free_the_moment_it_delivers_and_its_task_is_nobodys_to_copy(tmp_path):
    """It asks for its next task the moment it uploads; the next read may be a second away (ten
    seconds of a simulated fleet): till then the claims' own bookkeeping must not see it busy."""
    clock = Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock, snapshot_seconds=3600)
    [tid] = add_tasks(ledger, 1)
    ledger.catalogue.set_duration(tid, 100, 60_000)
    grant = ledger.leases.claim("box", capabilities=CAPS)  # 60 s at 5x: busy for 12 s
    snapshots = ledger.leases.snapshots
    assert snapshots.view("box", CAPS, None).fleet.me.free_at == clock.t + 12.0
    clock.t += 2.0
    ledger.leases.complete(grant.token, Kept(), Made("ggml-base.bin", "cpu", 60.0))
    view = snapshots.view("box", CAPS, None)
    assert view.fleet.me.free_at == clock.t and tid in view.closed


def test_a_grant_booked_after_another_claims_reread_keeps_the_host_in_its_class(tmp_path):
    """Claims run in threads: one may re-read the fleet between another's view and its grant. The
    host the fresh read does not know yet joins its class with its speed, not as a class of speed 0
    (every class at speed 0 made the policy divide by zero; a CI run's thread warning found it)."""
    clock = Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    add_tasks(ledger, 3)
    snapshots = ledger.leases.snapshots
    me = snapshots.view("box", CAPS, None).fleet.me  # the first read: "box" joins the fleet
    clock.t += 5
    snapshots.refresh()  # another claim's re-read: "box" has no row yet, so this read does not know it
    snapshots.granted(me, None, "t", 60.0, copyable=False)
    fleet = snapshots.view("box", CAPS, None).fleet
    assert [c.speed for c in fleet.classes] == [me.speed]
    assert policy.choose(replace(fleet, me=replace(me, free_at=clock.t)))  # no ZeroDivisionError: work for it


def test_what_is_booked_while_the_fleet_is_read_is_in_the_snapshot_that_read_makes(tmp_path, monkeypatch):
    """Claims go on while a read runs in a worker thread (server/group_commit.py). That read may have
    seen the database before a result or a grant was booked: neither may be lost when it lands."""
    clock = Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock, snapshot_seconds=3600)
    t1, t2 = add_tasks(ledger, 2)
    for tid in (t1, t2):
        ledger.catalogue.set_duration(tid, 100, 60_000)
    first = ledger.leases.claim("box", capabilities=CAPS)  # 60 s at 5x: busy for 12 s
    snapshots = ledger.leases.snapshots
    read_db, go_on = threading.Event(), threading.Event()

    def read(*args):
        fresh = fleet_state.read_fleet(*args)  # the database before the result and the grant below
        read_db.set()
        assert go_on.wait(30)
        return fresh

    monkeypatch.setattr(snapshot, "read_fleet", read)
    snapshots._state.taken_at -= 7200
    assert snapshots.due()
    reader = threading.Thread(target=snapshots.read)
    reader.start()
    assert read_db.wait(30)
    clock.t += 2.0
    ledger.leases.complete(first.token, Kept(), Made("ggml-base.bin", "cpu", 60.0))
    assert isinstance(ledger.leases.claim("other", capabilities=CAPS), Grant)  # the read under way serves it
    go_on.set()
    reader.join(30)
    assert not snapshots._reading
    view = snapshots.view("box", CAPS, None)
    assert view.fleet.me.free_at == clock.t and t1 in view.closed  # free the moment it delivered
    assert snapshots._state.holding == {"box": {}, "other": {t2: 60.0}}


def test_a_grant_the_read_has_seen_already_is_not_counted_twice(tmp_path, monkeypatch):
    clock = Clock()
    ledger = make_ledger(f"sqlite:///{tmp_path / 'db.sqlite'}", clock, snapshot_seconds=3600)
    [tid] = add_tasks(ledger, 1)
    ledger.catalogue.set_duration(tid, 100, 60_000)
    snapshots = ledger.leases.snapshots
    assert snapshots.view("box", CAPS, None).fleet.me.free_at == clock.t  # the first read
    grants = []

    def read(*args):  # a claim booked after the read began, before it looked at the database
        grants.append(ledger.leases.claim("box", capabilities=CAPS))
        return fleet_state.read_fleet(*args)

    monkeypatch.setattr(snapshot, "read_fleet", read)
    snapshots._state.taken_at -= 7200
    assert snapshots.due()
    snapshots.read()
    assert isinstance(grants[0], Grant)
    assert snapshots.view("box", CAPS, None).fleet.me.free_at == clock.t + 12.0  # 60 s at 5x, once
