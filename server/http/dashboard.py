"""The operator's page at `/`: server-rendered, refreshed by a few lines of script, behind the API's
authentication; requeue buttons for admins only.

Its forms carry a per-session token (a random value in a SameSite=Strict cookie, repeated in each
form): besides the origin check (origin.py), a form posted from anywhere but this page is refused.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..auth import Forbidden, Principal
from ..ops import overview
from .deps import Ctx, admin, authenticated

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)
Viewer = Annotated[Principal, Depends(authenticated)]


FORM_COOKIE = "stt_form"


async def _render(request: Request, ctx: Ctx, viewer: Principal, name: str, **extra: Any) -> Response:
    page = await run_in_threadpool(overview.gather, ctx.ledger, list(ctx.events.recent))
    token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    context = {
        "page": page,
        "user": viewer.name,
        "admin": viewer.admin,
        "live_url": request.url_for("dashboard_live").path,
        "requeue_url": request.url_for("dashboard_requeue", task_id="x").path[:-1],
        "form_token": token,
        **extra,
    }
    response = templates.TemplateResponse(request, name, context)
    if request.cookies.get(FORM_COOKIE) != token:
        response.set_cookie(FORM_COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


async def form_token(request: Request) -> None:
    """The form's token must be this browser session's (its cookie)."""
    sent = str((await request.form()).get("form_token") or "")
    cookie = request.cookies.get(FORM_COOKIE, "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        raise Forbidden("this form is not from this session's dashboard: reload the page and try again")


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, ctx: Ctx, viewer: Viewer) -> Response:
    notice = request.query_params.get("requeued")
    return await _render(request, ctx, viewer, "dashboard.html", notice=f"requeued {notice}" if notice else "")


@router.get("/dashboard/live", response_class=HTMLResponse, name="dashboard_live")
async def live(request: Request, ctx: Ctx, viewer: Viewer) -> Response:
    return await _render(request, ctx, viewer, "live.html")


@router.post(
    "/dashboard/requeue/{task_id}", name="dashboard_requeue", dependencies=[Depends(admin), Depends(form_token)]
)
async def requeue(task_id: str, ctx: Ctx) -> Response:
    """A form's POST: requeue, then back to the page (303, so a reload does not post again)."""
    await run_in_threadpool(ctx.ledger.catalogue.requeue, [task_id])
    ctx.wake()
    return RedirectResponse(f"/?requeued={task_id}", status_code=303)
