"""Candidate: granian (Rust HTTP, RSGI interface) calling the same InferenceApp.

granian --interface rsgi --loop uvloop --workers 1 benchmarks.serving_candidates.granian_app:app
"""

from __future__ import annotations

from typing import Any

from benchmarks.serving_candidates.common import load_app

_app = load_app()


async def app(scope: Any, protocol: Any) -> None:
    headers = scope.headers
    body = await protocol() if scope.method == "POST" else b""
    answer = _app.handle(
        scope.method.encode(), scope.path.encode(), headers.get("content-type"), headers.get("accept"), body
    )
    protocol.response_bytes(answer.status, [("content-type", answer.content_type.decode())], answer.body)
