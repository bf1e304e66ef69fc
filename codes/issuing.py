"""Issuing identity codes: a fresh signed code carrying the subject's status in force, for
the resident or a dependent they guard."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.context import AppContext
from auth.api import Principal, subject_for_request
from codes import codec, pseudonym, store
from codes.config import PURPOSE, CodesRuntime
from codes.states import Status
from codes.status import status_in_force
from codes.subjects import day_keys, pseudonym_of


@dataclass(frozen=True)
class IssuedCode:
    code: str
    status: Status
    issued_at: datetime
    expires_at: datetime
    refresh_after: timedelta
    code_id: str


async def issue_code(ctx: AppContext, subject_id: str) -> IssuedCode:
    """A fresh identity code for `subject_id` carrying its current status."""
    rt = ctx.runtime(CodesRuntime)
    now = ctx.clock.now()
    issued_s = int(now.timestamp())
    day = pseudonym.day_of(issued_s)
    pseudo = await pseudonym_of(ctx, subject_id, day)
    token = pseudonym.seal(day_keys(rt.token_secret, day)[0], pseudo, os.urandom(8))
    code_id = token.hex()
    lifetime_s = int(rt.config.lifetime.total_seconds())
    keep_ms = int((rt.config.lifetime + rt.config.skew).total_seconds() * 1000)
    cached = await store.record_issued(ctx, subject_id, code_id, keep_ms)
    status = await status_in_force(ctx, subject_id, cached)
    key = ctx.keys.signing[PURPOSE].active()
    payload = codec.Payload(
        codec.TYPE_IDENTITY, rt.key_id(key), issued_s, lifetime_s, status, token
    )
    issued_at = datetime.fromtimestamp(issued_s, now.tzinfo)
    return IssuedCode(
        code=codec.sign(payload, key.private_key),
        status=status,
        issued_at=issued_at,
        expires_at=issued_at + rt.config.lifetime,
        refresh_after=rt.config.refresh_after,
        code_id=code_id,
    )


async def issue_code_for(
    ctx: AppContext, principal: Principal, dependent_id: str | None
) -> IssuedCode:
    """A code for the resident or a dependent they guard (409 identity_required first)."""
    return await issue_code(ctx, await subject_for_request(principal, dependent_id))
