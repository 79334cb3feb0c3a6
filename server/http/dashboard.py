"""The operator's page at `/`: server-rendered, refreshed by a few lines of script, behind the API's
authentication; requeue buttons for admins only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..auth import Principal
from ..ops import overview
from .deps import Ctx, admin, authenticated

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)
Viewer = Annotated[Principal, Depends(authenticated)]


async def _render(request: Request, ctx: Ctx, viewer: Principal, name: str, **extra: Any) -> Response:
    page = await run_in_threadpool(overview.gather, ctx.ledger, list(ctx.events.recent))
    context = {
        "page": page,
        "user": viewer.name,
        "admin": viewer.admin,
        "live_url": request.url_for("dashboard_live").path,
        "requeue_url": request.url_for("dashboard_requeue", task_id="x").path[:-1],
        **extra,
    }
    return templates.TemplateResponse(request, name, context)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, ctx: Ctx, viewer: Viewer) -> Response:
    notice = request.query_params.get("requeued")
    return await _render(request, ctx, viewer, "dashboard.html", notice=f"requeued {notice}" if notice else "")


@router.get("/dashboard/live", response_class=HTMLResponse, name="dashboard_live")
async def live(request: Request, ctx: Ctx, viewer: Viewer) -> Response:
    return await _render(request, ctx, viewer, "live.html")


@router.post("/dashboard/requeue/{task_id}", name="dashboard_requeue")
async def requeue(task_id: str, ctx: Ctx, _: Annotated[Principal, Depends(admin)]) -> Response:
    """A form's POST: requeue, then back to the page (303, so a reload does not post again)."""
    await run_in_threadpool(ctx.ledger.catalogue.requeue, [task_id])
    ctx.wake()
    return RedirectResponse(f"/?requeued={task_id}", status_code=303)
