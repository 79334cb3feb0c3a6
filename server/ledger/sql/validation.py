"""The statements of validation: held results, checks, and each host's run of confirmed results."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import BindParameter, ColumnClause

from ..states import AttemptState, TaskState
from ..tables import LENGTH_MS, attempt, client, task
from .leases import GRANT_COLUMNS, may_translate
from .params import now, tid

cname: BindParameter[str] = bindparam("cname", type_=String)
aid: BindParameter[int] = bindparam("aid", type_=Integer)

held_results = (
    select(attempt.c.id, attempt.c.client, attempt.c.checked_ms)
    .where(attempt.c.task_id == tid, attempt.c.state == AttemptState.PENDING)
    .order_by(attempt.c.id)
)
streak_of = select(client.c.valid_streak).where(client.c.name == cname)
hold_attempt = update(attempt).where(attempt.c.id == aid).values(state=AttemptState.PENDING, finished_at=now)
# A spot check's range of the task's audio (validation.ValidationRule.spot), ms; None: the whole task.
_range = {"check_start_ms": bindparam("start", type_=Integer), "check_end_ms": bindparam("end", type_=Integer)}
to_checking = (
    update(task)
    .where(task.c.id == tid)
    .values(state=TaskState.CHECKING, check_tier=bindparam("tier"), updated_at=now, **_range)
)
# A check that transcribed its task's range alone: what it transcribed (validation's cost, its speed).
spot_checked = update(attempt).where(attempt.c.id == aid).values(checked_ms=bindparam("ms", type_=Integer))
outvote = update(attempt).where(attempt.c.id == aid).values(state=AttemptState.INVALID)
confirmed = update(client).where(client.c.name == cname).values(valid_streak=client.c.valid_streak + 1)
outvoted = (
    update(client).where(client.c.name == cname).values(valid_streak=0, invalid_results=client.c.invalid_results + 1)
)
# Three different transcripts of one task: nobody can tell which is right.
disagreed = (
    update(task)
    .where(task.c.id == tid)
    .values(state=TaskState.FAILED, last_error=bindparam("error"), check_tier=None, updated_at=now)
)
# Two spot checks agreed with each other, not with the held result: transcribed whole again.
redo = (
    update(task)
    .where(task.c.id == tid)
    .values(state=TaskState.QUEUED, check_tier=None, check_start_ms=None, check_end_ms=None, updated_at=now)
)
# An outvoted host's results that went out unchecked (no other host's result confirmed them): whole
# files, jobs' files and parts (a part's file is stitched anew once its check is done); not its spot
# checks (a range is never a task's result).
unchecked_results_of = (
    select(attempt.c.id, attempt.c.task_id, task.c.parent_id)
    .join(task, task.c.id == attempt.c.task_id)
    .where(
        attempt.c.client == cname,
        attempt.c.state == AttemptState.COMPLETED,
        attempt.c.checked_ms.is_(None),
        task.c.state == TaskState.DONE,
        task.c.split_ms.is_(None),
    )
)
# A stitched file one of whose parts is checked again: stitched again when that part is done.
unstitch = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.DONE, task.c.split_ms.is_not(None))
    .values(state=TaskState.SPLIT, done_at=None, updated_at=now)
)
others_completed = select(attempt.c.id).where(
    attempt.c.task_id == tid, attempt.c.state == AttemptState.COMPLETED, attempt.c.id != aid
)
reopen = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.DONE)
    .values(state=TaskState.CHECKING, check_tier=None, done_at=None, updated_at=now, **_range)
)
drop_held = (
    update(attempt)
    .where(attempt.c.task_id == tid, attempt.c.state == AttemptState.PENDING)
    .values(state=AttemptState.SUPERSEDED)
)


# A host's attempts that keep it from checking a task's held result: its own held result, its work in
# progress, a failure (it cannot transcribe this file) and an outvoted result. A completed attempt does
# not: it belonged to an earlier vote (two spot checks sent the task back to be transcribed again).
_SAID = [AttemptState.PENDING, AttemptState.ACTIVE, AttemptState.FAILED, AttemptState.EXPIRED, AttemptState.INVALID]


def _pick_check(languages: bool) -> Select[Any]:
    """The held result this host may check: a task it may take, that it has not answered (`_SAID`),
    that nobody is checking now; of the held result's model tier, or any once it has waited `:stale`."""
    answered = exists().where(
        attempt.c.task_id == task.c.id,
        or_(and_(attempt.c.client == cname, attempt.c.state.in_(_SAID)), attempt.c.state == AttemptState.ACTIVE),
    )
    q = select(task.c.id).where(
        task.c.state == TaskState.CHECKING,
        task.c.min_tier <= bindparam("tier"),
        may_translate,
        or_(
            task.c.check_tier == bindparam("tier"),
            task.c.check_tier.is_(None),  # a result re-checked after its host was outvoted: any tier
            task.c.updated_at < bindparam("stale", type_=Float),
        ),
        ~answered,
    )
    if languages:
        q = q.where(task.c.language.in_(bindparam("langs", expanding=True)))
    return q.order_by(task.c.priority.desc(), task.c.updated_at).limit(1).with_for_update(skip_locked=True)


