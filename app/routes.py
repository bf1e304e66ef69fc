"""System endpoints: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise.context import TortoiseContext

from app.context import app_context
from app.errors import DependencyUnavailable
from app.http import endpoint, json_response
from app.schemas import Health, Readiness

HEALTHY_BODY = b'{"status":"ok"}'


@endpoint(summary="Liveness: the process answers (no I/O)", response=Health, tags=["system"])
async def healthz(request: Request) -> Response:
    return Response(HEALTHY_BODY, media_type="application/json")


async def _check_db(db: TortoiseContext) -> None:
    await db.db("default").execute_query("SELECT 1")


@endpoint(
    summary="Readiness: database and key-value store reachable",
    response=Readiness,
    errors=[DependencyUnavailable],
    tags=["system"],
)
async def readyz(request: Request) -> Response:
    ctx = app_context(request)
    checks: dict[str, str] = {}
    db: TortoiseContext = request.app.state.db
    for name, probe in (("database", _check_db(db)), ("kv", ctx.kv.ping())):
        try:
            await asyncio.wait_for(probe, timeout=1.0)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is named, not leaked
            checks[name] = f"down: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = Readiness(status="ok" if ok else "unavailable", checks=checks)
    if ok:
        return json_response(body)
    problem = DependencyUnavailable(
        "not ready: " + ", ".join(k for k, v in checks.items() if v != "ok")
    )
    return json_response(
        {**problem.body(), "checks": checks},
        status=503,
        headers={"content-type": "application/problem+json"},
    )


@endpoint(summary="Prometheus metrics", media_types=["text/plain"], tags=["system"])
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


@endpoint(summary="This document", tags=["system"])
async def openapi(request: Request) -> Response:
    return Response(request.app.state.openapi.json, media_type="application/json")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
