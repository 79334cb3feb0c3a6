"""The statements of the fleet scheduler: hosts, their speeds, cool-downs, replicas (same conventions
as params.py says)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import BindParameter, ColumnClause

from ..states import AttemptState, TaskState
from ..tables import LENGTH_MS, attempt, client, speed, task
from .leases import GRANT_COLUMNS
from .params import now, tid

cname: BindParameter[str] = bindparam("cname", type_=String)
# Written as the index ix_task_length has it (unqualified, the 0 a literal), so both databases use it.
length_ms: ColumnClause[int] = literal_column(LENGTH_MS, Integer)
length = length_ms / 1000.0  # seconds


def _by_length(probed: bool, longest: bool) -> Select[Any]:
    """One index (ix_task_length) walked either way within one group (priority, language, least
    tier), never a sort of the queue: the longest task that fits with ties in path order, or the
    shortest (the end game's fallback) with ties in reverse."""
    q = select(task.c.id).where(
        task.c.state == TaskState.QUEUED,
        task.c.priority == bindparam("priority"),
        task.c.language == bindparam("lang"),
        task.c.min_tier == bindparam("min_tier"),
        task.c.translate == bindparam("translate", type_=Boolean),
    )
    if probed:
        q = q.where(task.c.duration_ms.is_not(None))
    if longest:
        q = q.where(length_ms <= bindparam("max_ms", type_=Float))
        order = (length_ms.desc(), task.c.path.asc(), task.c.start_ms.asc())
    else:
        order = (length_ms.asc(), task.c.path.desc(), task.c.start_ms.desc())
    return q.order_by(*order).limit(1).with_for_update(skip_locked=True)


pick_longest = {probed: _by_length(probed, longest=True) for probed in (False, True)}
pick_shortest = {probed: _by_length(probed, longest=False) for probed in (False, True)}

# The queue by who may take it, for the fleet snapshot (once a second, not per claim).
probed_col = case((task.c.duration_ms.is_(None), 0), else_=1).label("probed")
queue_groups = (
    select(
        task.c.priority,
        task.c.language,
        task.c.min_tier,
        task.c.translate,
        probed_col,
        func.count().label("count"),
        func.coalesce(func.sum(length), 0.0).label("seconds"),
        func.min(length).label("shortest"),
        func.max(length).label("longest"),
    )
    .where(task.c.state == TaskState.QUEUED)
    .group_by(task.c.priority, task.c.language, task.c.min_tier, task.c.translate, probed_col)
)

# Every lease in progress, with what predicting its finish needs.
running = (
    select(
        attempt.c.client,
        attempt.c.task_id,
        attempt.c.eta,
        attempt.c.progress,
        attempt.c.heartbeat_at,
        attempt.c.protocol,
        attempt.c.checking,
        attempt.c.paused,
        task.c.replicas,
        task.c.language,
        task.c.min_tier,
        task.c.translate,
        # A spot check transcribes its range alone (validation.py).
        case(
            (
                and_(attempt.c.checking.is_(True), task.c.check_start_ms.is_not(None)),
                (task.c.check_end_ms - task.c.check_start_ms) / 1000.0,
            ),
            else_=length,
        ).label("seconds"),
    )
    .join(task, task.c.id == attempt.c.task_id)
    .where(attempt.c.state == AttemptState.ACTIVE)
)
# The fleet: hosts seen lately (idle ones poll) and hosts holding leases, unless cooling down.
hosts = select(client.c.name, client.c.capabilities).where(
    or_(
        client.c.last_seen > bindparam("since"),
        client.c.name.in_(select(attempt.c.client).where(attempt.c.state == AttemptState.ACTIVE)),
    ),
    or_(client.c.cooldown_until.is_(None), client.c.cooldown_until <= now),
)
# Hosts cooling down: a claim of theirs must not add them to the snapshot's fleet (snapshot._me).
cooling = select(client.c.name).where(client.c.cooldown_until > now)
speeds = select(
    speed.c.client, speed.c.model, speed.c.backend, speed.c.audio_seconds, speed.c.processing_seconds, speed.c.samples
)
# Extra work spent on replicas so far, against the whole library's audio (files, not parts).
replica_budget = select(
    func.coalesce(func.sum(case((task.c.replicas > 0, length), else_=0.0)), 0.0),
    func.coalesce(func.sum(case((task.c.parent_id.is_(None), func.coalesce(task.c.duration_ms, 0)), else_=0)), 0)
    / 1000.0,
).where(task.c.state != TaskState.MISSING)
# At most one extra copy, even with several servers on one database: the row's own count decides.
take_replica = (
    update(task)
    .where(task.c.id == tid, task.c.state == TaskState.LEASED, task.c.replicas == 0)
    .values(replicas=task.c.replicas + 1, updated_at=now)
    .returning(*GRANT_COLUMNS)
)

# --- speeds ---------------------------------------------------------------------------------
decay = bindparam("decay", type_=Float)
learn_speed = (
    update(speed)
    .where(speed.c.client == cname, speed.c.model == bindparam("m"), speed.c.backend == bindparam("b"))
    .values(
        audio_seconds=speed.c.audio_seconds * decay + bindparam("audio", type_=Float),
        processing_seconds=speed.c.processing_seconds * decay + bindparam("processing", type_=Float),
        samples=speed.c.samples + 1,
        updated_at=now,
    )
)
insert_speed = insert(speed)
# When the host's last result with this model and backend came in: a prefetched task's clock starts
# then, not at its grant.
last_result_at = select(speed.c.updated_at).where(
    speed.c.client == cname, speed.c.model == bindparam("m"), speed.c.backend == bindparam("b")
)

# --- cool-down ------------------------------------------------------------------------------
cooldown_of = select(client.c.cooldown_until).where(client.c.name == cname)
# Hosts whose attempts on this task failed or expired, now that another host transcribed it.
failed_elsewhere = (
    select(attempt.c.client)
    .where(
        attempt.c.task_id == tid,
        attempt.c.client != cname,
        attempt.c.state.in_([AttemptState.FAILED, AttemptState.EXPIRED]),
    )
    .distinct()
)
strike = (
    update(client)
    .where(client.c.name == cname)
    .values(strikes=client.c.strikes + 1)
    .returning(client.c.strikes, client.c.cooldowns)
)
cool_down = (
    update(client)
    .where(client.c.name == cname)
    .values(strikes=0, cooldowns=client.c.cooldowns + 1, cooldown_until=bindparam("until", type_=Float))
)
# A host's result became a task's: one more done, its strikes wiped, one step of the cool-down's
# growth earned back.
credit_and_forgive = (
    update(client)
    .where(client.c.name == cname)
    .values(
        tasks_done=client.c.tasks_done + 1,
        last_seen=now,
        strikes=0,
        cooldowns=case((client.c.cooldowns > 0, client.c.cooldowns - 1), else_=0),
    )
)
clear_cooldown = (
    update(client)
    .where(client.c.name == cname)
    .values(strikes=0, cooldowns=0, cooldown_until=None)
    .returning(client.c.name)
)

# --- reports --------------------------------------------------------------------------------
host_rows = select(
    client.c.name,
    client.c.capabilities,
    client.c.last_seen,
    client.c.tasks_done,
    client.c.tasks_failed,
    client.c.strikes,
    client.c.cooldown_until,
    client.c.valid_streak,
    client.c.invalid_results,
).order_by(client.c.name)
replicas_by_client = (
    select(
        attempt.c.client,
        func.count(),
        func.sum(case((attempt.c.state == AttemptState.COMPLETED, 1), else_=0)),
    )
    .where(attempt.c.replica.is_(True))
    .group_by(attempt.c.client)
)
replica_totals = select(
    func.count(),
    func.coalesce(func.sum(case((attempt.c.state == AttemptState.COMPLETED, 1), else_=0)), 0),
).where(attempt.c.replica.is_(True))
