"""The SQL of API tokens (principals.py)."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.sql.elements import BindParameter

from ..tables import principal

name: BindParameter[str] = bindparam("pname")
find = select(principal.c.name, principal.c.role).where(
    principal.c.token_sha256 == bindparam("digest"), principal.c.revoked_at.is_(None)
)
any_active = select(principal.c.name).where(principal.c.revoked_at.is_(None)).limit(1)
by_name = select(principal).where(principal.c.name == name)
listing = select(principal).order_by(principal.c.name)
add = insert(principal)
# A revoked name may be given a new token: the same person, and the jobs they own.
renew = (
    update(principal)
    .where(principal.c.name == name, principal.c.revoked_at.is_not(None))
    .values(role=bindparam("new_role"), token_sha256=bindparam("new_digest"), created_at=bindparam("new_at"),
            revoked_at=None)
)  # fmt: skip
revoke = (
    update(principal)
    .where(principal.c.name == name, principal.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
