"""The daemons' two hot routes are served by handlers of their own (server/http/direct.py): they
answer as FastAPI's generic handling of the same declarations does, and a declaration that needs
more than its handler resolves is refused when the route is built."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from server.http.deps import Ctx, get_context, volunteer
from server.http.direct import Direct, direct, generic
from tests.helpers import copy_audio

TOKEN = "A" * 24
JSON = {"headers": {"Content-Type": "application/json"}}
RESULT = {"data": {"meta": "{}"}, "files": {"txt": ("t", b"x")}}
BAD = [
    ("/api/v1/leases", {}),
    ("/api/v1/leases", {"content": b'{"client": "a"}', "headers": {"Content-Type": "text/plain"}}),
    ("/api/v1/leases", {"content": b'{"client": "a"}'}),
    ("/api/v1/leases", {"content": b"{not json", **JSON}),
    ("/api/v1/leases", {"content": b"\xff\xfe", **JSON}),
    ("/api/v1/leases", {"json": [1, 2]}),
    ("/api/v1/leases", {"json": {"client": "../evil"}}),
    ("/api/v1/leases", {"json": {"client": "a", "capabilities": {"threads": -1}}}),
    ("/api/v1/leases", {"json": {"client": "a", "capabilities": {"rtf": "fast"}}}),
    ("/api/v1/leases", {"content": b'{"client": "a", "capabilities": {"rtf": 1e999}}', **JSON}),
    ("/api/v1/leases/short/result", RESULT),
    (f"/api/v1/leases/{'A' * 65}/result", RESULT),
    ("/api/v1/leases/..%2F..%2Fetc%2Fpasswd%2Fxx/result", RESULT),
    (f"/api/v1/leases/{TOKEN}/result", {"files": {"txt": ("t", b"x")}}),
    (f"/api/v1/leases/{TOKEN}/result", {"data": {"meta": "{}"}}),
    (f"/api/v1/leases/{TOKEN}/result", {"content": b"x", "headers": {"Content-Type": "text/plain"}}),
    (f"/api/v1/leases/{TOKEN}/result", RESULT),  # no such lease: 404
]


def shape(r) -> tuple:
    detail = r.json()["detail"]
    if isinstance(detail, list):  # a 422's errors: what and where (not the messages' wording)
        detail = [(e["type"], tuple(e["loc"])) for e in detail]
    return r.status_code, detail


@pytest.mark.parametrize("path,kwargs", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_requests_are_answered_as_fastapi_would(api, path, kwargs):
    fast, slow = api(), api()
    slow.app.router.routes[:] = generic(slow.app.router.routes)
    assert sum(isinstance(r, Direct) for r in fast.app.router.routes) == 2
    assert not any(isinstance(r, Direct) for r in slow.app.router.routes)
    mine, theirs = fast.post(path, **kwargs), slow.post(path, **kwargs)
    assert 400 <= mine.status_code < 500
    assert shape(mine) == shape(theirs)


def test_a_lease_and_its_result_are_answered_as_fastapi_would(shared, api, tmp_path):
    copy_audio(shared, tmp_path / "audio", {"a.mp3": "jfk.mp3", "b.mp3": "jfk.mp3"})
    c = api()
    answers = []
    for served in ("direct", "generic"):
        if served == "generic":
            c.app.router.routes[:] = generic(c.app.router.routes)
        lease = c.post("/api/v1/leases", json={"client": f"box-{served}", "capabilities": {}})
        assert lease.status_code == 200 and lease.headers["content-type"] == "application/json"
        result = c.post(f"/api/v1/leases/{lease.json()['token']}/result", **RESULT)
        assert result.status_code == 200 and result.headers["content-type"] == "application/json"
        answers.append((lease.json(), result.json()))
    (lease_a, result_a), (lease_b, result_b) = answers
    assert set(lease_a) == set(lease_b) and lease_a["path"] != lease_b["path"]
    assert {k: v for k, v in lease_a.items() if v is None} == {k: v for k, v in lease_b.items() if v is None}
    assert (result_a["status"], result_b["status"]) == ("accepted", "accepted")
    assert set(result_a) == set(result_b)


def test_roles_are_checked_as_fastapi_would(api):
    tokens = "box1:box1-token-0123456789,alice:alice-token-0123456789:submitter"
    fast, slow = api(AUTH_TOKENS=tokens), api(AUTH_TOKENS=tokens)
    slow.app.router.routes[:] = generic(slow.app.router.routes)
    for path, kwargs in [("/api/v1/leases", {"json": {"client": "a"}}), (f"/api/v1/leases/{TOKEN}/result", RESULT)]:
        for headers, status in [
            ({}, 401),
            ({"Authorization": "Bearer wrong-token-0123456789"}, 401),
            ({"Authorization": "Bearer alice-token-0123456789"}, 403),  # a submitter leases nothing
            ({"Authorization": "Bearer box1-token-0123456789"}, 204 if path.endswith("leases") else 404),
        ]:
            mine, theirs = fast.post(path, headers=headers, **kwargs), slow.post(path, headers=headers, **kwargs)
            assert mine.status_code == theirs.status_code == status, (path, headers, mine.text)


def test_the_documentation_still_describes_both_routes(api):
    paths = api().get("/openapi.json").json()["paths"]
    lease = paths["/api/v1/leases"]["post"]
    assert lease["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/LeaseRequest")
    assert lease["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LeaseOut")
    result = paths["/api/v1/leases/{token}/result"]["post"]
    assert "multipart/form-data" in result["requestBody"]["content"]
    assert [p["name"] for p in result["parameters"]] == ["token"]


async def handler(request: Request) -> Response:
    return Response()


def test_a_route_that_needs_more_than_its_handler_resolves_is_not_built():
    router = APIRouter(dependencies=[Depends(volunteer)])

    async def needs_context(ctx: Ctx) -> None: ...

    async def needs_a_query(limit: int = 1) -> None: ...

    with pytest.raises(TypeError, match="get_context"):
        router.add_api_route("/a", needs_context, methods=["POST"], route_class_override=direct(handler, volunteer))
    with pytest.raises(TypeError, match="query"):
        router.add_api_route("/b", needs_a_query, methods=["POST"], route_class_override=direct(handler, volunteer))
    router.add_api_route("/c", needs_context, route_class_override=direct(handler, volunteer, get_context))
    assert isinstance(router.routes[-1], Direct)
