"""Kiosks (24-hour self-service points, service counters): a resident identifies with the ID
card the kiosk reads (name + ID number) and an OTP sent to their account's phone; the kiosk
then holds, for a few minutes, an access token that acts for that resident only."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.context import AppContext
from app.errors import RateLimited
from auth import identity, otp, store, tokens
from auth import scopes as sc
from auth.audit import RequestMeta, audit
from auth.config import AuthConfig, AuthRuntime
from auth.errors import IdentificationFailed, KioskSessionNotFound, OtpInvalid
from auth.models import Account, Client, KioskSession, Subject
from auth.principal import Principal, PrincipalKind
from auth.states import KioskSessionState, OtpOutcome

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class KioskChallenge:
    """Identification passed: an OTP went to the account's phone (masked here)."""

    session_id: str
    phone_masked: str
    expires_at: datetime
    debug_code: str | None


@dataclass(frozen=True)
class KioskToken:
    """The delegated token: a resident principal carrying the kiosk's id (`act`)."""

    session_id: str
    access_token: str
    expires_in: int
    expires_at: datetime
    subject_id: str
    masked_name: str


@dataclass(frozen=True)
class KioskInfo:
    kiosk_id: str
    location: str


async def identify(
    ctx: AppContext, kiosk: Principal, name: str, id_number: str, meta: RequestMeta
) -> KioskChallenge:
    """Name and ID number as the card reader gives them. Any mismatch is the same 401
    `identification_failed`; failures count per ID number (any kiosk), attempts per kiosk."""
    rt = ctx.runtime(AuthRuntime)
    now = ctx.clock.now()
    await _count_attempt(ctx, rt.config, kiosk.id, now)
    number = identity.parse_id_number(id_number, now.date())
    clean_name = identity.normalise_name(name)
    # Malformed input fails like a wrong one: nothing about the person leaks either way.
    id_index = rt.cipher.blind_index(number.value if number else id_number, field="id_number")
    failures_key = ctx.kv.keys.key("auth", "kiosk-fail", id_index[:32])
    failures = await ctx.kv.get(failures_key)
    if failures is not None and int(failures) >= rt.config.kiosk_failures_per_id_hour:
        raise RateLimited(store.retry_after_s(await ctx.kv.ttl_ms(failures_key) or 3_600_000))
    account = None
    subject = await Subject.get_or_none(id_number_index=id_index) if number else None
    reason = "unknown" if subject is None else "name"
    if subject is not None and clean_name is not None:
        name_index = rt.cipher.blind_index(clean_name, field="name")
        if not hmac.compare_digest(name_index, subject.name_index):
            reason = "name"
        elif subject.owner_account_id is None:
            reason = "no_account"  # a dependent: their guardian identifies instead
        else:
            account = await Account.get_or_none(id=subject.owner_account_id)
    if account is None or subject is None:
        await ctx.kv.incr(failures_key, 1, ttl_ms=int(HOUR.total_seconds() * 1000))
        await audit(
            "kiosk_identify_failed", now=now, actor=kiosk.id,
            request_id=meta.request_id, ip=meta.ip, detail={"reason": reason},
        )  # fmt: skip
        raise IdentificationFailed("the name and ID number do not match a resident's account")
    phone = rt.cipher.decrypt(account.phone_enc, field="phone", row=account.id)
    # Every account is keyed by a phone today, so the OTP is always asked for.
    sent = await otp.send_otp(ctx, phone, meta)
    session = await KioskSession.create(
        id=store.new_id("ks"),
        kiosk_id=kiosk.id,
        account_id=account.id,
        subject_id=subject.id,
        started_at=now,
        expires_at=now + otp.OTP_TTL,
    )
    await audit(
        "kiosk_identified", now=now, actor=kiosk.id, target=account.id,
        request_id=meta.request_id, ip=meta.ip, detail={"session": session.id},
    )  # fmt: skip
    return KioskChallenge(
        session.id, identity.mask_phone(phone), session.expires_at, sent.debug_code
    )


async def _count_attempt(ctx: AppContext, cfg: AuthConfig, kiosk_id: str, now: datetime) -> None:
    hit = await ctx.kv.window_hit(
        ctx.kv.keys.key("auth", "kiosk-identify", kiosk_id),
        now_ms=store.epoch_ms(now),
        window_ms=60_000,
        limit=cfg.kiosk_identify_per_minute,
        member=secrets.token_hex(8),
    )
    if not hit.allowed:
        raise RateLimited(store.retry_after_s(hit.retry_after_ms))


