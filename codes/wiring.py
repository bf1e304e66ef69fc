"""How the codes domain plugs into the application: routes, runtime, the revocation purge."""

from __future__ import annotations

from datetime import timedelta

from app.context import AppContext
from app.domain import Domain, Job
from codes import service
from codes.models import CodeRevocation
from codes.routes import routes


async def startup(ctx: AppContext) -> None:
    ctx.extensions[service.PURPOSE] = service.build_runtime(ctx)


async def purge_revocations(ctx: AppContext) -> int:
    # A revocation entry names codes that expired at `not_after`; a day later no gate
    # that synced in between can still need it.
    cutoff = ctx.clock.now() - timedelta(days=1)
    deleted: int = await CodeRevocation.filter(not_after__lt=cutoff).delete()
    return deleted


DOMAIN = Domain(
    name="codes",
    routes=routes,
    startup=startup,
    jobs=[Job("codes-purge-revocations", 3600, purge_revocations)],
    # 10,000 entries of up to ~660 bytes each (64-char subject id, 500-char reason).
    body_limits={"/v1/health-status:batch": 8 * 1024 * 1024},
)
