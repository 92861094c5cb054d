"""Candidate: uvicorn (httptools, uvloop) + Starlette routes calling the same InferenceApp.

uvicorn --loop uvloop --http httptools benchmarks.serving_candidates.starlette_app:app
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from benchmarks.serving_candidates.common import load_app

_app = load_app()


async def ping(request: Request) -> Response:
    answer = _app.ping()
    return Response(answer.body, answer.status, media_type=answer.content_type.decode())


async def invocations(request: Request) -> Response:
    body = await request.body()
    answer = _app.invocations(request.headers.get("content-type"), request.headers.get("accept"), body)
    return Response(answer.body, answer.status, media_type=answer.content_type.decode())


app = Starlette(routes=[Route("/ping", ping), Route("/invocations", invocations, methods=["POST"])])
