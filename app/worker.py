"""The background worker loop: runs every domain's periodic jobs.

It runs inside the server in the embedded setup and as `suishen worker` in production.
With several processes, a short lease in the key-value store makes each job run in
one process per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

from app.context import AppContext
from app.domain import Job

log = logging.getLogger("suishen.worker")


async def run_job_once(ctx: AppContext, job: Job) -> int | None:
    """Run `job` if no other process holds its lease; None when skipped."""
    lease = ctx.kv.keys.key("worker", "lease", job.name)
    owner = f"{os.getpid()}"
    if not await ctx.kv.set_if_absent(lease, owner, ttl_ms=max(1000, int(job.every_s * 1000))):
        return None
    return await job.run(ctx)


async def run_worker(ctx: AppContext, jobs: Sequence[Job], stop: asyncio.Event) -> None:
    next_run = {job.name: 0.0 for job in jobs}
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        now = loop.time()
        for job in jobs:
            if now < next_run[job.name]:
                continue
            next_run[job.name] = now + job.every_s
            try:
                handled = await run_job_once(ctx, job)
                if handled:
                    log.info("job %s handled %d", job.name, handled)
            except Exception:
                log.exception("job %s failed; it runs again in %.0fs", job.name, job.every_s)
        wait = min((t for t in next_run.values()), default=now + 1.0) - loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.05, min(wait, 1.0)))
