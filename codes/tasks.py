"""Background jobs of the codes domain: purging revocation entries no gate can still need."""

from __future__ import annotations

from datetime import timedelta

from app.context import AppContext
from codes.models import CodeRevocation


async def purge_revocations(ctx: AppContext) -> int:
    # A revocation entry names codes that expired at `not_after`; a day later no gate
    # that synced in between can still need it.
    cutoff = ctx.clock.now() - timedelta(days=1)
    deleted: int = await CodeRevocation.filter(not_after__lt=cutoff).delete()
    return deleted
