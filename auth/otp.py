"""OTP login: send a one-time code by SMS (rate limited), then log in with it, which
creates the account on first use and starts a login session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from app.context import AppContext
from app.errors import RateLimited
from auth import identity, store
from auth.audit import RequestMeta, audit
from auth.config import AuthConfig, AuthRuntime
from auth.errors import OtpInvalid, PhoneInvalid
from auth.models import Account
from auth.sessions import IssuedPair, start_session
from auth.states import OtpOutcome

OTP_TTL = timedelta(minutes=5)
OTP_MAX_TRIES = 5
RESEND_AFTER_S = 60


@dataclass(frozen=True)
class OtpSent:
    expires_in: int
    resend_after: int
    debug_code: str | None


def _phone(raw: str) -> str:
    phone = identity.normalise_phone(raw)
    if phone is None:
        raise PhoneInvalid("expected a mainland mobile number such as 13812345678")
    return phone


def _otp_digest(rt: AuthRuntime, phone: str, code: str) -> str:
    return hmac.new(rt.otp_key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


async def send_otp(ctx: AppContext, phone_raw: str, meta: RequestMeta) -> OtpSent:
    rt = ctx.runtime(AuthRuntime)
    phone = _phone(phone_raw)
    now = ctx.clock.now()
    phone_index = rt.cipher.blind_index(phone, field="phone")
    await _count_send(ctx, rt.config, phone_index, meta.ip, now)
    code = f"{secrets.randbelow(1_000_000):06d}"
    # A new code replaces any earlier one; the key's own TTL only collects garbage,
    # expiry is decided against the clock inside the check script.
    await ctx.kv.set(
        store.otp_key(ctx, phone_index),
        store.otp_value(store.epoch_ms(now + OTP_TTL), _otp_digest(rt, phone, code)),
        ttl_ms=int((OTP_TTL + timedelta(minutes=1)).total_seconds() * 1000),
    )
    await rt.sms.send_otp(phone, code, ttl_s=int(OTP_TTL.total_seconds()), now=now)
    return OtpSent(
        expires_in=int(OTP_TTL.total_seconds()),
        resend_after=RESEND_AFTER_S,
        debug_code=None if ctx.settings.is_production else code,
    )


async def _count_send(
    ctx: AppContext, cfg: AuthConfig, phone_index: str, ip: str | None, now: datetime
) -> None:
    """One more send in each sliding window (per phone a minute and an hour, per address
    an hour); 429 from the first window that is full."""
    key = ctx.kv.keys.key
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    limits: list[tuple[str, timedelta, int]] = [
        (key("auth", "otp-send", "pm", phone_index), minute, cfg.otp_per_phone_minute),
        (key("auth", "otp-send", "ph", phone_index), hour, cfg.otp_per_phone_hour),
    ]
    if (counted := cfg.counted_ip(ip)) is not None:
        limits.append((key("auth", "otp-send", "ip", counted), hour, cfg.otp_per_ip_hour))
    for window_key, window, limit in limits:
        hit = await ctx.kv.window_hit(
            window_key,
            now_ms=store.epoch_ms(now),
            window_ms=int(window.total_seconds() * 1000),
            limit=limit,
            member=secrets.token_hex(8),
        )
        if not hit.allowed:
            raise RateLimited(store.retry_after_s(hit.retry_after_ms))


async def login(ctx: AppContext, phone_raw: str, otp: str, meta: RequestMeta) -> IssuedPair:
    """Check and consume the code; the account (created on first login) gets a new
    session. Every refusal is the same 401, whatever the reason the audit trail records."""
    rt = ctx.runtime(AuthRuntime)
    phone = _phone(phone_raw)
    now = ctx.clock.now()
    phone_index = rt.cipher.blind_index(phone, field="phone")
    outcome = await consume_otp(ctx, phone, otp)
    if outcome != OtpOutcome.ACCEPTED:
        await audit(
            "login_failed",
            now=now,
            actor=f"phone:{phone_index[:16]}",
            request_id=meta.request_id,
            ip=meta.ip,
            detail={"reason": _refusal(outcome)},
        )
        raise OtpInvalid("the code is wrong, expired or already used; request a new one")
    account = await _account_for_phone(rt, phone, phone_index, now)
    account.last_login_at = now
    await account.save(update_fields=["last_login_at"])
    pair = await start_session(ctx, account, now)
    await audit("login", now=now, actor=account.id, request_id=meta.request_id, ip=meta.ip)
    return pair


async def consume_otp(ctx: AppContext, phone: str, otp: str) -> int:
    """Check the code sent to `phone` (normalised) and consume it if right, in one atomic
    step; the fifth wrong try burns it. An `OtpOutcome` value."""
    rt = ctx.runtime(AuthRuntime)
    phone_index = rt.cipher.blind_index(phone, field="phone")
    outcome = await ctx.kv.eval(
        store.OTP_CHECK,
        [store.otp_key(ctx, phone_index)],
        [_otp_digest(rt, phone, otp.strip()), store.epoch_ms(ctx.clock.now()), OTP_MAX_TRIES],
    )
    return int(outcome)


def _refusal(outcome: int) -> str:
    try:
        return OtpOutcome(outcome).reason
    except ValueError:
        return OtpOutcome.WRONG.reason


async def _account_for_phone(
    rt: AuthRuntime, phone: str, phone_index: str, now: datetime
) -> Account:
    account = await Account.get_or_none(phone_index=phone_index)
    if account is not None:
        return account
    account_id = store.new_id("acc")
    try:
        return await Account.create(
            id=account_id,
            phone_index=phone_index,
            phone_enc=rt.cipher.encrypt(phone, field="phone", row=account_id),
            created_at=now,
        )
    except IntegrityError:
        # Created meanwhile by a concurrent first login of the same phone.
        return await Account.get(phone_index=phone_index)