pick_check = {langs: _pick_check(langs) for langs in (False, True)}


def _check_later(languages: bool, validating: bool) -> Select[Any]:
    """A held result this host may check once its checker is done (or the tier wait is over); and,
    while results are being validated, a task another host is working on, whose result may be held
    for this host to check."""
    answered = exists().where(attempt.c.task_id == task.c.id, attempt.c.client == cname, attempt.c.state.in_(_SAID))
    states = [TaskState.CHECKING, TaskState.LEASED] if validating else [TaskState.CHECKING]
    q = select(task.c.id).where(
        task.c.state.in_(states), task.c.min_tier <= bindparam("tier"), may_translate, ~answered
    )
    if languages:
        q = q.where(task.c.language.in_(bindparam("langs", expanding=True)))
    return q.limit(1)


check_later = {(langs, on): _check_later(langs, on) for langs in (False, True) for on in (False, True)}
# A spot check of this host's, held in an open vote: the task may come back to be transcribed whole.
spot_pending_of = (
    select(attempt.c.id)
    .join(task, task.c.id == attempt.c.task_id)
    .where(
        attempt.c.client == cname,
        attempt.c.state == AttemptState.PENDING,
        attempt.c.checked_ms.is_not(None),
        task.c.state == TaskState.CHECKING,
    )
    .limit(1)
)
# A check does not move the task: it stays `checking` (its clock for the tier fallback keeps running).
take_check = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.CHECKING)
    .values(attempts=task.c.attempts + 1)
    .returning(*GRANT_COLUMNS)
)
_length: ColumnClause[Any] = literal_column(LENGTH_MS)
# Validation's cost: audio transcribed by checks that gave a result (a spot check: its range).
check_seconds = (
    select(func.coalesce(func.sum(func.coalesce(attempt.c.checked_ms, _length)), 0) / 1000.0)
    .select_from(attempt.join(task, attempt.c.task_id == task.c.id))
    .where(
        attempt.c.checking.is_(True),
        attempt.c.state.in_([AttemptState.COMPLETED, AttemptState.INVALID, AttemptState.PENDING]),
    )
)
# Held results nobody is checking now, the oldest first; and who answered each (they may not check it).
_busy = attempt.alias("busy")
_unchecked = and_(
    task.c.state == TaskState.CHECKING,
    ~exists().where(_busy.c.task_id == task.c.id, _busy.c.state == AttemptState.ACTIVE),
)
waiting_checks = (
    select(*(task.c[n] for n in ("id", "path", "start_ms", "language", "min_tier", "translate", "updated_at")))
    .where(_unchecked)
    .order_by(task.c.updated_at, task.c.path, task.c.start_ms)
)
answered_checks = (
    select(attempt.c.task_id, attempt.c.client)
    .join(task, task.c.id == attempt.c.task_id)
    .where(_unchecked, attempt.c.state.in_(_SAID))
)
# Every host seen since `:since`, cooling down or not: one that cools down comes back.
seen_hosts = select(client.c.name, client.c.capabilities).where(client.c.last_seen > bindparam("since"))
