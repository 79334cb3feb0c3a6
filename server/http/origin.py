"""Refuse state-changing requests that a browser sends from another site.

Browsers resend basic-auth credentials to any page's requests, so without this a page elsewhere
could requeue finished files or cancel jobs with the operator's login. Browsers say where a request
comes from (`Sec-Fetch-Site`, `Origin`); clients that are not browsers send neither and pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def cross_site(headers: dict[bytes, bytes]) -> str:
    """Why a browser's request comes from another site, or "" if it does not."""
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1").lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    origin = headers.get(b"origin")
    if origin is None:
        return ""
    text = origin.decode("latin-1")
    host = headers.get(b"host", b"").decode("latin-1").lower()
    if text == "null" or urlsplit(text).netloc.lower() != host:
        return f"Origin {text} is not this server ({host})"
    return ""


class SameOriginMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            why = cross_site(dict(scope.get("headers") or []))
            if why:
                detail = f"cross-site request refused ({why}): use this server's own pages or a non-browser client"
                return await JSONResponse({"detail": detail}, 403)(scope, receive, send)
        await self.app(scope, receive, send)
