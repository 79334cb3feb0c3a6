"""Upgrading an operator's database: a 0.1 database (create_all, no Alembic) with every task state is
adopted and upgraded, and loses nothing; the migrated schema is exactly the models'."""

from __future__ import annotations

import json
import sqlite3
import time
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from server.ledger import LeaseLost, Made, TaskState
from server.ledger.errors import MigrationError
from server.ledger.migrate import head, upgrade
from server.ledger.tables import metadata
from tests.helpers import Kept, ServerProcess, make_ledger

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = time.time()
LIVE_TOKEN = "live-v1-token-0123456789abcdef"
# (id, path, state, attempts, last_error, done_at): every state a 0.1 database can hold.
TASKS = [
    ("queuedqueuedqueu", "queued.mp3", "queued", 0, None, None),
    ("leasedleasedleas", "leased.mp3", "leased", 1, None, None),
    ("donedonedonedone", "done.mp3", "done", 1, None, NOW - 60),
    ("failedfailedfail", "failed.mp3", "failed", 3, "ffprobe cannot read failed.mp3: Invalid data", None),
    ("missingmissingmi", "missing.mp3", "missing", 0, None, None),
    ("emptyemptyemptye", "empty.mp3", "failed", 0, "empty file (0 bytes)", None),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'data' / 'batch-stt.db'}"


def database_at(db: str, tmp_path: Path, revision: str) -> Engine:
    """An empty database migrated to `revision`: the previous release's schema, to fill as it left it."""
    from alembic import command

    from server.ledger.migrate import _config

    (tmp_path / "data").mkdir(exist_ok=True)
    engine = create_engine(db)
    with engine.begin() as c:
        command.upgrade(_config(c), revision)
    return engine


def make_release_0_1_database(url: str) -> None:
    """The tables exactly as 0.1's create_all made them, filled as a running 0.1 server leaves them."""
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    ddl = (FIXTURES / f"schema-0.1-{dialect}.sql").read_text()
    engine = create_engine(url)
    with engine.begin() as c:
        for statement in filter(
            str.strip, "\n".join(line for line in ddl.splitlines() if not line.startswith("--")).split(";")
        ):
            c.exec_driver_sql(statement)
        for tid, path, state, attempts, error, done_at in TASKS:
            c.execute(
                text(
                    "INSERT INTO task (id, path, result_stem, language, size, mtime, sha256, state, attempts,"
                    " last_error, audio_seconds, created_at, updated_at, done_at) VALUES (:id, :path, :stem,"
                    " 'auto', :size, 1.0, NULL, :state, :attempts, :error, :secs, :now, :now, :done)"
                ),
                {
                    "id": tid,
                    "path": path,
                    "stem": path[:-4],
                    "size": 0 if path == "empty.mp3" else 1000,
                    "state": state,
                    "attempts": attempts,
                    "error": error,
                    "now": NOW,
                    "done": done_at,
                    "secs": 11.0 if done_at else None,
                },
            )
        c.execute(
            text(
                "INSERT INTO client (name, capabilities, first_seen, last_seen, tasks_done, tasks_failed)"
                " VALUES ('laptop', '{}', :now, :now, 1, 3)"
            ),
            {"now": NOW},
        )
        attempts = [
            ("leasedleasedleas", LIVE_TOKEN, "active", NOW + 3600, None),
            ("donedonedonedone", "done-token-0123456789abcdef", "completed", NOW, None),
            ("failedfailedfail", "fail-token-0123456789abcdef", "failed", NOW, "ffprobe cannot read"),
        ]
        for tid, token, state, deadline, error in attempts:
            c.execute(
                text(
                    "INSERT INTO attempt (task_id, client, protocol, token, state, granted_at, deadline, error)"
                    " VALUES (:tid, 'laptop', 'v1', :token, :state, :now, :deadline, :error)"
                ),
                {"tid": tid, "token": token, "state": state, "now": NOW, "deadline": deadline, "error": error},
            )
    engine.dispose()


def schema_differences(url: str) -> list:
    """What Alembic finds different between the models and the migrated database, plus the
    expression indexes it cannot compare (it skips them) when they are missing."""
    engine = create_engine(url)
    with engine.connect() as c, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "autogenerate skipping|Skipped unsupported reflection")
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata)
        listed = (
            "SELECT name FROM sqlite_master WHERE type = 'index'"
            if c.dialect.name == "sqlite"
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'task'"
        )
        indexes = set(c.execute(text(listed)).scalars())
    engine.dispose()
    return diff + [("missing expression index", "ix_task_length")] * ("ix_task_length" not in indexes)


