"""Several server processes (WORKERS > 1, or several servers) claiming from one database at once."""

from __future__ import annotations

import pytest

from tests.helpers import add_tasks, make_ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def _claim_all(db: str, name: str, out) -> None:
    ledger = make_ledger(db)
    got = []
    while (g := ledger.leases.claim(name)) is not None:
        got.append(g.task_id)
    out.put(got)


def test_processes_claiming_at_once_never_share_a_task(db):
    """Several server processes (WORKERS > 1, or several servers) on one database."""
    import multiprocessing as mp

    ledger = make_ledger(db)
    ids = add_tasks(ledger, 400)
    ledger.db.dispose()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(db, f"p{i}", out)) for i in range(3)]
    for p in procs:
        p.start()
    claimed = [tid for _ in procs for tid in out.get(timeout=120)]
    for p in procs:
        p.join()
    assert sorted(claimed) == sorted(ids)
