"""The `suishen` command: serve, migrate, worker, seed-demo, keys, and the domains' commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from app.clock import SystemClock
from app.context import AppContext
from app.db import PendingMigrations, apply_migrations, close_db, migrate_or_refuse, open_db
from app.domains import load_domains
from app.keyring import KeyringError, Keys
from app.kv import create_store
from app.logs import configure_logging
from app.settings import Settings, SettingsError
from app.worker import run_worker

log = logging.getLogger("suishen.cli")


@contextlib.asynccontextmanager
async def opened(settings: Settings, *, migrate: bool = False) -> AsyncIterator[AppContext]:
    """The application context outside a server: keys, database, key-value store."""
    from app.main import prepare_keys

    clock = SystemClock()
    keys = prepare_keys(settings, clock)
    db = await open_db(settings)
    kv = create_store(settings.redis_url, settings.kv_prefix, cluster=settings.redis_cluster)
    try:
        if migrate:
            await apply_migrations(db)
        else:
            await migrate_or_refuse(db, settings)
        ctx = AppContext(settings=settings, clock=clock, kv=kv, keys=keys)
        for domain in load_domains():
            if domain.startup is not None:
                await domain.startup(ctx)
        yield ctx
    finally:
        await kv.close()
        await close_db(db)


def demo_credentials_path(settings: Settings) -> Path:
    return settings.var_dir / "demo-credentials.json"


async def seed_demo(ctx: AppContext) -> dict[str, Any]:
    """Seed each domain's demo objects once; the credentials file remembers what exists."""
    path = demo_credentials_path(ctx.settings)
    credentials: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for domain in load_domains():
        if domain.seed_demo is None or domain.name in credentials.get("_seeded", []):
            continue
        part = await domain.seed_demo(ctx, credentials)
        credentials.update(part)
        credentials.setdefault("_seeded", []).append(domain.name)
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=2, ensure_ascii=False) + "\n")
        path.chmod(0o600)
    return credentials


SERVERS = ("uvicorn", "granian")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    async def preflight() -> None:
        async with opened(settings, migrate=settings.app_env == "dev") as ctx:
            if args.seed_demo:
                await seed_demo(ctx)
                log.info("demo credentials in %s", demo_credentials_path(settings))

    asyncio.run(preflight())
    server = args.server or settings.extra.get("SUISHEN_SERVER", "uvicorn")
    log.info(
        "serving on http://%s:%d with %d worker(s) (%s)",
        settings.host, settings.port, settings.workers, server,
    )  # fmt: skip
    if server == "granian":
        granian_server(settings).serve()
    else:
        import uvicorn

        uvicorn.run("app.main:create_app_from_env", factory=True, **uvicorn_options(settings))
    return 0


# Granian's loggers hand their records to ours (JSON lines in production) instead of
# printing their own format to stdout.
GRANIAN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {},
    "handlers": {},
    "loggers": {
        "_granian": {"handlers": [], "level": "INFO", "propagate": True},
        "granian.access": {"handlers": [], "level": "WARNING", "propagate": True},
    },
}


def granian_server(settings: Settings) -> Any:
    """`serve --server granian`: the same application, HTTP/1.1, uvloop, one Python thread
    per worker process, the same graceful shutdown; the proxy headers uvicorn would
    honour are honoured by `app.main.create_app_behind_proxy`."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    return Granian(
        "app.main:create_app_behind_proxy",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        # Our middleware writes the access line; granian's own log goes through ours.
        log_access=False,
        log_dictconfig=GRANIAN_LOGGING,
        workers_kill_timeout=10,
        backlog=2048,
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How `serve` runs uvicorn; the benchmark's bare baseline app runs with the same."""
    return {
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        # Our middleware writes the access line, with the route template, not the raw path.
        "access_log": False,
        "proxy_headers": True,
        "timeout_graceful_shutdown": 10,
    }


