"""The named parameters and column lists every facet's statements share.

Building a SQLAlchemy statement per call cost more than running it, so each statement is a module
constant with named parameters (`:now`, `:tid`, ...): Core, not text, so it runs on SQLite and
PostgreSQL alike. Nothing outside server/ledger/ runs SQL; sql/run.py runs these cheaply.
"""

from __future__ import annotations

from sqlalchemy import Float, String, bindparam
from sqlalchemy.sql.elements import BindParameter

from ..tables import attempt, task
from ..values import AttemptView, TaskView

now = bindparam("now", type_=Float)
tid: BindParameter[str] = bindparam("tid", type_=String)
token: BindParameter[str] = bindparam("tok", type_=String)
TASK_VIEW = tuple(task.c[name] for name in TaskView.columns())
ATTEMPT_VIEW = tuple(attempt.c[name] for name in AttemptView.columns())
