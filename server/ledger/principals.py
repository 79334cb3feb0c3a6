"""API tokens with roles, kept as SHA-256 digests: the ledger's side of `stt-server token` and of
auth.Authenticator's TokenStore (the roles themselves are auth's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from .database import Database
from .errors import LedgerError
from .sql import principals as sql


@dataclass(frozen=True)
class PrincipalView:
    name: str
    role: str
    created_at: float
    revoked_at: Optional[float]


class Principals:
    def __init__(self, db: Database, clock: Callable[[], float]):
        self.db = db
        self.clock = clock

    def find(self, digest: str) -> Optional[tuple[str, str]]:
        """(name, role) of the live token with this digest."""
        with self.db.reading() as c:
            row = c.execute(sql.find, {"digest": digest}).first()
        return (row.name, row.role) if row else None

    def exist(self) -> bool:
        with self.db.reading() as c:
            return c.execute(sql.any_active).first() is not None

    def add(self, name: str, role: str, digest: str) -> None:
        """LedgerError if `name` has a live token (revoke it first)."""
        now = self.clock()
        with self.db.writing() as c:
            row = c.execute(sql.by_name, {"pname": name}).first()
            if row is None:
                c.execute(sql.add, {"name": name, "role": role, "token_sha256": digest, "created_at": now})
            elif row.revoked_at is None:
                raise LedgerError(f"{name} has a token already: revoke it first (stt-server token revoke {name})")
            else:
                c.execute(sql.renew, {"pname": name, "new_role": role, "new_digest": digest, "new_at": now})

    def revoke(self, name: str) -> bool:
        with self.db.writing() as c:
            return bool(c.execute(sql.revoke, {"pname": name, "now": self.clock()}).rowcount)

    def listing(self) -> list[PrincipalView]:
        with self.db.reading() as c:
            return [PrincipalView(r.name, r.role, r.created_at, r.revoked_at) for r in c.execute(sql.listing)]