def test_a_release_0_1_database_is_adopted_and_upgraded_without_loss(db, tmp_path):
    (tmp_path / "data").mkdir(exist_ok=True)
    make_release_0_1_database(db)
    results = tmp_path / "data" / "results"
    results.mkdir(parents=True)
    (results / "done.txt").write_text("ask not\n")
    (results / "done.meta.json").write_text(json.dumps({"task_id": "donedonedonedone"}))

    server = ServerProcess(tmp_path, DATABASE_URL=db)
    migrated = server.cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"database schema: 0001 -> {head()}" in migrated.stdout, migrated.stdout  # adopted, then upgraded
    assert schema_differences(db) == []

    ledger = make_ledger(db, clock=time.time, lease_seconds=300)
    views = {t.id: t for t in ledger.reports.tasks()}
    for tid, _path, state, attempts, error, _done in TASKS:
        assert (views[tid].state, views[tid].attempts, views[tid].last_error) == (TaskState(state), attempts, error)
    assert views["donedonedonedone"].audio_seconds == 11.0
    assert (results / "done.txt").read_text() == "ask not\n"  # migrations never touch results

    assert ledger.leases.heartbeat(LIVE_TOKEN, 50.0) > NOW  # the live lease goes on as if nothing happened
    written = []
    done = ledger.leases.complete(LIVE_TOKEN, Kept(written.append), Made("ggml-tiny.en.bin", "cpu", 12.0))
    assert (done.duplicate, done.task.state, len(written)) == (False, TaskState.DONE, 1)
    # The 0.1 host keeps its counts; the scheduler's columns start empty, then learn from the result.
    [host] = ledger.fleet.hosts()
    assert (host.name, host.tasks_done, host.tasks_failed) == ("laptop", 2, 3)
    assert (host.strikes, host.cooldown_until) == (0, None)
    assert (host.speed, host.replicas) == (None, 0)  # '{}' capabilities: no model/backend to show it under
    with pytest.raises(LeaseLost):
        ledger.leases.heartbeat(LIVE_TOKEN)
    stats = ledger.reports.stats()
    assert stats.counts[TaskState.DONE] == 2 and stats.counts[TaskState.FAILED] == 2
    # 0005: the directory's tasks are no job's, of the base priority, for any model; still claimable.
    queued = views["queuedqueuedqueu"]
    assert (queued.job_id, queued.priority, queued.min_tier) == (None, 0, 0)
    grant = ledger.leases.claim("after-upgrade", capabilities={"model": "ggml-tiny.en.bin"})
    assert grant is not None and grant.task_id == "queuedqueuedqueu"
    assert ledger.jobs.page() == []
    ledger.db.dispose()

    again = server.cli("migrate")
    assert again.returncode == 0 and "current" in again.stdout, again.stdout + again.stderr


def test_migrate_creates_a_fresh_data_dir(tmp_path):
    r = ServerProcess(tmp_path, DATA_DIR=tmp_path / "new" / "data").cli("migrate")
    assert r.returncode == 0 and f"empty -> {head()}" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "new" / "data" / "batch-stt.db").is_file()


def test_a_new_database_gets_the_schema_of_the_models(db, tmp_path):
    (tmp_path / "data").mkdir(exist_ok=True)
    engine = create_engine(db)
    assert upgrade(engine) == (None, head())
    assert upgrade(engine) == (head(), head())  # idempotent
    engine.dispose()
    assert schema_differences(db) == []


def test_a_database_from_a_newer_release_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'data' / 'batch-stt.db'}"
    (tmp_path / "data").mkdir()
    upgrade(create_engine(url))
    with sqlite3.connect(tmp_path / "data" / "batch-stt.db") as c:
        c.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MigrationError, match=r"9999.*newer batch-stt"):
        upgrade(create_engine(url))
    r = ServerProcess(tmp_path).cli("status")
    assert r.returncode == 2 and "newer batch-stt" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_an_unreachable_database_stops_serve_with_one_line(tmp_path):
    r = ServerProcess(tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:9/none").cli("serve")
    assert r.returncode == 2, r.stderr
    assert "cannot bring the database to schema" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_previous_releases_jobs_are_kept_and_stay_everyones(db, tmp_path):
    """0007 -> 0008: a job from before owners has none, so admins (and a server whose proxy decides)
    still see it and a submitter does not; tokens can be added at once."""
    engine = database_at(db, tmp_path, "0007")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO task (id, path, result_stem, language, size, mtime, state, attempts, created_at,"
                " updated_at, job_id, priority, min_tier) VALUES ('oldjoboldjoboldj', 'oldjob/source.mp3',"
                " 'oldjob/result', 'en', 10, 1.0, 'queued', 0, :now, :now, 'oldjoboldjoboldj', 10, 1)"
            ),
            {"now": NOW},
        )
        c.execute(
            text(
                "INSERT INTO job (id, task_id, filename, callback_url, callback_sent, created_at) VALUES"
                " ('oldjoboldjoboldj', 'oldjoboldjoboldj', 'talk.mp3', 'https://hooks.example.org/x', :f, :now)"
            ),
            {"now": NOW, "f": False},
        )
    assert upgrade(engine) == ("0007", head())
    engine.dispose()
    assert schema_differences(db) == []
    ledger = make_ledger(db, clock=time.time, lease_seconds=300)
    job = ledger.jobs.get("oldjoboldjoboldj")
    assert (job.filename, job.owner, job.state.value, job.task.min_tier) == ("talk.mp3", None, "queued", 1)
    assert [j.id for j in ledger.jobs.page()] == ["oldjoboldjoboldj"] and ledger.jobs.page(owner="alice") == []
    assert ledger.jobs.take_callback(job.id) == ("https://hooks.example.org/x", None)  # no secret was given
    assert not ledger.principals.exist()
    ledger.principals.add("alice", "submitter", "d" * 64)
    assert ledger.principals.find("d" * 64) == ("alice", "submitter")
    ledger.db.dispose()


