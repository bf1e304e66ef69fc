"""The per-application context: what services need from the platform, built once at start.

Handlers reach it with `app_context(request)`; services receive the pieces they need as
explicit arguments. Domains keep their own long-lived objects (SMS backend, payment
provider, ...) in `extensions`, keyed by the domain's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from app.clock import Clock
from app.keyring import Keys
from app.kv import KeyValueStore
from app.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    clock: Clock
    kv: KeyValueStore
    keys: Keys
    extensions: dict[str, Any] = field(default_factory=dict)


def app_context(conn: HTTPConnection) -> AppContext:
    ctx: AppContext = conn.app.state.ctx
    return ctx
