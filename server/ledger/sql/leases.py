"""The statements of leases: claims, heartbeats, completions, failures, releases, expiry."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, Select, String, bindparam, case, func, insert, or_, select, update
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from ..states import AttemptState, Protocol, TaskState
from ..tables import attempt, client, task
from .params import ATTEMPT_VIEW, TASK_VIEW, now, tid, token

# --- leases ---------------------------------------------------------------------------------
expire_due_attempts = (
    update(attempt)
    .where(attempt.c.state == AttemptState.ACTIVE, attempt.c.deadline < now)
    .values(state=AttemptState.EXPIRED, finished_at=now)
    .returning(attempt.c.task_id, attempt.c.client)
)
task_has_active_attempt = (
    select(attempt.c.id).where(attempt.c.task_id == tid, attempt.c.state == AttemptState.ACTIVE).limit(1)
)


def _back_to_queue(last_error: ColumnElement[Any]) -> Update:
    """After an unsuccessful attempt: queued again, or failed once attempts are used up."""
    return (
        update(task)
        .where(task.c.id == tid, task.c.state == TaskState.LEASED)
        .values(
            state=case((task.c.attempts >= bindparam("max_attempts"), TaskState.FAILED), else_=TaskState.QUEUED),
            last_error=last_error,
            updated_at=now,
        )
    )


requeue_after_failure = _back_to_queue(bindparam("error"))
# An expiry says less than a real error ("cannot decode ..."): keep the real one if there is one.
requeue_after_expiry = _back_to_queue(func.coalesce(task.c.last_error, bindparam("error")))
note_error_on_idle_task = (
    update(task)
    .where(task.c.id == tid, task.c.state.in_([TaskState.QUEUED, TaskState.FAILED]))
    .values(last_error=bindparam("error"))
)
task_state = select(task.c.state).where(task.c.id == tid)
touch_client = (
    update(client)
    .where(client.c.name == bindparam("cname"))
    .values(capabilities=bindparam("caps"), last_seen=now)
    .returning(client.c.cooldown_until)
)
insert_client = insert(client)


# A task to translate only for a host that can (`:translate`: a multilingual model, a client that says so).
may_translate = or_(task.c.translate.is_(False), bindparam("translate", type_=Boolean))


def queued(q: Select[Any], languages: bool, probed: bool, level: str = "==") -> Select[Any]:
    """`q` over the queued tasks a claim may take: none that asks for a better model than the
    claimer's (`:tier`), and (`level`) only those of the highest priority there is (`:priority`):
    "==" for the picks, which walk one level of the index in order; ">=", the same rows since
    `:priority` is the top, for a sum over the level that the planner should not walk row by row
    through the (state, priority, path) index; "" for any level. `languages`: only those (`:langs`).
    `probed`: while splitting is on, a file goes out only once its length is known, so a long one
    is never handed out whole by accident."""
    q = q.where(task.c.state == TaskState.QUEUED, task.c.min_tier <= bindparam("tier"), may_translate)
    if level == "==":
        q = q.where(task.c.priority == bindparam("priority"))
    elif level == ">=":
        q = q.where(task.c.priority >= bindparam("priority"))
    if languages:
        q = q.where(task.c.language.in_(bindparam("langs", expanding=True)))
    if probed:
        q = q.where(task.c.duration_ms.is_not(None))
    return q


def _pick(languages: bool, probed: bool) -> Select[Any]:
    """The next queued task in path (then time) order. PostgreSQL: concurrent claims skip rows
    another transaction is taking (SQLite ignores this)."""
    q = queued(select(task.c.id), languages, probed)
    return q.order_by(task.c.path, task.c.start_ms).limit(1).with_for_update(skip_locked=True)


pick_queued = {(langs, probed): _pick(langs, probed) for langs in (False, True) for probed in (False, True)}
# Uploaded jobs go before the directory backlog: the priority level a claim picks from. ORDER BY +
# LIMIT (not max()) so the (state, priority) index is walked from the top and stops at the first fit.
top_priority = {
    (langs, probed): queued(select(task.c.priority), langs, probed, level="").order_by(task.c.priority.desc()).limit(1)
    for langs in (False, True)
    for probed in (False, True)
}
# What a grant tells the client about its task (values.Grant's fields).
GRANT_COLUMNS = (
    task.c.path,
    task.c.language,
    task.c.size,
    task.c.sha256,
    task.c.attempts.label("attempt"),
    task.c.parent_id,
    task.c.start_ms,
    task.c.end_ms,
    task.c.duration_ms,
    task.c.translate,
    task.c.prompt,
    task.c.temperature,
    task.c.check_start_ms,
    task.c.check_end_ms,
)
take_task = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.QUEUED)
    .values(state=TaskState.LEASED, attempts=task.c.attempts + 1, updated_at=now)
    .returning(*GRANT_COLUMNS)
)
insert_attempt = insert(attempt)
# A lease handed back unfinished (released, or its file changed) does not use up an attempt.
give_task_back = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.LEASED)
    .values(state=TaskState.QUEUED, attempts=task.c.attempts - 1, updated_at=now)
)
extend_lease = (
    update(attempt)
    .where(attempt.c.token == token, attempt.c.state == AttemptState.ACTIVE)
    .values(
        deadline=bindparam("deadline"),
        heartbeat_at=now,
        progress=func.coalesce(bindparam("progress", type_=Float), attempt.c.progress),
        paused=bindparam("paused", type_=String),
    )
    .returning(attempt.c.task_id)
)
attempt_state_by_token = select(attempt.c.state).where(attempt.c.token == token)
attempt_by_token = select(*ATTEMPT_VIEW).where(attempt.c.token == token)
# A legacy report names only its task: it is booked to that task's legacy attempt, never to a v1
# holder's or a replica's.
_legacy_attempts = select(*ATTEMPT_VIEW).where(attempt.c.task_id == tid, attempt.c.protocol == Protocol.LEGACY)
newest_legacy_attempt_of_task = _legacy_attempts.order_by(attempt.c.id.desc()).limit(1)
newest_active_legacy_attempt_of_task = (
    _legacy_attempts.where(attempt.c.state == AttemptState.ACTIVE).order_by(attempt.c.id.desc()).limit(1)
)
task_by_id = select(*TASK_VIEW).where(task.c.id == tid)
# The task a lease is for, read to stage its result's files before the booking's transaction.
task_by_token = select(*TASK_VIEW).join(attempt, attempt.c.task_id == task.c.id).where(attempt.c.token == token)
# A completion locks the task's row first (PostgreSQL; SQLite's writers are serialised anyway), so
# two results racing for one task are decided one after the other.
task_by_id_for_update = task_by_id.with_for_update()
mark_task_done = (
    update(task)
    .where(task.c.id == tid)
    .values(
        state=TaskState.DONE,
        done_at=now,
        updated_at=now,
        last_error=None,
        audio_seconds=func.coalesce(bindparam("audio_seconds", type_=Float), task.c.audio_seconds),
        check_start_ms=None,
        check_end_ms=None,
    )
    .returning(*TASK_VIEW)  # the completion's view of the task, without reading it again
)
mark_attempt_completed = (
    update(attempt).where(attempt.c.id == bindparam("aid")).values(state=AttemptState.COMPLETED, finished_at=now)
)
# The task's result came from attempt `aid`: it is completed, and anyone else still working on the
# task should stop at their next heartbeat (one statement: a completion's hot path).
complete_and_supersede = (
    update(attempt)
    .where(attempt.c.task_id == tid, or_(attempt.c.id == bindparam("aid"), attempt.c.state == AttemptState.ACTIVE))
    .values(
        state=case((attempt.c.id == bindparam("aid"), AttemptState.COMPLETED), else_=AttemptState.SUPERSEDED),
        finished_at=now,
    )
)
credit_client_done = (
    update(client).where(client.c.name == bindparam("cname")).values(tasks_done=client.c.tasks_done + 1, last_seen=now)
)
record_attempt_failure = (
    update(attempt)
    .where(attempt.c.id == bindparam("aid"))
    .values(
        state=bindparam("state"),
        error=bindparam("error"),
        stderr_tail=bindparam("stderr_tail"),
        retryable=bindparam("retryable"),
        finished_at=now,
    )
)
debit_client_failed = (
    update(client)
    .where(client.c.name == bindparam("cname"))
    .values(tasks_failed=client.c.tasks_failed + 1, last_seen=now)
)
release_attempt = (
    update(attempt)
    .where(attempt.c.token == token, attempt.c.state == AttemptState.ACTIVE)
    .values(state=AttemptState.RELEASED, finished_at=now)
    .returning(attempt.c.task_id)
)
