"""The application factory. Nothing is created at import time: `create_app` builds
everything from the settings it is given, and the lifespan opens and closes it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from app import routes as system_routes
from app.clock import Clock, SystemClock
from app.context import AppContext
from app.db import close_db, migrate_or_refuse, open_db
from app.domain import Domain
from app.domains import load_domains
from app.errors import MethodNotAllowed, NotFound, Problem, problem_response
from app.keyring import KeyringError, Keys
from app.kv import KeyValueStore, create_store
from app.metrics import Metrics
from app.middleware import PlatformMiddleware, request_id_of
from app.openapi import OpenAPIDocument
from app.settings import Settings
from app.worker import run_worker

log = logging.getLogger("suishen")
VERSION = "0.1.0"
# Container allocations (net of frees) between young collections in a served process.
# Python's 700 ran a collection every few requests; a request frees what it allocates,
# so this many is reached only by what really piles up.
GC_YOUNG_THRESHOLD = 20_000


def prepare_keys(settings: Settings, clock: Clock) -> Keys:
    """Dev and test generate what is missing; production only accepts operator-made keys."""
    keys = Keys(settings.key_dir, clock)
    if settings.is_production:
        problems = keys.production_problems()
        if problems:
            raise KeyringError(
                "APP_ENV=production refuses these keys:\n  - " + "\n  - ".join(problems)
            )
    else:
        keys.ensure_all(generated=True)
    return keys


async def _problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc, request_id_of(request.scope))


def allowed_methods(request: Request) -> str:
    """Every method some route serves on this path (Starlette's 405 names only the first
    route's), plus OPTIONS, which the platform answers for every path."""
    methods = {"OPTIONS"}
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    problem: Problem
    if exc.status_code == 404:
        problem = NotFound(f"no route for {request.method} {request.url.path}")
    elif exc.status_code == 405 and request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allowed_methods(request)})
    elif exc.status_code == 405:
        problem = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        problem.headers["Allow"] = allowed_methods(request)
    else:
        problem = Problem(str(exc.detail))
        problem.status = exc.status_code  # type: ignore[misc]
    return problem_response(problem, request_id_of(request.scope))


def settle_heap() -> None:
    """For a served process once it has started: what startup built (modules, models,
    routes, keys) is moved out of the collector's sight, and young objects are collected
    less often. Measured on `GET /v1/codes/me`: full collections walked that heap for
    ~100 ms each every few thousand requests (a p99 spike), and the collector took about
    30 µs per request in all; after this, about nothing."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _lifespan(
    settings: Settings,
    clock: Clock,
    kv: KeyValueStore | None,
    domains: list[Domain],
    served: bool,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    """Open the keys, the database and the store, start the domains and the embedded
    worker; close them in reverse order. A served process then settles its heap."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        keys = prepare_keys(settings, clock)
        db = await open_db(settings)
        store = kv or create_store(
            settings.redis_url,
            settings.kv_prefix,
            cluster=settings.redis_cluster,
        )
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        try:
            await migrate_or_refuse(db, settings)
            await store.ping()
            ctx = AppContext(settings=settings, clock=clock, kv=store, keys=keys)
            app.state.ctx = ctx
            app.state.db = db
            for domain in domains:
                if domain.startup is not None:
                    await domain.startup(ctx)
            jobs = [job for d in domains for job in d.jobs]
            if settings.embedded_worker and jobs:
                worker = asyncio.create_task(run_worker(ctx, jobs, stop), name="suishen-worker")
            if served:
                settle_heap()
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            for domain in reversed(domains):
                if domain.shutdown is not None and hasattr(app.state, "ctx"):
                    await domain.shutdown(app.state.ctx)
            if kv is None:
                await store.close()
            await close_db(db)

    return lifespan


ANY_PATH = re.compile("")  # a route of unknown shape might take any path


class StaticPaths:
    """The router, with a shortcut: a request for a path without parameters (the hot
    paths all are) goes straight to the routes of that path instead of trying the whole
    route table's patterns in order, a regular expression each. Paths another route
    earlier in the table would match too are left to the router, so the route chosen
    is always the one the router would choose."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.by_path: dict[str, list[Route]] = {}
        for i, route in enumerate(router.routes):
            if not isinstance(route, Route) or route.param_convertors:
                continue
            shadowed = any(
                getattr(r, "path", route.path) != route.path
                and getattr(r, "path_regex", ANY_PATH).match(route.path)
                for r in router.routes[:i]
            )
            if not shadowed:
                self.by_path.setdefault(route.path, []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.by_path.get(get_route_path(scope), ()):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.router(scope, receive, send)


class SuishenApp(Starlette):
    """Starlette without its outermost ServerErrorMiddleware: PlatformMiddleware, the
    first layer, already turns an unhandled exception into a problem+json 500 with the
    request id (and logs it), so that layer would only add a frame to every request."""

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {
            key: value
            for key, value in self.exception_handlers.items()
            if key not in (500, Exception)
        }
        app: ASGIApp = ExceptionMiddleware(
            StaticPaths(self.router), handlers=handlers, debug=self.debug
        )
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    kv: KeyValueStore | None = None,
    domains: list[Domain] | None = None,
    served: bool = False,
) -> Starlette:
    """The application; `served` is for the one app of a server process (the entry
    points below), not for the many apps a test process builds."""
    clock = clock or SystemClock()
    domains = load_domains() if domains is None else domains
    metrics = Metrics()
    route_table = [*system_routes.routes, *(r for d in domains for r in d.routes)]

    exception_handlers: dict[Any, Any] = {
        Problem: _problem_handler,
        HTTPException: _http_exception_handler,
    }
    app = SuishenApp(
        routes=route_table,
        middleware=[
            Middleware(
                PlatformMiddleware,
                max_body_bytes=settings.max_body_bytes,
                metrics=metrics,
                body_limits={p: n for d in domains for p, n in d.body_limits.items()},
            )
        ],
        exception_handlers=exception_handlers,
        lifespan=_lifespan(settings, clock, kv, domains, served),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.domains = domains
    app.state.openapi = OpenAPIDocument(route_table, title="suishen", version=VERSION)
    return app


def create_app_from_env() -> Starlette:
    """Entry point for uvicorn worker processes (`--factory`)."""
    from app.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, served=True)


def create_app_behind_proxy() -> Any:
    """Entry point for granian worker processes: the app, taking the client address from
    X-Forwarded-For when the connection comes from a trusted proxy (127.0.0.1), as
    uvicorn's `proxy_headers` does."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    app: Any = create_app_from_env()  # an ASGI app; uvicorn types it by its own protocol
    return ProxyHeadersMiddleware(app, trusted_hosts="127.0.0.1")
