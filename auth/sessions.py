"""Login sessions and bearer authentication: a resident's refresh-token family (issue,
rotate, log out, revoke on reuse), and the revocation check every access token passes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NoReturn

from app.context import AppContext
from app.errors import Forbidden, Unauthorized
from auth import scopes as sc
from auth import store, tokens
from auth.audit import RequestMeta, audit
from auth.config import AuthRuntime
from auth.errors import RefreshInvalid, RefreshReused
from auth.models import Account, KioskSession, RefreshToken
from auth.principal import Principal, PrincipalKind
from auth.states import REFRESH, RefreshState

REFRESH_TTL = timedelta(days=30)


@dataclass(frozen=True)
class IssuedPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


async def start_session(ctx: AppContext, account: Account, now: datetime) -> IssuedPair:
    """A new login: the first pair of a new refresh family."""
    return await _issue_pair(ctx, account, store.new_id("fam"), now)


def _resident_principal(account: Account, family_id: str) -> Principal:
    return Principal(
        kind=PrincipalKind.RESIDENT,
        id=account.id,
        scopes=sc.RESIDENT_SCOPES,
        subject_id=account.subject_id,
        family_id=family_id,
    )


async def _issue_pair(
    ctx: AppContext, account: Account, family_id: str, now: datetime
) -> IssuedPair:
    refresh = "rt_" + secrets.token_urlsafe(32)  # 256 random bits
    await RefreshToken.create(
        id=store.new_id("rtk"),
        token_hash=store.sha256_hex(refresh),
        family_id=family_id,
        account_id=account.id,
        created_at=now,
        expires_at=now + REFRESH_TTL,
    )
    access = tokens.issue(
        ctx.keys.signing["tokens"],
        issuer=ctx.settings.token_issuer,
        audience=ctx.settings.token_audience,
        now=now,
        principal=_resident_principal(account, family_id),
    )
    return IssuedPair(access.token, refresh, access.expires_in, int(REFRESH_TTL.total_seconds()))


async def refresh(ctx: AppContext, refresh_token: str, meta: RequestMeta) -> IssuedPair:
    """Rotate: the presented token dies, a new pair of the same family is issued. A dead
    token presented again means it was stolen (or replayed): the whole family dies."""
    now = ctx.clock.now()
    row = await RefreshToken.get_or_none(token_hash=store.sha256_hex(refresh_token.strip()))
    if row is None:
        raise RefreshInvalid()
    state = RefreshState.of(row)
    if state is RefreshState.ACTIVE and row.expires_at <= now:
        raise RefreshInvalid("the refresh token expired; log in again")
    consumed = 0
    if REFRESH.can_move(state, RefreshState.USED):
        # Conditional on the token being active still: of concurrent uses one claims it.
        consumed = await RefreshToken.filter(id=row.id, used_at=None, revoked_at=None).update(
            used_at=now
        )
    if consumed == 0:
        await _family_reused(ctx, row, now, meta)
    account = await Account.get(id=row.account_id)
    pair = await _issue_pair(ctx, account, row.family_id, now)
    # A concurrent presentation of the same token may have revoked the family between
    # our claim and the new token's insert; checking after the insert closes that gap
    # (the revocation either ran before this check or also caught the new token).
    if await RefreshToken.filter(family_id=row.family_id, revoked_at__isnull=False).exists():
        await revoke_family(ctx, row.family_id, now=now)
        raise RefreshReused()
    return pair


async def _family_reused(
    ctx: AppContext, row: RefreshToken, now: datetime, meta: RequestMeta
) -> NoReturn:
    await revoke_family(ctx, row.family_id, now=now)
    await audit(
        "refresh_reused",
        now=now,
        actor=row.account_id,
        target=row.family_id,
        request_id=meta.request_id,
        ip=meta.ip,
    )
    raise RefreshReused()


async def revoke_family(ctx: AppContext, family_id: str, *, now: datetime) -> None:
    """Every token of the family moves to revoked (active and used ones alike), and its
    access tokens stop authenticating through the family's revocation mark."""
    await RefreshToken.filter(family_id=family_id, revoked_at=None).update(revoked_at=now)
    await store.mark_family_revoked(ctx, family_id)


async def logout(ctx: AppContext, principal: Principal, meta: RequestMeta) -> None:
    if not principal.is_resident or principal.family_id is None:
        raise Forbidden("only a resident's login can be logged out")
    now = ctx.clock.now()
    await revoke_family(ctx, principal.family_id, now=now)
    if principal.kiosk_id is not None:  # the family is the kiosk session: end it too
        await KioskSession.filter(id=principal.family_id, ended_at=None).update(ended_at=now)
    await audit(
        "logout", now=now, actor=principal.kiosk_id or principal.id, target=principal.family_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip


# -- authentication of bearer tokens ---------------------------------------------------


async def authenticate(ctx: AppContext, token: str) -> Principal:
    """The principal a bearer token proves, or 401: signature, algorithm, key, audience,
    issuer, expiry, then revocation (logged-out family, rotated or disabled client)."""
    try:
        verified = ctx.runtime(AuthRuntime).verifier.verify(token, ctx.clock.now())
    except tokens.TokenRejected as exc:
        raise _rejected(exc.reason) from None
    principal = verified.principal
    if principal.is_resident:
        if principal.family_id is None or await store.family_revoked(ctx, principal.family_id):
            raise _rejected("revoked")
        if principal.kiosk_id is not None:
            await _kiosk_still_trusted(ctx, principal, verified.generation)
        if principal.subject_id is None:
            # Tokens from before identity binding do not carry the subject id yet.
            account = await Account.get_or_none(id=principal.id)
            if account is None:
                raise _rejected("revoked")
            principal = replace(principal, subject_id=account.subject_id)
        return principal
    if await store.client_revoked(ctx, principal.id, verified.generation):
        raise _rejected("revoked")
    return principal


async def _kiosk_still_trusted(
    ctx: AppContext, principal: Principal, generation: int | None
) -> None:
    """A token a kiosk holds for a resident dies with the kiosk too (disabled or rotated),
    and every request made with it is audited under the kiosk's id."""
    assert principal.kiosk_id is not None
    if await store.client_revoked(ctx, principal.kiosk_id, generation):
        raise _rejected("revoked")
    await audit(
        "kiosk_request", now=ctx.clock.now(), actor=principal.kiosk_id, target=principal.id,
        detail={"session": principal.family_id or "", "subject": principal.subject_id or ""},
    )  # fmt: skip


def _rejected(reason: str) -> Unauthorized:
    return Unauthorized(
        f"the bearer token was rejected ({reason})",
        extra={"reason": reason},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
