"""Revocation (lost phone): every code issued so far for a subject stops verifying, online
at once and at offline gates through the signed list of revoked code ids."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from app.context import AppContext
from app.errors import Forbidden, NotFound
from auth.api import Principal, scopes, subject_for_request, subject_profile
from codes import store
from codes.config import PURPOSE, CodesRuntime
from codes.errors import SubjectRequired
from codes.models import CodeRevocation
from codes.subjects import actor_of


@dataclass(frozen=True)
class Revocation:
    subject_id: str
    revoked_at: datetime
    codes_revoked: int


@dataclass(frozen=True)
class RevokedCode:
    cursor: int
    code_id: str
    not_after: datetime


@dataclass(frozen=True)
class RevocationPage:
    since: int
    next_cursor: int
    has_more: bool
    generated_at: datetime
    entries: list[RevokedCode]


async def revoke_codes(ctx: AppContext, subject_id: str, *, actor: str) -> Revocation:
    """Lost phone: every code issued so far for the subject stops verifying (online at
    once; offline gates learn the code ids from GET /v1/codes/revocations)."""
    config = ctx.runtime(CodesRuntime).config
    now = ctx.clock.now()
    window = config.lifetime + config.skew
    # Codes issued before the cutoff second are refused by the cutoff; codes of this very
    # second are refused by id (they are in the list). The marker outlives every such code.
    cutoff_ttl_ms = int((window + config.skew).total_seconds() * 1000) + 60_000
    code_ids = await store.revoke_issued(ctx, subject_id, int(now.timestamp()), cutoff_ttl_ms)
    not_after = now + window
    await CodeRevocation.bulk_create(
        [
            CodeRevocation(
                subject_id=subject_id, code_id=c, revoked_at=now, not_after=not_after, actor=actor
            )
            for c in [None, *code_ids]
        ]
    )
    return Revocation(subject_id, now, len(code_ids))


async def revoke_as(
    ctx: AppContext, principal: Principal, *, dependent_id: str | None, subject_id: str | None
) -> Revocation:
    """A resident revokes their own (or a dependent's) codes; an admin names the subject.

    A resident may name the subject as `subject_id` too, but only themselves or someone they
    guard (404 otherwise): never silently their own codes in place of someone else's."""
    if principal.is_resident:
        named = subject_id if subject_id is not None else dependent_id
        if named is not None and named == principal.subject_id:
            named = None
        target = await subject_for_request(principal, named)
    elif principal.has(scopes.ADMIN):
        if subject_id is None:
            raise SubjectRequired()
        if await subject_profile(subject_id, now=ctx.clock.now()) is None:
            raise NotFound("no such subject")
        target = subject_id
    else:  # require() let only residents and admins through
        raise Forbidden("only the resident or an admin may revoke codes")
    return await revoke_codes(ctx, target, actor=actor_of(principal))


async def revocations_since(ctx: AppContext, cursor: int, limit: int = 1000) -> RevocationPage:
    """Revoked code ids after `cursor` that still matter (not yet expired), oldest first.
    Entries name codes only, never subjects: a gate learns nothing about who revoked."""
    now = ctx.clock.now()
    rows = (
        await CodeRevocation.filter(id__gt=cursor, code_id__isnull=False)
        .order_by("id")
        .limit(limit + 1)
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = rows[-1].id if rows else cursor
    entries = [RevokedCode(r.id, r.code_id or "", r.not_after) for r in rows if r.not_after > now]
    return RevocationPage(cursor, next_cursor, has_more, now, entries)


def sign_document(ctx: AppContext, document: dict[str, Any]) -> str:
    """A compact ES256 JWS over `document` with the active codes key (`kid` in the header),
    verifiable with GET /v1/codes/keys."""
    key = ctx.keys.signing[PURPOSE].active()
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return jwt.api_jws.PyJWS().encode(
        body.encode(),
        key.private_key,
        algorithm="ES256",
        headers={"kid": key.kid, "typ": "suishen-revocations+jws"},
    )
