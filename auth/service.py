"""Transitional: what tests/factories.py still reads here (`runtime`, `create_client`)
until it uses `ctx.runtime(AuthRuntime)` and `auth.api.create_client`; remove this module
then. Auth's operations live in otp, sessions, clients and residents."""

from __future__ import annotations

from app.context import AppContext
from auth.clients import create_client
from auth.config import AuthRuntime

__all__ = ["create_client", "runtime"]


def runtime(ctx: AppContext) -> AuthRuntime:
    return ctx.runtime(AuthRuntime)