def test_the_previous_releases_split_file_keeps_its_parts_and_is_one_speaker(db, tmp_path):
    """0008 -> 0009: a long file cut into time parts before speakers existed keeps its parts, each
    one speaker (no stream, channel or label), and its queued part is still handed out; a queued
    file that may hold several streams is probed again."""
    engine = database_at(db, tmp_path, "0008")
    rows = [  # (id, path, parent, start, end, state)
        ("longlonglonglong", "long.mp3", None, None, None, "split"),
        ("partonepartonepa", "long.mp3", "longlonglonglong", 0, 600_000, "done"),
        ("parttwoparttwopa", "long.mp3", "longlonglonglong", 600_000, 900_000, "queued"),
        ("callcallcallcall", "calls/Call.MKV", None, None, None, "queued"),  # may hold several streams
        ("donedonedonedone", "calls/done.mkv", None, None, None, "done"),
        ("talktalktalktalk", "talk.mp3", None, None, None, "queued"),
    ]
    with engine.begin() as c:
        for tid, path, parent, start, end, state in rows:
            c.execute(
                text(
                    "INSERT INTO task (id, path, result_stem, language, size, mtime, state, attempts, created_at,"
                    " updated_at, parent_id, start_ms, end_ms, duration_ms, split_ms, priority, min_tier)"
                    " VALUES (:id, :path, 'long', 'en', 10, 1.0, :state, 0, :now, :now, :parent, :start, :end,"
                    " 900000, :split, 0, 0)"
                ),
                {
                    "id": tid,
                    "path": path,
                    "state": state,
                    "now": NOW,
                    "parent": parent,
                    "start": start,
                    "end": end,
                    "split": 600_000 if tid == "longlonglonglong" else None,
                },
            )
    assert upgrade(engine) == ("0008", head())
    engine.dispose()
    assert schema_differences(db) == []
    ledger = make_ledger(db, clock=time.time, lease_seconds=300)
    parts = ledger.parts.of("longlonglonglong")
    assert [(p.id, p.speaker, p.stream, p.channel) for p in parts] == [
        ("partonepartonepa", None, None, None),
        ("parttwoparttwopa", None, None, None),
    ]
    # A queued MKV is probed again (SPEAKERS may cut it per stream); done files and MP3s are left as they were.
    durations = {
        t: ledger.reports.task(t).duration_ms for t in ("callcallcallcall", "donedonedonedone", "talktalktalktalk")
    }
    assert durations == {"callcallcallcall": None, "donedonedonedone": 900_000, "talktalktalktalk": 900_000}
    grant = ledger.leases.claim("laptop", languages=["en"])
    assert grant is not None and grant.task_id in ("parttwoparttwopa", "talktalktalktalk", "callcallcallcall")
    ledger.db.dispose()


def test_the_previous_releases_held_result_is_checked_whole(db, tmp_path):
    """0009 -> 0010: a result held for a check before spot checks existed is checked whole (no range:
    its check may already be out), and the check's agreement finishes the task."""
    from server.ledger import ValidationMode, ValidationRule
    from tests.unit.test_validation import SMALL, Store

    engine = database_at(db, tmp_path, "0009")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO task (id, path, result_stem, language, size, mtime, state, attempts, created_at,"
                " updated_at, duration_ms, priority, min_tier) VALUES ('heldheldheldheld',"
                " 'talk.mp3', 'talk', 'en', 10, 1.0, 'checking', 1, :now, :now, 900000, 0, 0)"
            ),
            {"now": NOW},
        )
        c.execute(
            text(
                "INSERT INTO attempt (task_id, client, protocol, token, state, granted_at, deadline, checking)"
                " VALUES ('heldheldheldheld', 'laptop', 'v1', 'held-token', 'pending', :now, :now, false)"
            ),
            {"now": NOW},
        )
        held_id = c.exec_driver_sql("SELECT id FROM attempt").scalar()
    assert upgrade(engine) == ("0009", head())
    engine.dispose()
    assert schema_differences(db) == []
    rule = ValidationRule(ValidationMode.ADAPTIVE)
    ledger = make_ledger(db, clock=time.time, lease_seconds=300, validation=rule, scheduler="fifo")
    shelf = {("held", held_id): "the words"}
    grant = ledger.leases.claim("desktop", capabilities=SMALL)
    assert grant is not None and grant.task_id == "heldheldheldheld"
    assert (grant.check_start_ms, grant.check_end_ms) == (None, None)
    done = ledger.leases.complete(grant.token, Store("the words", shelf), Made(SMALL["model"], "cpu", 900.0))
    assert done.verdict.kept == held_id and ledger.reports.task("heldheldheldheld").state == TaskState.DONE
    assert ledger.reports.stats().check_seconds == 900.0
    ledger.db.dispose()
