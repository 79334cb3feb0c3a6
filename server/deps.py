"""Every FastAPI dependency the routes use, in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .auth import Principal
from .context import Context


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


def authenticated(request: Request) -> Principal:
    return get_context(request).auth.identify(request)


def admin(request: Request) -> Principal:
    return get_context(request).auth.require_admin(request)


Ctx = Annotated[Context, Depends(get_context)]
