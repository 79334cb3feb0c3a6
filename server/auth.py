"""Optional built-in authentication: who a request's credentials name, and with which role.

Credentials come from four places: API tokens in the database (`stt-server token add`, stored as
SHA-256 digests), `AUTH_TOKENS` and `ADMIN_TOKENS` in the settings, and basic-auth users with
PBKDF2-hashed passwords (`AUTH_USERS_FILE`). With none of them the server trusts its proxy (Caddy
basic auth): every request is ANONYMOUS, every job everyone's, and admin routes are off.
Credentials only: it reads an `Authorization` header's value and knows nothing of HTTP otherwise
(http/errors.py turns its errors into 401 and 403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional, Protocol

PBKDF2_ITERATIONS = 200_000
CACHE_SECONDS = 5.0  # a token revoked in the database stops working within this


class Role(str, Enum):
    VOLUNTEER = "volunteer"  # leases, heartbeats, results and errors: a client daemon
    SUBMITTER = "submitter"  # jobs: submit, follow, fetch, cancel and delete its own
    ADMIN = "admin"  # everything, every job

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    anonymous: bool = False  # built-in auth is off: the proxy decided who may come in

    @property
    def admin(self) -> bool:
        return self.role == Role.ADMIN

    def may(self, role: Role) -> bool:
        return self.anonymous or self.role in (role, Role.ADMIN)

    @property
    def owner(self) -> Optional[str]:
        """Whose jobs this principal sees and records as its own (None: every job)."""
        return None if self.admin or self.anonymous else self.name


ANONYMOUS = Principal("anonymous", Role.SUBMITTER, anonymous=True)


class Unauthenticated(Exception):
    """No credentials, or wrong ones."""

    def __init__(self) -> None:
        super().__init__("missing or wrong credentials")


class Forbidden(Exception):
    """Known credentials that may not do this."""


class TokenStore(Protocol):
    """The tokens in the database (the ledger's Principals)."""

    def find(self, digest: str) -> Optional[tuple[str, str]]: ...  # (name, role)

    def exist(self) -> bool: ...


def new_token() -> str:
    return "stt_" + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the database keeps of a token: tokens are random (32 bytes), so a plain hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}: one of {', '.join(r.value for r in Role)}") from None


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        algo, iterations, salt, digest = encoded.split("$")
        if algo != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(candidate, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


def load_users(path: Path) -> dict[str, tuple[str, Role]]:
    """Lines `name:pbkdf2_sha256$...[:role]` (volunteer when no role is given); `#` comments."""
    users = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        encoded, _, role = rest.partition(":")
        try:
            users[name] = (encoded, parse_role(role or Role.VOLUNTEER.value))
        except ValueError as e:
            raise ValueError(f"{path} line {number}: {e}") from None
    return users


class Authenticator:
    def __init__(
        self,
        tokens: dict[str, tuple[str, Role]],  # token -> (name, role), from the settings
        users_file: Optional[Path] = None,
        store: Optional[TokenStore] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.tokens = dict(tokens)
        self.users = load_users(users_file) if users_file else {}
        self.store = store
        self.clock = clock
        self._verified: dict[bytes, Principal] = {}  # sha256(header) -> principal, spares PBKDF2 per request
        self._found: dict[str, tuple[float, Optional[Principal]]] = {}  # digest -> (until, principal)
        self._stored: tuple[float, bool] = (0.0, False)  # (until, whether the database has tokens)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens or self.users) or self._store_has_tokens()

    def _store_has_tokens(self) -> bool:
        if self.store is None:
            return False
        now = self.clock()
        until, exist = self._stored
        if now >= until:
            exist = self.store.exist()
            self._stored = (now + CACHE_SECONDS, exist)
        return exist

    def _token(self, token: str) -> Optional[Principal]:
        found = None
        for known, (name, role) in self.tokens.items():  # compare against every token: no early exit to time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = Principal(name, role)
        if found is None and self.store is not None:
            found = self._stored_token(self.store, token_digest(token))
        return found

    def _stored_token(self, store: TokenStore, digest: str) -> Optional[Principal]:
        now = self.clock()
        until, principal = self._found.get(digest, (0.0, None))
        if now >= until:
            row = store.find(digest)
            principal = Principal(row[0], Role(row[1])) if row else None
            if len(self._found) > 4096:
                self._found.clear()
            self._found[digest] = (now + CACHE_SECONDS, principal)
        return principal

    def _basic(self, header: str, value: str) -> Optional[Principal]:
        key = hashlib.sha256(header.encode()).digest()
        if key in self._verified:
            return self._verified[key]
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        encoded, role = self.users.get(user, (hash_password("x", 1), Role.VOLUNTEER))
        if not verify_password(password, encoded) or user not in self.users:
            return None
        if len(self._verified) > 1024:
            self._verified.clear()
        self._verified[key] = principal = Principal(user, role)
        return principal

    def identify(self, header: str) -> Principal:
        """Who the `Authorization` header's value names (Unauthenticated if nobody)."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, value = header.partition(" ")
        principal = None
        if scheme.lower() == "bearer" and value:
            principal = self._token(value.strip())
        elif scheme.lower() == "basic" and value and self.users:
            principal = self._basic(header, value.strip())
        if principal is None:
            raise Unauthenticated()
        return principal

    def require(self, header: str, role: Role) -> Principal:
        """The principal, if its role allows `role`'s routes (Forbidden otherwise)."""
        principal = self.identify(header)
        if role == Role.ADMIN and principal.anonymous:
            raise Forbidden(
                "admin actions over HTTP are off: add an admin token (stt-server token add NAME --role admin) "
                "or an admin user (or use the stt-server CLI on the server)"
            )
        if not principal.may(role):
            raise Forbidden(f"{principal.name} is a {principal.role.value}: this needs the {role.value} role")
        return principal
