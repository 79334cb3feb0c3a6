"""The SQL of uploaded jobs (jobs.py): a job's task and its parts, taken as one."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.sql.elements import BindParameter

from ..states import AttemptState, TaskState
from ..tables import attempt, job, task
from .params import TASK_VIEW, now

jid: BindParameter[str] = bindparam("jid")
insert_job = insert(job)
job_by_id = select(job).where(job.c.id == jid)
_page = (
    select(job.c.id)
    .join(task, task.c.id == job.c.task_id)
    .order_by(job.c.created_at.desc(), job.c.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_in_states = task.c.state.in_(bindparam("states", expanding=True))
_owned = job.c.owner == bindparam("owner")
# [whether only one owner's]
jobs_page = {False: _page, True: _page.where(_owned)}
jobs_in_states_page = {False: _page.where(_in_states), True: _page.where(_in_states, _owned)}
# A retried request: its job unless that failed or was cancelled (then the retry starts anew).
job_of_request = (
    select(job.c.id)
    .join(task, task.c.id == job.c.task_id)
    .where(
        job.c.request_key == bindparam("key"),
        job.c.owner.is_not_distinct_from(bindparam("owner")),
        task.c.state.not_in([TaskState.FAILED, TaskState.MISSING, TaskState.CANCELLED]),
    )
    .order_by(job.c.created_at.desc())
    .limit(1)
)
# The job's own task first, then its parts.
tasks_of_job = select(*TASK_VIEW).where(task.c.job_id == jid).order_by(task.c.parent_id.is_not(None), task.c.start_ms)
live_progress = (
    select(attempt.c.task_id, func.max(attempt.c.progress))
    .join(task, task.c.id == attempt.c.task_id)
    .where(task.c.job_id == jid, attempt.c.state == AttemptState.ACTIVE)
    .group_by(attempt.c.task_id)
)
_UNFINISHED = [TaskState.QUEUED, TaskState.LEASED, TaskState.SPLIT, TaskState.HELD, TaskState.CHECKING]
cancel_tasks = (
    update(task)
    .where(task.c.job_id == jid, task.c.state.in_(_UNFINISHED))
    .values(state=TaskState.CANCELLED, updated_at=now)
)
# Their holders learn it at the next heartbeat (409).
stop_attempts = (
    update(attempt)
    .where(attempt.c.task_id.in_(select(task.c.id).where(task.c.job_id == jid)), attempt.c.state == AttemptState.ACTIVE)
    .values(state=AttemptState.SUPERSEDED, finished_at=now)
)
drop_attempts = delete(attempt).where(attempt.c.task_id.in_(select(task.c.id).where(task.c.job_id == jid)))
drop_tasks = delete(task).where(task.c.job_id == jid)
drop_job = delete(job).where(job.c.id == jid)
# Once only, whichever process sees the end first.
claim_callback = (
    update(job)
    .where(job.c.id == jid, job.c.callback_sent.is_(False))
    .values(callback_sent=True)
    .returning(job.c.callback_url, job.c.callback_secret)
)
