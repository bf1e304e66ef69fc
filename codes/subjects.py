"""Who a code stands for: subjects' random handles, their daily pseudonyms, the way back
from a verified code to its subject, the masked profile gates see, and how a caller is
recorded as the actor of a change."""

from __future__ import annotations

import secrets
from functools import lru_cache

from tortoise.exceptions import IntegrityError

from app.context import AppContext
from auth.api import Principal, SubjectProfile, subject_profile
from codes import pseudonym, verifier
from codes.config import CACHE_LIMIT, CodesRuntime
from codes.models import CodeSubject


@lru_cache(maxsize=16)
def day_keys(secret: bytes, day: int) -> tuple[bytes, bytes]:
    """The day's gate key (opens tokens to pseudonyms) and permutation key (pseudonyms to
    handles)."""
    return pseudonym.gate_key(secret, day), pseudonym.permutation_key(secret, day)


def actor_of(principal: Principal) -> str:
    """How a caller is recorded in the history of what it changed."""
    return f"{principal.kind}:{principal.id}"


async def handle_for(ctx: AppContext, subject_id: str) -> bytes:
    """The subject's 8-byte handle, made on first use."""
    rt = ctx.runtime(CodesRuntime)
    handle = rt.handles.get(subject_id)
    if handle is not None:
        return handle
    row = await CodeSubject.get_or_none(subject_id=subject_id)
    while row is None:
        number = secrets.randbits(63)  # positive: fits a signed BIGINT everywhere
        try:
            row = await CodeSubject.create(
                handle=number, subject_id=subject_id, created_at=ctx.clock.now()
            )
        except IntegrityError:  # another request made it first (or, rarely, a handle clash)
            row = await CodeSubject.get_or_none(subject_id=subject_id)
    handle = int(row.handle).to_bytes(8, "big")
    rt.remember(subject_id, handle)
    return handle


async def pseudonym_of(ctx: AppContext, subject_id: str, day: int) -> bytes:
    """The subject's pseudonym of `day`."""
    rt = ctx.runtime(CodesRuntime)
    pseudo = rt.pseudonyms.get((day, subject_id))
    if pseudo is None:
        handle = await handle_for(ctx, subject_id)
        pseudo = pseudonym.pseudonymise(day_keys(rt.token_secret, day)[1], handle)
        rt.remember_pseudonym(day, subject_id, pseudo)
    return pseudo


async def subject_of(ctx: AppContext, result: verifier.Result) -> str | None:
    """The subject a verified identity code was issued to (None: no longer exists)."""
    rt = ctx.runtime(CodesRuntime)
    assert result.issued_at_s is not None
    day = pseudonym.day_of(result.issued_at_s)
    gate, perm = day_keys(rt.token_secret, day)
    pseudo = pseudonym.open_token(gate, result.token).pseudonym
    subject_id = rt.holders.get((day, pseudo))
    if subject_id is not None:
        return subject_id
    handle = pseudonym.depseudonymise(perm, pseudo)
    subject_id = rt.subjects.get(handle)
    if subject_id is None:
        number = int.from_bytes(handle, "big")
        if number >> 63:  # handles are made below 2**63: a token no subject was given
            return None
        row = await CodeSubject.get_or_none(handle=number)
        if row is None:
            return None
        subject_id = row.subject_id
        rt.remember(subject_id, handle)
    rt.remember_pseudonym(day, subject_id, pseudo)
    return subject_id


async def profile_of(ctx: AppContext, subject_id: str) -> SubjectProfile | None:
    """The subject's masked profile (None: no such subject), cached briefly."""
    rt = ctx.runtime(CodesRuntime)
    now = ctx.clock.now()
    cached = rt.profiles.get(subject_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    profile = await subject_profile(subject_id, now=now)
    if len(rt.profiles) > CACHE_LIMIT:
        rt.profiles.clear()
    rt.profiles[subject_id] = (now + rt.config.profile_cache, profile)
    return profile
