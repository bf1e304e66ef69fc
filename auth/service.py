"""Transitional: the names callers outside auth still import from here, until they import
through `auth.api` (venues) and `ctx.runtime(AuthRuntime)` (tests/factories.py). Remove
this module then; auth's operations live in otp, sessions, clients and residents."""

from __future__ import annotations

from app.context import AppContext
from auth.clients import create_client
from auth.config import AuthRuntime
from auth.residents import subject_for_request, subject_profile

__all__ = ["create_client", "runtime", "subject_for_request", "subject_profile"]


def runtime(ctx: AppContext) -> AuthRuntime:
    return ctx.runtime(AuthRuntime)
