"""`GET /healthz` through suishen's full stack (middleware, metrics, JSON access log) vs a
bare Starlette route returning the same bytes under the same uvicorn settings."""

from __future__ import annotations

import httpx

from bench.harness import BenchError, BenchOptions, Report, Row, Server, run_wrk

GOAL_RATIO = 0.85


def run(opts: BenchOptions) -> Report:
    rows: list[Row] = []
    bodies: dict[str, bytes] = {}
    # One server at a time, so each has core 0 to itself.
    for label, server in (("bare", Server.bare()), ("suishen", Server.suishen(opts))):
        with server:
            bodies[label] = httpx.get(server.url("/healthz")).content
            result = run_wrk(
                server.url("/healthz"),
                duration_s=opts.duration_s,
                warmup_s=opts.warmup_s,
                connections=opts.connections,
                threads=opts.threads,
            )
            if not result.ok:
                raise BenchError(f"{label}: {result.non_2xx} non-2xx, {result.errors} errors")
            rows.append(Row(label, result))
    if bodies["bare"] != bodies["suishen"]:
        raise BenchError(f"the baseline answers other bytes: {bodies!r}")
    return Report(
        title="platform: GET /healthz, full stack vs bare Starlette",
        rows=rows,
        baseline="bare",
        measured="suishen",
        goal_ratio=GOAL_RATIO,
    )
