"""How the payments domain plugs into the application: routes, provider, jobs, demo hospital."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from app.domain import Domain, Job
from payments import service, webhooks
from payments.config import PaymentsConfig
from payments.provider import create_provider
from payments.routes import routes


async def startup(ctx: AppContext) -> None:
    ctx.extensions["payments"] = service.PaymentsRuntime(
        config=PaymentsConfig.from_extra(ctx.settings.extra),
        provider=create_provider(ctx.settings.payment_provider),
    )


async def seed_demo(ctx: AppContext, credentials: dict[str, Any]) -> dict[str, Any]:
    from auth import service as auth_service

    hospital = await service.create_hospital(ctx, "闵行区中心医院 (demo)")
    creds = await auth_service.create_client(ctx, "hospital", hospital.id, actor="seed-demo")
    client = {"client_id": creds.client_id, "client_secret": creds.client_secret}
    return {"hospital": {"id": hospital.id, "client": client}}


async def _deliver_webhooks(ctx: AppContext) -> int:
    return await webhooks.deliver_due(ctx)


DOMAIN = Domain(
    name="payments",
    routes=routes,
    startup=startup,
    jobs=[
        Job("payments-auto-close", 60, service.auto_close_stale),
        Job("payments-collections", 30, service.run_collections),
        Job("payments-webhooks", 5, _deliver_webhooks),
    ],
    seed_demo=seed_demo,
)
