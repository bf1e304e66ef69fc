"""How a domain package plugs into the application: routes, start-up, background jobs,
demo data. Each domain exposes one `DOMAIN` in its `wiring.py`; the factory collects them."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute

from app.context import AppContext


@dataclass(frozen=True)
class Job:
    """A periodic background task; returns how many items it handled (for the log)."""

    name: str
    every_s: float
    run: Callable[[AppContext], Awaitable[int]]


@dataclass(frozen=True)
class Command:
    """A `suishen` subcommand a domain contributes (run with the database open)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[AppContext, argparse.Namespace], Awaitable[int]]


@dataclass(frozen=True)
class Domain:
    name: str
    routes: Sequence[BaseRoute] = ()
    startup: Callable[[AppContext], Awaitable[None]] | None = None
    shutdown: Callable[[AppContext], Awaitable[None]] | None = None
    jobs: Sequence[Job] = ()
    # Creates this domain's demo objects and returns its part of demo-credentials.json.
    seed_demo: Callable[[AppContext, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
    commands: Sequence[Command] = field(default_factory=tuple)
    # Exact paths that accept request bodies above settings.max_body_bytes -> their limit
    # (e.g. a 10,000-entry batch); every other path keeps the global limit.
    body_limits: Mapping[str, int] = field(default_factory=dict)
