"""The per-application context: what services need from the platform, built once at start.

Handlers reach it with `app_context(request)`; services receive the pieces they need as
explicit arguments. Each domain builds one runtime object (its config and long-lived
objects: SMS backend, payment provider, ...) in its `wiring.startup` with `ctx.provide(...)`
and reads it back with `ctx.runtime(TheRuntimeClass)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from starlette.requests import HTTPConnection

from app.clock import Clock
from app.keyring import Keys
from app.kv import KeyValueStore
from app.settings import Settings

R = TypeVar("R")


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    kv: KeyValueStore
    keys: Keys
    extensions: dict[type[Any], Any] = field(default_factory=dict)

    def provide(self, runtime: object) -> None:
        """Keep a domain's runtime object for the life of the app, found again by its type."""
        self.extensions[type(runtime)] = runtime

    def runtime(self, kind: type[R]) -> R:
        """The runtime object a domain's startup provided (the one typed accessor)."""
        found = self.extensions.get(kind)
        if found is None:
            raise LookupError(f"no {kind.__name__}: its domain's startup has not run")
        return cast(R, found)


def app_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx
