"""How the codes domain plugs into the application: routes, runtime, the revocation purge."""

from __future__ import annotations

from app.context import AppContext
from app.domain import Domain, Job
from codes.config import CodesRuntime
from codes.routes import routes
from codes.tasks import purge_revocations


async def startup(ctx: AppContext) -> None:
    ctx.provide(CodesRuntime.build(ctx))


DOMAIN = Domain(
    name="codes",
    routes=routes,
    startup=startup,
    jobs=[Job("codes-purge-revocations", 3600, purge_revocations)],
    # 10,000 entries of up to ~660 bytes each (64-char subject id, 500-char reason).
    body_limits={"/v1/health-status:batch": 8 * 1024 * 1024},
)