SESSION_ID_MAX = 32  # auth_kiosk_session.id: a longer id is nobody's (and PostgreSQL refuses it)


async def _session(ctx: AppContext, kiosk: Principal, session_id: str) -> KioskSession:
    if len(session_id) > SESSION_ID_MAX:
        raise KioskSessionNotFound()
    session = await KioskSession.get_or_none(id=session_id, kiosk_id=kiosk.id)
    if session is None:
        raise KioskSessionNotFound()
    return session


async def confirm(
    ctx: AppContext, kiosk: Principal, session_id: str, code: str, meta: RequestMeta
) -> KioskToken:
    """The OTP from the resident's phone turns a pending session into a delegated token
    that expires with the session and cannot be refreshed."""
    rt = ctx.runtime(AuthRuntime)
    now = ctx.clock.now()
    session = await _session(ctx, kiosk, session_id)
    if KioskSessionState.of(session, now) is not KioskSessionState.PENDING:
        raise KioskSessionNotFound()
    account = await Account.get(id=session.account_id)
    phone = rt.cipher.decrypt(account.phone_enc, field="phone", row=account.id)
    outcome = await otp.consume_otp(ctx, phone, code)
    if outcome != OtpOutcome.ACCEPTED:
        await audit(
            "kiosk_otp_failed", now=now, actor=kiosk.id, target=account.id,
            request_id=meta.request_id, ip=meta.ip,
            detail={"session": session.id, "reason": OtpOutcome(outcome).reason},
        )  # fmt: skip
        raise OtpInvalid("the code is wrong, expired or already used")
    expires_at = now + rt.config.kiosk_session
    # Conditional on the session still pending: one confirmation wins.
    moved = await KioskSession.filter(id=session.id, confirmed_at=None, ended_at=None).update(
        confirmed_at=now, expires_at=expires_at
    )
    if moved == 0:
        raise KioskSessionNotFound()
    client = await Client.get(id=kiosk.id)
    principal = Principal(
        kind=PrincipalKind.RESIDENT,
        id=account.id,
        scopes=sc.RESIDENT_SCOPES,
        subject_id=session.subject_id,
        family_id=session.id,
        kiosk_id=kiosk.id,
    )
    issued = tokens.issue(
        ctx.keys.signing["tokens"],
        issuer=ctx.settings.token_issuer,
        audience=ctx.settings.token_audience,
        now=now,
        principal=principal,
        generation=client.generation,
        ttl=rt.config.kiosk_session,
    )
    subject = await Subject.get(id=session.subject_id)
    await audit(
        "kiosk_session_started", now=now, actor=kiosk.id, target=account.id,
        request_id=meta.request_id, ip=meta.ip, detail={"session": session.id},
    )  # fmt: skip
    return KioskToken(
        session.id, issued.token, issued.expires_in, expires_at, subject.id, subject.masked_name
    )


async def end_session(ctx: AppContext, session_id: str, *, actor: str, meta: RequestMeta) -> None:
    """The resident walks away: the session ends and its token stops working at once
    (the session is the token's family, so the family's revocation mark stops it)."""
    now = ctx.clock.now()
    await KioskSession.filter(id=session_id, ended_at=None).update(ended_at=now)
    await store.mark_family_revoked(ctx, session_id)
    await audit(
        "kiosk_session_ended", now=now, actor=actor, target=session_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip


async def end(ctx: AppContext, kiosk: Principal, session_id: str, meta: RequestMeta) -> None:
    """The kiosk ends one of its sessions (again is a no-op)."""
    session = await _session(ctx, kiosk, session_id)
    await end_session(ctx, session.id, actor=kiosk.id, meta=meta)


async def kiosk_info(kiosk_id: str) -> KioskInfo | None:
    """Where a kiosk stands (printed on its cards and slips); None for a non-kiosk."""
    client = await Client.get_or_none(id=kiosk_id, kind=PrincipalKind.KIOSK.value)
    if client is None:
        return None
    return KioskInfo(client.id, client.location or "")


async def audit_kiosk_action(
    ctx: AppContext,
    principal: Principal,
    action: str,
    *,
    target: str | None = None,
    request_id: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    """Record what a resident did through a kiosk, under the kiosk's id (a no-op for a
    resident using the app)."""
    if principal.kiosk_id is None:
        return
    await audit(
        action, now=ctx.clock.now(), actor=principal.kiosk_id, target=target,
        request_id=request_id,
        detail={"account": principal.id, "session": principal.family_id or "", **(detail or {})},
    )  # fmt: skip
