"""Database lifecycle: the Tortoise config, opening/closing, and the migration gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, _current_context
from tortoise.migrations.executor import MigrationExecutor, PlanStep

from app.settings import Settings

# App label -> models module. Each app has its own migrations package under migrations/.
APPS: dict[str, str] = {
    "core": "app.models",
    "auth": "auth.models",
    "codes": "codes.models",
    "venues": "venues.models",
    "payments": "payments.models",
}


class PendingMigrations(RuntimeError):
    """The database is behind the code's migrations; serving it would fail at random."""


def normalise_url(url: str) -> str:
    # asyncpg accepts postgresql://, Tortoise only knows the postgres:// scheme.
    if url.startswith("postgresql://"):
        return "postgres://" + url[len("postgresql://") :]
    return url


def tortoise_config(database_url: str) -> dict[str, Any]:
    url = normalise_url(database_url)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        connection: dict[str, Any] | str = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {
                "file_path": path,
                # WAL lets readers run beside the single writer; busy_timeout makes
                # concurrent writers queue instead of failing with "database is locked".
                "journal_mode": "WAL",
                "journal_size_limit": 16384,
                "foreign_keys": "ON",
                "busy_timeout": 10000,
            },
        }
    else:
        connection = url
    return {
        "connections": {"default": connection},
        "apps": {
            label: {
                "models": [module],
                "migrations": f"migrations.{label}",
                "default_connection": "default",
            }
            for label, module in APPS.items()
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def placeholders(conn: BaseDBAsyncClient, n: int) -> list[str]:
    """Parameter markers for hand-written SQL: `$1..$n` on PostgreSQL, `?` on SQLite."""
    if conn.capabilities.dialect == "postgres":
        return [f"${i}" for i in range(1, n + 1)]
    return ["?"] * n


async def open_db(settings: Settings) -> TortoiseContext:
    """Initialise Tortoise for this process. Queries from any task reach it (global fallback),
    which ASGI servers need: the lifespan runs in another task than the requests."""
    # Tortoise caches compiled INSERT/DELETE SQL per connection *name*, not per dialect:
    # a process that opens SQLite and later PostgreSQL (the test suite) must drop it.
    EXECUTOR_CACHE.clear()
    ctx = TortoiseContext()
    token = _current_context.set(ctx)
    try:
        await ctx.init(config=tortoise_config(settings.database_url), _enable_global_fallback=True)
    finally:
        _current_context.reset(token)
    return ctx


async def close_db(ctx: TortoiseContext) -> None:
    await ctx.close_connections()
    import tortoise.context as tc

    if tc._global_context is ctx:
        tc._global_context = None


async def pending_migrations(ctx: TortoiseContext) -> list[PlanStep]:
    executor = MigrationExecutor(ctx.db("default"), _apps_config())
    return [step for step in await executor.plan() if not step.backward]


async def apply_migrations(ctx: TortoiseContext) -> list[str]:
    """Apply every unapplied migration; returns their names."""
    steps = await pending_migrations(ctx)
    executor = MigrationExecutor(ctx.db("default"), _apps_config())
    await executor.migrate()
    return [f"{s.migration.app_label}.{s.migration.name}" for s in steps]


def _apps_config() -> dict[str, dict[str, Any]]:
    return {
        label: {"models": [module], "migrations": f"migrations.{label}"}
        for label, module in APPS.items()
    }


async def migrate_or_refuse(ctx: TortoiseContext, settings: Settings) -> None:
    """Dev applies its own migrations; every other environment refuses to serve a stale schema."""
    if settings.app_env == "dev":
        await apply_migrations(ctx)
        return
    steps = await pending_migrations(ctx)
    if steps:
        names = ", ".join(f"{s.migration.app_label}.{s.migration.name}" for s in steps)
        raise PendingMigrations(
            f"the database has unapplied migrations ({names}); run `suishen migrate` first"
        )


# What `tortoise makemigrations` reads (`suishen makemigrations` passes it): the schema
# diff is computed from the migration files, so an in-memory database suffices.
MAKEMIGRATIONS_CONFIG = tortoise_config("sqlite://:memory:")
