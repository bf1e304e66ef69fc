"""System endpoints: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

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


# Both checks run at once and the answer is given by this deadline whatever they do: a
# black-holed dependency must not hold a load balancer's probe past its documented 1 s.
READY_TIMEOUT_S = 0.9
_abandoned: set[asyncio.Task[None]] = set()


async def _check_db(db: TortoiseContext) -> None:
    await db.db("default").execute_query("SELECT 1")


def _reap(task: asyncio.Task[None]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def _run_checks(probes: dict[str, Coroutine[Any, Any, None]]) -> dict[str, str]:
    tasks = {name: asyncio.ensure_future(probe) for name, probe in probes.items()}
    await asyncio.wait(tasks.values(), timeout=READY_TIMEOUT_S)
    checks: dict[str, str] = {}
    for name, task in tasks.items():
        if not task.done():
            # Not awaited: a cancelled query may take its own time to clean up.
            task.cancel()
            _abandoned.add(task)
            task.add_done_callback(_reap)
            checks[name] = "down: TimeoutError"
        elif (exc := task.exception()) is not None:
            checks[name] = f"down: {type(exc).__name__}"
        else:
            checks[name] = "ok"
    return checks


@endpoint(
    summary="Readiness: database and key-value store reachable",
    response=Readiness,
    errors=[DependencyUnavailable],
    tags=["system"],
)
async def readyz(request: Request) -> Response:
    ctx = app_context(request)
    db: TortoiseContext = request.app.state.db
    # Any failure means not ready; the reason is named, not leaked.
    checks = await _run_checks({"database": _check_db(db), "kv": ctx.kv.ping()})
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
