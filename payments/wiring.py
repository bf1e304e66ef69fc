"""How the payments domain plugs into the application: routes, runtime, jobs, demo hospital."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from app.domain import Domain, Job
from payments import invoice_routes, tasks
from payments.config import PaymentsRuntime
from payments.hospitals import create_hospital
from payments.routes import routes


async def startup(ctx: AppContext) -> None:
    ctx.provide(PaymentsRuntime.from_settings(ctx.settings, ctx.keys.secrets.get("webhooks")))
    await invoice_routes.startup(ctx)  # e-invoices, credit limits, family credit


async def seed_demo(ctx: AppContext, credentials: dict[str, Any]) -> dict[str, Any]:
    registered = await create_hospital(ctx, "闵行区中心医院 (demo)", actor="seed-demo")
    creds = registered.credentials
    client = {"client_id": creds.client_id, "client_secret": creds.client_secret}
    return {"hospital": {"id": registered.hospital.id, "client": client}}


DOMAIN = Domain(
    name="payments",
    routes=[*routes, *invoice_routes.routes],
    startup=startup,
    jobs=[
        Job("payments-auto-close", 60, tasks.auto_close_stale),
        # A settlement the bureau left unanswered, or a crash interrupted, is asked again.
        Job("payments-bureau", 5, tasks.finish_bureau_settlements),
        Job("payments-daily-batch", 60, tasks.run_daily_batches),
        # Every few seconds: a crashed process's collection is resumed soon after its lease.
        Job("payments-resume-collections", 3, tasks.resume_collections),
        Job("payments-collections", 30, tasks.run_collections),
        Job("payments-webhooks", 5, tasks.deliver_webhooks),
        *invoice_routes.jobs,
    ],
    seed_demo=seed_demo,
)
