"""The volunteers' table: what each gave, for everyone the server knows (ledger/volunteers.py)."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from ..auth import Principal
from .deps import Ctx, authenticated, credited
from .schemas import CLIENT_NAME, Message, VolunteerOut, VolunteersOut

router = APIRouter(prefix="/api/v1", tags=["volunteers"], responses={401: {"model": Message}})


@router.get("/volunteers", response_model=VolunteersOut)
async def volunteers(
    ctx: Ctx,
    who: Annotated[Principal, Depends(authenticated)],
    host: Annotated[Optional[str], Query(pattern=CLIENT_NAME, description="behind a proxy alone: this host")] = None,
) -> VolunteersOut:
    """Every volunteer with a delivered result, most audio hours first; `you`: the caller's line
    (by its credentials, or behind a proxy alone by `host`)."""
    board = await run_in_threadpool(ctx.ledger.volunteers.board)
    me = credited(who) or host
    rows = [
        VolunteerOut(
            rank=i,
            name=v.name,
            audio_hours=v.audio_hours,
            results=v.results,
            valid_results=v.valid_results,
            recent_hours_per_day=v.recent_hours_per_day,
            hosts=v.hosts,
            backends=list(v.backends),
        )
        for i, v in enumerate(board, 1)
    ]
    you = next((row.rank for row, v in zip(rows, board, strict=True) if me is not None and v.key == me), None)
    return VolunteersOut(volunteers=rows, you=you)
