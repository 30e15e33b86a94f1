"""The handler that answers an `UpstreamProblem`: the upstream status and body, with this
request's id and public path."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from api_gateway.upstream import UpstreamProblem
from conveyor_common.problems import PROBLEM_CONTENT_TYPE


def install_upstream_problem_handler(app: FastAPI) -> None:
    async def on_upstream_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamProblem)
        body = dict(exc.body)
        request_id = getattr(request.state, "request_id", None)
        if request_id is not None:
            body["request_id"] = request_id
        if "instance" in body:
            # The upstream's instance is an internal path the client never called.
            body["instance"] = request.url.path
        return JSONResponse(
            body, status_code=exc.status, media_type=PROBLEM_CONTENT_TYPE, headers=exc.headers
        )

    app.add_exception_handler(UpstreamProblem, on_upstream_problem)
