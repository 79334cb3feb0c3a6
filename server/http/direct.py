"""The client daemons' two hot routes, served without FastAPI's generic request handling.

A lease and its result are nearly all of the server's requests. FastAPI reads each one's
dependencies, parameters and body from the endpoint's signature and validates its answer against
the response model, generically, on every request: a quarter of the server's CPU for a cycle
(`scripts/bench_app.py --compare-routes`). These
routes keep their FastAPI declaration (the OpenAPI schema, the 422s' shape, the same endpoint
function) but are served by a handler written for each that resolves the same dependencies itself
(`APIRoute.get_route_handler`, the hook FastAPI has for custom route classes). A route whose
declaration needs something its handler does not resolve refuses to be built, so a dependency
added to the router or the endpoint later cannot be skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, TypeVar

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
M = TypeVar("M", bound=BaseModel)


class Direct(APIRoute):
    handler: ClassVar[Handler]
    resolves: ClassVar[frozenset[Callable[..., Any]]]  # the dependencies `handler` calls itself

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any):
        super().__init__(path, endpoint, **kwargs)
        needs = _calls(self.dependant)
        d = self.dependant
        if needs != self.resolves or d.query_params or d.header_params or d.cookie_params:
            raise TypeError(
                f"{path}: its handler resolves {sorted(c.__name__ for c in self.resolves)}, "
                f"the route needs {sorted(c.__name__ for c in needs)} and no query, header or cookie parameters"
            )

    def get_route_handler(self) -> Handler:
        return type(self).handler


def direct(handler: Handler, *resolves: Callable[..., Any]) -> type[APIRoute]:
    """A route class for one endpoint, served by `handler`, which calls `resolves` itself."""
    attributes = {"handler": staticmethod(handler), "resolves": frozenset(resolves)}
    return type(f"Direct_{handler.__name__}", (Direct,), attributes)


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            found.add(sub.call)
        found |= _calls(sub)
    return found


def parsed(adapter: TypeAdapter[Any], value: Any, where: tuple[str, ...]) -> Any:
    """A parameter validated: a 422 that names it as FastAPI's would."""
    try:
        return adapter.validate_python(value, from_attributes=True)
    except ValidationError as e:
        raise _invalid(e, where) from None


async def body(request: Request, model: type[M]) -> M:
    """The JSON body as `model`; the 422s FastAPI gives for a missing body, another content type, bad JSON."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if not (kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))):
        message = "Input should be a valid dictionary or object to extract fields from"
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "msg": message}])
    try:  # parsed, then validated, as FastAPI does: the same errors for the same mistakes
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": e.msg}}]) from None
    except ValueError:  # not UTF-8
        raise HTTPException(400, "There was an error parsing the body") from None
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as e:
        raise _invalid(e, ("body",)) from None


def _invalid(e: ValidationError, where: tuple[str, ...]) -> RequestValidationError:
    return RequestValidationError([{**error, "loc": (*where, *error["loc"])} for error in e.errors(include_url=False)])


def answer(model: BaseModel) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), media_type="application/json")


def generic(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The same routes with FastAPI's own handling in place of each Direct handler: what the tests
    and scripts/bench_app.py compare them with."""
    return [
        APIRoute(
            r.path,
            r.endpoint,
            methods=r.methods,
            status_code=r.status_code,
            response_model=r.response_model,
            dependencies=r.dependencies,
            responses=r.responses,
            openapi_extra=r.openapi_extra,
        )
        if isinstance(r, Direct)
        else r
        for r in routes
    ]
