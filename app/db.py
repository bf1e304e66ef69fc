"""Database lifecycle: the Tortoise config, opening/closing, and the migration gate."""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
from tortoise.backends.asyncpg.client import AsyncpgDBClient
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.executor import EXECUTOR_CACHE
from tortoise.context import TortoiseContext, _current_context
from tortoise.exceptions import DBConnectionError, IntegrityError
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


class BoundedAsyncpgClient(AsyncpgDBClient):
    """Tortoise's asyncpg client with a bounded wait for a pooled connection.

    Tortoise acquires pooled connections without a timeout, so when PostgreSQL is
    black-holed requests would queue behind the stuck ones without end; asyncpg's
    `acquire(timeout=...)` bounds the wait, including the reconnect it may need."""

    def __init__(self, *args: Any, acquire_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    async def create_pool(self, **kwargs: Any) -> Any:
        pool = await super().create_pool(reset=keep_session, **kwargs)
        if self.acquire_timeout is None:
            return pool
        return _BoundedPool(pool, self.acquire_timeout)


async def keep_session(connection: asyncpg.Connection) -> None:
    """What a connection goes through on its way back to the pool, beyond asyncpg's own
    cleanup (which rolls back an open transaction and drops listeners).

    asyncpg's default also sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL;`: a second round trip for every statement run outside a transaction, to
    undo session state this app never makes (no advisory locks, cursors held open, LISTEN
    or SET; the statement timeout is a connection setting, kept by design)."""


class _BoundedPool:
    """An asyncpg pool whose `acquire()` gives up after `timeout` (asyncpg's `Pool` has
    slots, so the method cannot be replaced on the instance)."""

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return self._pool.acquire(timeout=timeout or self._timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


# Tortoise loads a connection's engine as a module and takes its `client_class`.
client_class = BoundedAsyncpgClient


def tortoise_config(
    database_url: str, *, connect_timeout_s: float = 3.0, statement_timeout_s: float = 5.0
) -> dict[str, Any]:
    """The Tortoise config. On PostgreSQL a new connection must be made within
    `connect_timeout_s`, and a free pooled connection is awaited as long at most; a
    statement is cancelled by the server after `statement_timeout_s` and given up by the
    client half a second later (a black-holed server never cancels anything). A request
    whose database stops answering so fails after about connect + statement timeouts."""
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
        connection = _postgres_connection(url, connect_timeout_s, statement_timeout_s)
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


def _postgres_connection(url: str, connect_s: float, statement_s: float) -> dict[str, Any]:
    from tortoise.backends.base.config_generator import expand_db_url

    connection: dict[str, Any] = expand_db_url(url)
    connection["engine"] = "app.db"
    credentials: dict[str, Any] = connection["credentials"]
    server_settings = dict(credentials.get("server_settings") or {})
    server_settings["statement_timeout"] = str(int(statement_s * 1000))
    credentials.update(
        timeout=connect_s,
        # The server cancels a statement first (a clean error, the connection stays
        # usable); the client-side limit catches a server that stopped answering at all.
        command_timeout=statement_s + 0.5,
        server_settings=server_settings,
        # Waiting longer than a new connection may take for a pooled one means the
        # pool is stuck behind a server that stopped answering: give up as fast.
        acquire_timeout=connect_s,
    )
    return connection


# asyncpg errors that say the server is unreachable, going away or overloaded, not that
# the request was wrong: connection failures (class 08), operator intervention (57:
# statement_timeout's cancel, admin shutdown, cannot connect now), insufficient resources
# (53: too many connections, disk full).
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    DBConnectionError,
    TimeoutError,
    ConnectionError,
    socket.gaierror,
)


def unavailable_error(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) means the database is unreachable or too
    slow, so the answer is 503 dependency_unavailable rather than 500. Integrity and data
    errors are the request's or the code's, never an outage."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, IntegrityError | asyncpg.IntegrityConstraintViolationError):
            return False
        if isinstance(current, _UNAVAILABLE):
            return True
        # asyncpg's connect to several addresses raises a bare OSError naming them all.
        if type(current) is OSError:
            return True
        if isinstance(current, asyncpg.InterfaceError) and "connection is closed" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def placeholders(conn: BaseDBAsyncClient, n: int) -> list[str]:
    """Parameter markers for hand-written SQL: `$1..$n` on PostgreSQL, `?` on SQLite."""
    return _marks(conn.capabilities.dialect, n)


def _marks(dialect: str, n: int) -> list[str]:
    return [f"${i}" for i in range(1, n + 1)] if dialect == "postgres" else ["?"] * n


def sql_for(conn: BaseDBAsyncClient, template: str, n: int) -> str:
    """`template` with its `n` positional `{}` markers made parameters for the connection's
    dialect; formatted once per dialect (hot paths run the same statements all day)."""
    return _formatted(template, conn.capabilities.dialect, n)


@lru_cache(maxsize=256)
def _formatted(template: str, dialect: str, n: int) -> str:
    return template.format(*_marks(dialect, n))


async def open_db(settings: Settings) -> TortoiseContext:
    """Initialise Tortoise for this process. Queries from any task reach it (global fallback),
    which ASGI servers need: the lifespan runs in another task than the requests."""
    # Tortoise caches compiled INSERT/DELETE SQL per connection *name*, not per dialect:
    # a process that opens SQLite and later PostgreSQL (the test suite) must drop it.
    EXECUTOR_CACHE.clear()
    ctx = TortoiseContext()
    token = _current_context.set(ctx)
    try:
        config = tortoise_config(
            settings.database_url,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_s=settings.db_statement_timeout_s,
        )
        await ctx.init(config=config, _enable_global_fallback=True)
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
