"""The platform's own background work, plugged in like a domain."""

from __future__ import annotations

from app.context import AppContext
from app.domain import Domain, Job
from app.idempotency import purge_expired


async def _purge_idempotency(ctx: AppContext) -> int:
    return await purge_expired(ctx)


DOMAIN = Domain(name="core", jobs=[Job("purge-idempotency-keys", 3600, _purge_idempotency)])