async def _migrate(settings: Settings) -> int:
    from app.main import prepare_keys

    prepare_keys(settings, SystemClock())
    db = await open_db(settings)
    try:
        applied = await apply_migrations(db)
    finally:
        await close_db(db)
    print("\n".join(f"applied {name}" for name in applied) or "nothing to apply")
    return 0


async def _worker(settings: Settings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with opened(settings) as ctx:
        jobs = [job for d in load_domains() for job in d.jobs]
        log.info("worker running %d job(s): %s", len(jobs), ", ".join(j.name for j in jobs))
        await run_worker(ctx, jobs, stop)
    return 0


async def _seed(settings: Settings) -> int:
    async with opened(settings) as ctx:
        credentials = await seed_demo(ctx)
    print(json.dumps({k: v for k, v in credentials.items() if k != "_seeded"}, indent=2))
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    keys = Keys(settings.key_dir, SystemClock())
    if args.action == "init":
        keys.ensure_all(generated=False)
        print(f"keys ready in {settings.key_dir}")
    elif args.action == "rotate":
        key = keys.signing[args.purpose].rotate()
        print(json.dumps({"purpose": args.purpose, "kid": key.kid}))
    else:
        listing = {
            purpose: [
                {
                    "kid": k.kid,
                    "created_at": k.created_at.isoformat(),
                    "retired_at": k.retired_at.isoformat() if k.retired_at else None,
                    "origin": k.origin,
                }
                for k in ring.all_keys()
            ]
            for purpose, ring in keys.signing.items()
        }
        print(json.dumps(listing, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suishen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (uvicorn or granian, uvloop)")
    serve.add_argument("--seed-demo", action="store_true", help="seed demo data first if missing")
    serve.add_argument("--workers", type=int, help="worker processes (needs REDIS_URL above 1)")
    serve.add_argument(
        "--server",
        choices=SERVERS,
        help="the HTTP server (default uvicorn, or SUISHEN_SERVER); granian costs less CPU "
        "per request (docs/operations.md)",
    )
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    sub.add_parser("migrate", help="apply unapplied migrations")
    make = sub.add_parser("makemigrations", help="write migrations for model changes (developers)")
    make.add_argument("apps", nargs="*", help="app labels (default: all)")
    make.add_argument("--name", help="migration name suffix")
    sub.add_parser("worker", help="run the background jobs (outbox, retries, purge)")
    sub.add_parser("seed-demo", help="create demo venue, hospital and clients; print credentials")
    keys = sub.add_parser("keys", help="manage signing keys and secrets")
    keys.add_argument("action", choices=["init", "rotate", "list"])
    keys.add_argument("--purpose", choices=list(Keys.SIGNING_PURPOSES), default="tokens")
    for domain in load_domains():
        for command in domain.commands:
            p = sub.add_parser(command.name, help=command.help)
            command.add_arguments(p)
            p.set_defaults(domain_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            overrides = {
                k: v
                for k, v in (("workers", args.workers), ("host", args.host), ("port", args.port))
                if v is not None
            }
            settings = settings.with_(**overrides)
            settings.validate()
        configure_logging(settings.log_format, settings.log_level)
        if args.command == "serve":
            return _serve(settings, args)
        if args.command == "makemigrations":
            from tortoise.cli.cli import CLIContext, makemigrations

            asyncio.run(
                makemigrations(
                    CLIContext("app.db.MAKEMIGRATIONS_CONFIG", None),
                    tuple(args.apps),
                    False,
                    args.name,
                )
            )
            return 0
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "worker":
            return asyncio.run(_worker(settings))
        if args.command == "seed-demo":
            return asyncio.run(_seed(settings))
        if args.command == "keys":
            return _keys(settings, args)
        command = args.domain_command

        async def run_domain_command() -> int:
            async with opened(settings) as ctx:
                code: int = await command.run(ctx, args)
                return code

        return asyncio.run(run_domain_command())
    except (SettingsError, KeyringError, PendingMigrations) as exc:
        print(f"suishen: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
