"""Optional built-in authentication: API tokens and/or basic-auth users with hashed passwords.

With none configured the server trusts its proxy (Caddy basic auth), and admin routes are off.
Credentials only: it reads an `Authorization` header's value and knows nothing of HTTP otherwise
(http/errors.py turns its errors into 401 and 403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

PBKDF2_ITERATIONS = 200_000


@dataclass(frozen=True)
class Principal:
    name: str
    admin: bool = False


ANONYMOUS = Principal("anonymous")


class Unauthenticated(Exception):
    """No credentials, or wrong ones."""

    def __init__(self) -> None:
        super().__init__("missing or wrong credentials")


class Forbidden(Exception):
    """Known credentials that may not do this."""


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


def load_users(path: Path) -> dict[str, tuple[str, bool]]:
    """Lines `name:pbkdf2_sha256$...[:admin]`; `#` comments."""
    users = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        encoded, _, role = rest.partition(":")
        users[name] = (encoded, role.strip() == "admin")
    return users


class Authenticator:
    def __init__(self, tokens: dict[str, str], admin_tokens: frozenset[str], users_file: Optional[Path]):
        self.tokens = dict(tokens)
        self.admin_tokens = admin_tokens
        self.users = load_users(users_file) if users_file else {}
        self.enabled = bool(self.tokens or self.admin_tokens or self.users)
        self._verified: dict[bytes, Principal] = {}  # sha256(header) -> principal, spares PBKDF2 per request

    def _token(self, token: str) -> Optional[Principal]:
        found = None
        for known in self.admin_tokens:  # compare against every token: no early exit to time
            if hmac.compare_digest(known.encode(), token.encode()):
                found = Principal("admin", admin=True)
        for known, name in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = found or Principal(name)
        return found

    def _basic(self, header: str, value: str) -> Optional[Principal]:
        key = hashlib.sha256(header.encode()).digest()
        if key in self._verified:
            return self._verified[key]
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        encoded, admin = self.users.get(user, (hash_password("x", 1), False))
        if not verify_password(password, encoded) or user not in self.users:
            return None
        if len(self._verified) > 1024:
            self._verified.clear()
        self._verified[key] = principal = Principal(user, admin)
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

    def require_admin(self, header: str) -> Principal:
        if not self.admin_tokens and not any(admin for _, admin in self.users.values()):
            raise Forbidden(
                "admin actions over HTTP are off: set ADMIN_TOKENS or add an admin user "
                "(or use the stt-server CLI on the server)"
            )
        principal = self.identify(header)
        if not principal.admin:
            raise Forbidden("admin credentials required")
        return principal
