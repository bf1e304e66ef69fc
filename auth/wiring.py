"""How the auth domain plugs into the application."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from app.domain import Command, Domain
from auth import store
from auth.clients import create_client
from auth.commands import add_client_arguments, run_clients
from auth.config import AuthRuntime
from auth.routes import routes


async def startup(ctx: AppContext) -> None:
    runtime = AuthRuntime.build(ctx)
    ctx.provide(runtime)
    runtime.marks_follower = store.follow_marks(ctx)


async def shutdown(ctx: AppContext) -> None:
    await ctx.runtime(AuthRuntime).close()


async def seed_demo(ctx: AppContext, existing: dict[str, Any]) -> dict[str, Any]:
    """An admin and a health-status authority client for demo-credentials.json."""
    part: dict[str, Any] = {}
    for kind in ("admin", "authority"):
        creds = await create_client(ctx, kind, None, actor="seed-demo")
        part[kind] = {"client_id": creds.client_id, "client_secret": creds.client_secret}
    return part


DOMAIN = Domain(
    name="auth",
    routes=routes,
    startup=startup,
    shutdown=shutdown,
    seed_demo=seed_demo,
    commands=(
        Command(
            name="clients",
            help="manage machine clients: clients create --kind K [--tenant ID] --json",
            add_arguments=add_client_arguments,
            run=run_clients,
        ),
    ),
)
