"""`GET /healthz` through suishen's full stack (middleware, metrics, JSON access log) vs a
bare Starlette route returning the same bytes under the same uvicorn settings."""

from __future__ import annotations

from contextlib import ExitStack

import httpx

from bench.harness import BenchError, BenchOptions, Report, Server, WrkResult, best_of, drive

GOAL_RATIO = 0.85


def run(opts: BenchOptions) -> Report:
    with ExitStack() as stack:
        # Both listen at once, both pinned to core 0; only the one being driven works.
        bare = stack.enter_context(Server.bare())
        suishen = stack.enter_context(Server.suishen(opts))
        bodies = {s.name: httpx.get(s.url("/healthz")).content for s in (bare, suishen)}
        if bodies["bare"] != bodies["suishen"]:
            raise BenchError(f"the baseline answers other bytes: {bodies!r}")

        def measure(server: Server) -> WrkResult:
            return drive(server, opts, "/healthz")

        rows = best_of(
            {"bare": lambda: measure(bare), "suishen": lambda: measure(suishen)}, opts.rounds
        )
    return Report(
        title="platform: GET /healthz, full stack vs bare Starlette",
        rows=rows,
        baseline="bare",
        measured="suishen",
        goal_ratio=GOAL_RATIO,
        notes=["the full stack writes one JSON access line per request (LOG_FORMAT=json)"],
    )
