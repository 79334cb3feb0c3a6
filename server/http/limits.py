"""Refuse request bodies over a limit while they stream in, so memory stays bounded; and time every
request for the metrics (by route template, so ids do not make a label each)."""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import errors


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(
            413, f"request body over the limit of {limit} bytes (MAX_RESULT_BYTES; uploads: MAX_UPLOAD_BYTES)"
        )


class BodyLimitMiddleware:
    """`limit` for every request body, `upload_limit` for uploads (POST to one of `upload_paths`)."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int = 0, upload_paths: tuple[str, ...] = ()):
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["method"] == "POST" and scope["path"] in self.upload_paths and self.upload_limit
        return await self._limited(scope, receive, send, self.upload_limit if upload else self.limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                return await JSONResponse({"detail": "invalid Content-Length"}, 400)(scope, receive, send)
            if too_big:
                content = errors.body(scope["path"], 413, BodyTooLarge(limit).detail)
                return await JSONResponse(content, 413, headers={"Connection": "close"})(scope, receive, send)
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


class Slots:
    """At most `size` holders at once, taken without waiting: a request that finds none free is
    refused (429) rather than queued behind the others. One per app: the event loop is its only user."""

    def __init__(self, size: int):
        self.size = size
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.size:
            return False
        self.taken += 1
        return True

    def give(self) -> None:
        self.taken -= 1


class LatencyMiddleware:
    def __init__(self, app: ASGIApp, histogram: Histogram):
        self.app = app
        self.histogram = histogram
        self._series: dict[tuple[str, str], Histogram] = {}  # (method, route) -> its series: labels() is slow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (scope["method"], template)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = self.histogram.labels(*key)
            series.observe(time.perf_counter() - started)
