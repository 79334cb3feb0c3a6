"""The stack's ceiling for scripts/loadtest.py --ceiling: FastAPI + uvicorn parsing the same two
requests as a lease -> result cycle (a JSON lease request, a multipart result), with no ledger,
no database and no files. The real server's cycles/s divided by this app's is the figure to watch."""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request

from server.http.schemas import LeaseRequest, ResultMeta

app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})  # as the server runs


@app.get("/health/ready")
def ready() -> dict:
    return {"status": "ready"}


@app.post("/api/v1/leases")
def lease(req: LeaseRequest) -> dict:
    token = secrets.token_urlsafe(24)
    return {"task_id": secrets.token_hex(8), "token": token, "client": req.client}


@app.post("/api/v1/leases/{token}/result")
async def result(token: str, request: Request) -> dict:
    form = await request.form(max_files=8, max_fields=8)
    try:
        ResultMeta.model_validate_json(str(form["meta"]))
        part = form["txt"]
        data = part.encode() if isinstance(part, str) else await part.read()
        data.decode("utf-8")
    finally:
        await form.close()
    return {"task_id": token[:16], "status": "accepted", "late": False}
