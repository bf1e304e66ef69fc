"""The auth domain's operations: OTP login, token refresh and logout, machine clients,
real-name identity, dependents, and the audit trail. Plain async functions, no HTTP."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.clock import SystemClock
from app.context import AppContext
from app.errors import Conflict, Forbidden, RateLimited, Unauthorized
from app.kv import AtomicScript, LocalView
from app.settings import int_knob
from auth import identity, tokens
from auth import scopes as sc
from auth.errors import (
    AlreadyDependent,
    ClientDisabled,
    ClientNotFound,
    ConsentInvalid,
    ConsentRequired,
    DependentIsSelf,
    DependentNotFound,
    DependentsLimit,
    IdentityAlreadyBound,
    IdentityMismatch,
    IdentityRequired,
    IdentityTaken,
    IdNumberInvalid,
    InvalidClient,
    NameInvalid,
    OtpInvalid,
    PhoneInvalid,
    RefreshInvalid,
    RefreshReused,
    TenantNotAllowed,
    TenantRequired,
)
from auth.models import (
    Account,
    AuditEvent,
    Client,
    Consent,
    Guardianship,
    RefreshToken,
    Subject,
)
from auth.pii import PiiCipher
from auth.principal import Principal
from auth.sms import ConsoleSms, SandboxSms, SmsBackend

OTP_TTL = timedelta(minutes=5)
OTP_MAX_TRIES = 5
REFRESH_TTL = timedelta(days=30)
CONSENT_TTL = timedelta(minutes=30)
MAX_DEPENDENTS = 5
CLIENT_FAILURE_WINDOW = timedelta(minutes=15)


# -- runtime --------------------------------------------------------------------


@dataclass(frozen=True)
class AuthConfig:
    """Limits, from SUISHEN_* settings with these defaults."""

    otp_per_phone_minute: int = 1
    otp_per_phone_hour: int = 10
    otp_per_ip_hour: int = 30
    client_failures_per_client: int = 10
    client_failures_per_ip: int = 50
    # Addresses the per-IP limits do not count (loopback outside production by default:
    # in development and tests every request comes from 127.0.0.1).
    rate_limit_exempt_ips: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, extra: dict[str, str], *, production: bool) -> AuthConfig:
        def number(name: str, default: int) -> int:
            return int_knob(extra, name, default, low=0)

        exempt_raw = extra.get("SUISHEN_RATE_LIMIT_EXEMPT_IPS")
        if exempt_raw is not None:
            exempt = frozenset(ip.strip() for ip in exempt_raw.split(",") if ip.strip())
        else:
            exempt = frozenset() if production else frozenset({"127.0.0.1", "::1"})
        return cls(
            otp_per_phone_minute=number("SUISHEN_OTP_PER_PHONE_MINUTE", 1),
            otp_per_phone_hour=number("SUISHEN_OTP_PER_PHONE_HOUR", 10),
            otp_per_ip_hour=number("SUISHEN_OTP_PER_IP_HOUR", 30),
            client_failures_per_client=number("SUISHEN_CLIENT_FAILURES_PER_CLIENT", 10),
            client_failures_per_ip=number("SUISHEN_CLIENT_FAILURES_PER_IP", 50),
            rate_limit_exempt_ips=exempt,
        )


@dataclass
class AuthRuntime:
    """What the auth domain keeps in `ctx.extensions["auth"]`."""

    sms: SmsBackend
    cipher: PiiCipher
    otp_key: bytes
    config: AuthConfig
    verifier: tokens.Verifier


def build_runtime(ctx: AppContext) -> AuthRuntime:
    settings = ctx.settings
    sms: SmsBackend = (
        SandboxSms()
        if settings.sms_backend == "sandbox"
        else ConsoleSms(print_codes=settings.app_env == "dev")
    )
    return AuthRuntime(
        sms=sms,
        cipher=PiiCipher(ctx.keys.secrets.get("pii"), ctx.keys.secrets.get("blind_index")),
        otp_key=ctx.keys.secrets.get("otp"),
        config=AuthConfig.from_settings(dict(settings.extra), production=settings.is_production),
        verifier=tokens.Verifier(
            ctx.keys.signing["tokens"],
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        ),
    )


def runtime(ctx: AppContext) -> AuthRuntime:
    rt: AuthRuntime = ctx.extensions["auth"]
    return rt


def _new_id(prefix: str, nbytes: int = 12) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _now_ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def _retry_s(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


# -- audit ----------------------------------------------------------------------


async def audit(
    action: str,
    *,
    now: datetime,
    actor: str,
    target: str | None = None,
    request_id: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a security event. Callers pass ids and reasons, never secret values."""
    await AuditEvent.create(
        at=now,
        actor=actor[:80],
        action=action,
        target=target[:80] if target else None,
        request_id=request_id,
        ip=ip,
        detail=detail or {},
    )


@dataclass(frozen=True)
class RequestMeta:
    """Where a call came from, for rate limits and the audit trail."""

    ip: str | None = None
    request_id: str | None = None


# -- OTP login --------------------------------------------------------------------


def _phone(raw: str) -> str:
    phone = identity.normalise_phone(raw)
    if phone is None:
        raise PhoneInvalid("expected a mainland mobile number such as 13812345678")
    return phone


def _otp_digest(rt: AuthRuntime, phone: str, code: str) -> str:
    return hmac.new(rt.otp_key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class OtpSent:
    expires_in: int
    resend_after: int
    debug_code: str | None


async def _window_limit(
    ctx: AppContext, key: str, *, now: datetime, window: timedelta, limit: int
) -> None:
    hit = await ctx.kv.window_hit(
        key,
        now_ms=_now_ms(now),
        window_ms=int(window.total_seconds() * 1000),
        limit=limit,
        member=secrets.token_hex(8),
    )
    if not hit.allowed:
        raise RateLimited(_retry_s(hit.retry_after_ms))


async def send_otp(ctx: AppContext, phone_raw: str, meta: RequestMeta) -> OtpSent:
    rt = runtime(ctx)
    phone = _phone(phone_raw)
    now = ctx.clock.now()
    phone_index = rt.cipher.blind_index(phone, field="phone")
    cfg = rt.config
    limits: list[tuple[str, timedelta, int]] = [
        (ctx.kv.keys.key("auth", "otp-send", "pm", phone_index), timedelta(minutes=1),
         cfg.otp_per_phone_minute),
        (ctx.kv.keys.key("auth", "otp-send", "ph", phone_index), timedelta(hours=1),
         cfg.otp_per_phone_hour),
    ]  # fmt: skip
    if meta.ip is not None and meta.ip not in cfg.rate_limit_exempt_ips:
        limits.append(
            (ctx.kv.keys.key("auth", "otp-send", "ip", meta.ip), timedelta(hours=1),
             cfg.otp_per_ip_hour)
        )  # fmt: skip
    for key, window, limit in limits:
        await _window_limit(ctx, key, now=now, window=window, limit=limit)
    code = f"{secrets.randbelow(1_000_000):06d}"
    expires_ms = _now_ms(now + OTP_TTL)
    # A new code replaces any earlier one; the key's own TTL only collects garbage,
    # expiry is decided against the clock inside the check script.
    await ctx.kv.set(
        _otp_key(ctx, phone_index),
        f"{expires_ms}:0:{_otp_digest(rt, phone, code)}",
        ttl_ms=int((OTP_TTL + timedelta(minutes=1)).total_seconds() * 1000),
    )
    await rt.sms.send_otp(phone, code, ttl_s=int(OTP_TTL.total_seconds()), now=now)
    return OtpSent(
        expires_in=int(OTP_TTL.total_seconds()),
        resend_after=60,
        debug_code=None if ctx.settings.is_production else code,
    )


def _otp_key(ctx: AppContext, phone_index: str) -> str:
    return ctx.kv.keys.key("auth", "otp", phone_index)


# Result codes of the OTP check: 1 accepted (and consumed), 0 no code, -1 expired,
# -2 wrong and now burnt, -3 wrong. Check-and-consume is one atomic step, so of many
# concurrent logins presenting the same code exactly one is accepted.
_OTP_CHECK_LUA = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local exp, tries, digest = string.match(v, '^(%d+):(%d+):(%x+)$')
if not exp then redis.call('DEL', KEYS[1]) return 0 end
if tonumber(ARGV[2]) >= tonumber(exp) then redis.call('DEL', KEYS[1]) return -1 end
if digest == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
tries = tonumber(tries) + 1
if tries >= tonumber(ARGV[3]) then redis.call('DEL', KEYS[1]) return -2 end
redis.call('SET', KEYS[1], exp .. ':' .. tries .. ':' .. digest, 'KEEPTTL')
return -3
"""


def _otp_check_local(view: LocalView, keys: Sequence[str], args: Sequence[str]) -> int:
    raw = view.get(keys[0])
    if raw is None:
        return 0
    parts = raw.decode().split(":")
    if len(parts) != 3:
        view.delete(keys[0])
        return 0
    exp, tries, digest = int(parts[0]), int(parts[1]), parts[2]
    if int(args[1]) >= exp:
        view.delete(keys[0])
        return -1
    if digest == args[0]:
        view.delete(keys[0])
        return 1
    tries += 1
    if tries >= int(args[2]):
        view.delete(keys[0])
        return -2
    ttl = view.pttl(keys[0])
    view.set(keys[0], f"{exp}:{tries}:{digest}", ttl if ttl > 0 else None)
    return -3


OTP_CHECK = AtomicScript("auth_otp_check", _OTP_CHECK_LUA, _otp_check_local)
_OTP_OUTCOMES = {0: "no_code", -1: "expired", -2: "burnt", -3: "wrong"}


@dataclass(frozen=True)
class IssuedPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


async def login(ctx: AppContext, phone_raw: str, otp: str, meta: RequestMeta) -> IssuedPair:
    rt = runtime(ctx)
    phone = _phone(phone_raw)
    now = ctx.clock.now()
    phone_index = rt.cipher.blind_index(phone, field="phone")
    outcome = await ctx.kv.eval(
        OTP_CHECK,
        [_otp_key(ctx, phone_index)],
        [_otp_digest(rt, phone, otp.strip()), _now_ms(now), OTP_MAX_TRIES],
    )
    if int(outcome) != 1:
        reason = _OTP_OUTCOMES.get(int(outcome), "wrong")
        await audit(
            "login_failed",
            now=now,
            actor=f"phone:{phone_index[:16]}",
            request_id=meta.request_id,
            ip=meta.ip,
            detail={"reason": reason},
        )
        raise OtpInvalid("the code is wrong, expired or already used; request a new one")
    account = await _account_for_phone(rt, phone, phone_index, now)
    account.last_login_at = now
    await account.save(update_fields=["last_login_at"])
    pair = await _start_family(ctx, account, now)
    await audit("login", now=now, actor=account.id, request_id=meta.request_id, ip=meta.ip)
    return pair


async def _account_for_phone(
    rt: AuthRuntime, phone: str, phone_index: str, now: datetime
) -> Account:
    account = await Account.get_or_none(phone_index=phone_index)
    if account is not None:
        return account
    account_id = _new_id("acc")
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


def _resident_principal(account: Account, family_id: str) -> Principal:
    return Principal(
        kind="resident",
        id=account.id,
        scopes=sc.RESIDENT_SCOPES,
        subject_id=account.subject_id,
        family_id=family_id,
    )


async def _start_family(ctx: AppContext, account: Account, now: datetime) -> IssuedPair:
    return await _issue_pair(ctx, account, _new_id("fam"), now)


async def _issue_pair(
    ctx: AppContext, account: Account, family_id: str, now: datetime
) -> IssuedPair:
    refresh = "rt_" + secrets.token_urlsafe(32)  # 256 random bits
    await RefreshToken.create(
        id=_new_id("rtk"),
        token_hash=_sha256(refresh),
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
    row = await RefreshToken.get_or_none(token_hash=_sha256(refresh_token.strip()))
    if row is None:
        raise RefreshInvalid()
    if row.used_at is None and row.revoked_at is None and row.expires_at <= now:
        raise RefreshInvalid("the refresh token expired; log in again")
    consumed = 0
    if row.used_at is None and row.revoked_at is None:
        consumed = await RefreshToken.filter(id=row.id, used_at=None, revoked_at=None).update(
            used_at=now
        )
    if consumed == 0:
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
    account = await Account.get(id=row.account_id)
    pair = await _issue_pair(ctx, account, row.family_id, now)
    # A concurrent presentation of the same token may have revoked the family between
    # our claim and the new token's insert; checking after the insert closes that gap
    # (the revocation either ran before this check or also caught the new token).
    if await RefreshToken.filter(family_id=row.family_id, revoked_at__isnull=False).exists():
        await revoke_family(ctx, row.family_id, now=now)
        raise RefreshReused()
    return pair


def _family_key(ctx: AppContext, family_id: str) -> str:
    return ctx.kv.keys.key("auth", "revoked-family", family_id)


def _revocation_ttl_ms() -> int:
    # Past this, every access token the revocation is about has expired anyway.
    return int((tokens.ACCESS_TTL + tokens.LEEWAY * 2).total_seconds() * 1000)


async def revoke_family(ctx: AppContext, family_id: str, *, now: datetime) -> None:
    await RefreshToken.filter(family_id=family_id, revoked_at=None).update(revoked_at=now)
    await ctx.kv.set(_family_key(ctx, family_id), b"1", ttl_ms=_revocation_ttl_ms())


async def logout(ctx: AppContext, principal: Principal, meta: RequestMeta) -> None:
    if not principal.is_resident or principal.family_id is None:
        raise Forbidden("only a resident's login can be logged out")
    now = ctx.clock.now()
    await revoke_family(ctx, principal.family_id, now=now)
    await audit(
        "logout", now=now, actor=principal.id, target=principal.family_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip


# -- authentication of bearer tokens ---------------------------------------------------


def _client_state_key(ctx: AppContext, client_id: str) -> str:
    return ctx.kv.keys.key("auth", "client-state", client_id)


async def authenticate(ctx: AppContext, token: str) -> Principal:
    """The principal a bearer token proves, or 401: signature, algorithm, key, audience,
    issuer, expiry, then revocation (logged-out family, rotated or disabled client)."""
    try:
        verified = runtime(ctx).verifier.verify(token, ctx.clock.now())
    except tokens.TokenRejected as exc:
        raise _rejected(exc.reason) from None
    principal = verified.principal
    if principal.is_resident:
        if principal.family_id is None or await ctx.kv.get(_family_key(ctx, principal.family_id)):
            raise _rejected("revoked")
        if principal.subject_id is None:
            # Tokens from before identity binding do not carry the subject id yet.
            account = await Account.get_or_none(id=principal.id)
            if account is None:
                raise _rejected("revoked")
            principal = replace(principal, subject_id=account.subject_id)
        return principal
    state = await ctx.kv.get(_client_state_key(ctx, principal.id))
    if state is not None:
        text = state.decode()
        if text == "disabled" or (
            text.startswith("gen:") and (verified.generation or 0) < int(text[4:])
        ):
            raise _rejected("revoked")
    return principal


def _rejected(reason: str) -> Unauthorized:
    return Unauthorized(
        f"the bearer token was rejected ({reason})",
        extra={"reason": reason},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


# -- machine clients ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClientCredentials:
    """A client's credentials as shown once, at creation or rotation."""

    client_id: str
    client_secret: str
    scope: str
    kind: str
    tenant_id: str | None


def _new_secret() -> str:
    return "cs_" + secrets.token_urlsafe(32)


def _actor_id(actor: Principal | str) -> str:
    return actor.id if isinstance(actor, Principal) else actor


async def create_client(
    ctx: AppContext,
    kind: str,
    tenant_id: str | None,
    *,
    actor: Principal | str,
    request_id: str | None = None,
) -> ClientCredentials:
    """Create a machine client; the secret is returned here only and stored hashed."""
    if kind not in sc.CLIENT_KINDS:
        raise ValueError(f"unknown client kind {kind!r}")
    if kind in sc.TENANT_KINDS and not tenant_id:
        raise TenantRequired(f"a {kind} client belongs to one {_tenant_word(kind)}")
    if kind not in sc.TENANT_KINDS and tenant_id:
        raise TenantNotAllowed(f"a {kind} client is platform-wide")
    now = ctx.clock.now()
    secret = _new_secret()
    scope = sc.render(sc.KIND_SCOPES[kind])
    client = await Client.create(
        id=_new_id(f"cl_{kind}", 9),
        kind=kind,
        tenant_id=tenant_id,
        scope=scope,
        secret_hash=_sha256(secret),
        created_at=now,
        created_by=_actor_id(actor)[:64],
    )
    await audit(
        "client_created", now=now, actor=_actor_id(actor), target=client.id,
        request_id=request_id, detail={"kind": kind, "tenant_id": tenant_id},
    )  # fmt: skip
    return ClientCredentials(client.id, secret, scope, kind, tenant_id)


def _tenant_word(kind: str) -> str:
    return "hospital" if kind == "hospital" else "venue"


async def rotate_client(
    ctx: AppContext, client_id: str, *, actor: Principal | str, request_id: str | None = None
) -> ClientCredentials:
    """A new secret; the old one and every token issued under it stop working."""
    now = ctx.clock.now()
    client = await Client.get_or_none(id=client_id)
    if client is None:
        raise ClientNotFound()
    if client.disabled_at is not None:
        raise ClientDisabled()
    secret = _new_secret()
    # Conditional on the generation read, so of two concurrent rotations only one
    # hands out a secret (the other's would never have worked).
    rotated = await Client.filter(
        id=client.id, generation=client.generation, disabled_at=None
    ).update(secret_hash=_sha256(secret), generation=client.generation + 1, rotated_at=now)
    if rotated == 0:
        raise Conflict("the client changed meanwhile (rotated or disabled); try again")
    client.generation += 1
    await ctx.kv.set(
        _client_state_key(ctx, client.id), f"gen:{client.generation}", _revocation_ttl_ms()
    )
    await audit("client_rotated", now=now, actor=_actor_id(actor), target=client.id,
                request_id=request_id)  # fmt: skip
    return ClientCredentials(client.id, secret, client.scope, client.kind, client.tenant_id)


async def disable_client(
    ctx: AppContext, client_id: str, *, actor: Principal | str, request_id: str | None = None
) -> Client:
    now = ctx.clock.now()
    client = await Client.get_or_none(id=client_id)
    if client is None:
        raise ClientNotFound()
    if client.disabled_at is None:
        client.disabled_at = now
        await client.save(update_fields=["disabled_at"])
    await ctx.kv.set(_client_state_key(ctx, client.id), b"disabled", _revocation_ttl_ms())
    await audit("client_disabled", now=now, actor=_actor_id(actor), target=client.id,
                request_id=request_id)  # fmt: skip
    return client


async def client_token(
    ctx: AppContext, client_id: str, client_secret: str, meta: RequestMeta
) -> tokens.IssuedToken:
    """The client-credentials grant. Failures count per client and per address; past
    the limit every attempt is refused (429) until the window passes, right secret or not."""
    rt = runtime(ctx)
    now = ctx.clock.now()
    window_ms = int(CLIENT_FAILURE_WINDOW.total_seconds() * 1000)
    counters = [
        (ctx.kv.keys.key("auth", "client-fail", "id", _sha256(client_id)[:32]),
         rt.config.client_failures_per_client),
    ]  # fmt: skip
    if meta.ip is not None and meta.ip not in rt.config.rate_limit_exempt_ips:
        counters.append(
            (ctx.kv.keys.key("auth", "client-fail", "ip", meta.ip),
             rt.config.client_failures_per_ip)
        )  # fmt: skip
    for key, limit in counters:
        failures = await ctx.kv.get(key)
        if failures is not None and int(failures) >= limit:
            raise RateLimited(_retry_s(await ctx.kv.ttl_ms(key) or window_ms))
    client = await Client.get_or_none(id=client_id)
    presented = _sha256(client_secret)
    ok = (
        client is not None
        and client.disabled_at is None
        and hmac.compare_digest(presented, client.secret_hash)
    )
    if not ok or client is None:
        for key, _limit in counters:
            await ctx.kv.incr(key, 1, ttl_ms=window_ms)
        reason = "unknown"
        if client is not None:
            reason = "disabled" if client.disabled_at else "bad_secret"
        await audit(
            "client_auth_failed", now=now, actor=f"client:{client_id[:60]}",
            request_id=meta.request_id, ip=meta.ip, detail={"reason": reason},
        )  # fmt: skip
        raise InvalidClient()
    principal = Principal(
        kind=client.kind,
        id=client.id,
        scopes=sc.parse(client.scope),
        tenant_id=client.tenant_id,
    )
    return tokens.issue(
        ctx.keys.signing["tokens"],
        issuer=ctx.settings.token_issuer,
        audience=ctx.settings.token_audience,
        now=now,
        principal=principal,
        generation=client.generation,
    )


# -- real-name identity -------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A validated name and ID number, with their blind indexes."""

    name: str
    id_number: identity.IdNumber
    id_index: str
    name_index: str


def _person(rt: AuthRuntime, name_raw: str, id_raw: str, today: date) -> Person:
    name = identity.normalise_name(name_raw)
    if name is None:
        raise NameInvalid("2-30 characters: Chinese characters (with ·) or Latin letters")
    number = identity.parse_id_number(id_raw, today)
    if number is None:
        raise IdNumberInvalid("region, birth date or check digit is wrong")
    return Person(
        name,
        number,
        rt.cipher.blind_index(number.value, field="id_number"),
        rt.cipher.blind_index(name, field="name"),
    )


def _new_subject(rt: AuthRuntime, person: Person, now: datetime, owner: str | None) -> Subject:
    subject_id = _new_id("sub", 16)
    return Subject(
        id=subject_id,
        id_number_index=person.id_index,
        id_number_enc=rt.cipher.encrypt(person.id_number.value, field="id_number", row=subject_id),
        name_enc=rt.cipher.encrypt(person.name, field="name", row=subject_id),
        name_index=person.name_index,
        masked_name=identity.mask_name(person.name),
        masked_id_number=identity.mask_id_number(person.id_number.value),
        birth_date=person.id_number.birth_date,
        owner_account_id=owner,
        created_at=now,
    )


def _require_resident(principal: Principal) -> None:
    if not principal.is_resident:
        raise Forbidden("only residents have a profile")


async def bind_identity(
    ctx: AppContext, principal: Principal, name_raw: str, id_raw: str, meta: RequestMeta
) -> ResidentView:
    """Bind the account to a real-name person and return the new profile. Binding the
    same identity again is a no-op; a different one is refused (identities do not change)."""
    _require_resident(principal)
    rt = runtime(ctx)
    now = ctx.clock.now()
    person = _person(rt, name_raw, id_raw, now.date())
    account = await Account.get(id=principal.id)
    if account.subject_id is not None:
        own = await Subject.get(id=account.subject_id)
        if own.id_number_index != person.id_index:
            raise IdentityAlreadyBound()
        if own.name_index != person.name_index:
            raise IdentityMismatch()
        return await resident_profile(ctx, principal)
    await _claim_identity(rt, account, person, now)
    await audit(
        "identity_bound", now=now, actor=account.id, target=account.subject_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip
    return await resident_profile(ctx, principal)


async def _claim_identity(rt: AuthRuntime, account: Account, person: Person, now: datetime) -> None:
    """Make `person` the account's own subject: a new one, or the subject they already
    are as somebody's dependent. Sets `account.subject_id`."""
    created = False
    subject = await Subject.get_or_none(id_number_index=person.id_index)
    if subject is not None:
        # Known already as someone's dependent: the person now has an account of their own.
        if subject.owner_account_id is not None:
            raise IdentityTaken()
        if subject.name_index != person.name_index:
            raise IdentityMismatch()
        claimed = await Subject.filter(id=subject.id, owner_account_id=None).update(
            owner_account_id=account.id
        )
        if claimed == 0:
            raise IdentityTaken()
    else:
        subject = _new_subject(rt, person, now, account.id)
        try:
            await subject.save(force_create=True)
        except IntegrityError:
            # Another account bound this ID number (or this account another) meanwhile.
            raise IdentityTaken() from None
        created = True
    bound = await Account.filter(id=account.id, subject_id=None).update(subject_id=subject.id)
    if bound == 0:
        # A concurrent binding of this same account won; undo ours.
        if created:
            await Subject.filter(id=subject.id).delete()
        else:
            await Subject.filter(id=subject.id, owner_account_id=account.id).update(
                owner_account_id=None
            )
        raise IdentityAlreadyBound()
    account.subject_id = subject.id


@dataclass(frozen=True)
class SubjectCard:
    """What a profile shows of a person: masked values and the birth date."""

    id: str
    masked_name: str
    masked_id_number: str
    birth_date: date

    @classmethod
    def of(cls, subject: Subject) -> SubjectCard:
        return cls(subject.id, subject.masked_name, subject.masked_id_number, subject.birth_date)


@dataclass(frozen=True)
class DependentView:
    subject: SubjectCard
    relation: str


@dataclass(frozen=True)
class ResidentView:
    account_id: str
    phone_masked: str
    subject: SubjectCard | None
    dependents: list[DependentView]


# The profile is read on every app start and after every token refresh, so it is one
# hand-written join: building the same query through the ORM costs ten times the CPU.
_PROFILE_SQL = (
    "SELECT a.phone_enc, a.dependents, s.id AS subject_id, s.masked_name, "
    "s.masked_id_number, s.birth_date FROM auth_account a "
    "LEFT JOIN auth_subject s ON s.id = a.subject_id WHERE a.id = {p}"
)


async def resident_profile(ctx: AppContext, principal: Principal) -> ResidentView:
    _require_resident(principal)
    rt = runtime(ctx)
    client = Account._meta.db
    sql = _PROFILE_SQL.format(p="$1" if client.capabilities.dialect == "postgres" else "?")
    rows = await client.execute_query_dict(sql, [principal.id])
    if not rows:
        raise Unauthorized("the account no longer exists")
    row = rows[0]
    phone = rt.cipher.decrypt(row["phone_enc"], field="phone", row=principal.id)
    subject = None
    if row["subject_id"] is not None:
        born = row["birth_date"]
        subject = SubjectCard(
            row["subject_id"],
            row["masked_name"],
            row["masked_id_number"],
            born if isinstance(born, date) else date.fromisoformat(str(born)),
        )
    dependents = await list_dependents(principal) if row["dependents"] else []
    return ResidentView(principal.id, identity.mask_phone(phone), subject, dependents)


async def list_dependents(principal: Principal) -> list[DependentView]:
    _require_resident(principal)
    links = (
        await Guardianship.filter(guardian_account_id=principal.id)
        .select_related("subject")
        .order_by("id")
    )
    return [DependentView(SubjectCard.of(g.subject), g.relation) for g in links]


async def give_consent(
    ctx: AppContext, principal: Principal, meta: RequestMeta
) -> tuple[str, datetime]:
    """A single-use code the holder hands a relative so the relative may add them as a
    dependent (see docs/auth.md, "Dependents and consent")."""
    _require_resident(principal)
    account = await Account.get(id=principal.id)
    if account.subject_id is None:
        raise IdentityRequired()
    now = ctx.clock.now()
    code = secrets.token_hex(6).upper()  # 48 bits, and useless without the name and ID
    expires = now + CONSENT_TTL
    await Consent.create(
        id=_new_id("cns"),
        subject_id=account.subject_id,
        code_hash=_sha256(code),
        expires_at=expires,
        created_at=now,
    )
    await audit(
        "consent_given", now=now, actor=account.id, target=account.subject_id,
        request_id=meta.request_id, ip=meta.ip,
    )  # fmt: skip
    return code, expires


async def add_dependent(
    ctx: AppContext,
    principal: Principal,
    *,
    name: str,
    id_number: str,
    relation: str,
    consent_code: str | None,
    meta: RequestMeta,
) -> DependentView:
    """Guard a person. Rules (docs/auth.md): identity first; at most 5; a person already
    guarded by others may be shared if the name matches; a person with their own account
    only with a consent code they gave."""
    _require_resident(principal)
    rt = runtime(ctx)
    now = ctx.clock.now()
    person = _person(rt, name, id_number, now.date())
    async with in_transaction("default"):
        # Locking the guardian's row serialises their additions, so the limit holds
        # under concurrency (SQLite serialises writers anyway).
        account = await Account.filter(id=principal.id).select_for_update().first()
        if account is None or account.subject_id is None:
            raise IdentityRequired()
        own = await Subject.get(id=account.subject_id)
        if own.id_number_index == person.id_index:
            raise DependentIsSelf()
        subject = await Subject.get_or_none(id_number_index=person.id_index)
        if subject is not None and await Guardianship.exists(
            guardian_account_id=account.id, subject_id=subject.id
        ):
            raise AlreadyDependent()
        if account.dependents >= MAX_DEPENDENTS:
            raise DependentsLimit()
        if subject is None:
            subject = _new_subject(rt, person, now, None)
            await subject.save(force_create=True)
        else:
            if subject.name_index != person.name_index:
                raise IdentityMismatch()
            if subject.owner_account_id is not None:
                await _use_consent(subject.id, consent_code, account.id, now)
        await Guardianship.create(
            guardian_account_id=account.id, subject_id=subject.id, relation=relation,
            created_at=now,
        )  # fmt: skip
        await Account.filter(id=account.id).update(dependents=F("dependents") + 1)
    await audit(
        "dependent_added", now=now, actor=principal.id, target=subject.id,
        request_id=meta.request_id, ip=meta.ip, detail={"relation": relation},
    )  # fmt: skip
    return DependentView(SubjectCard.of(subject), relation)


async def _use_consent(subject_id: str, code: str | None, account_id: str, now: datetime) -> None:
    if not code:
        raise ConsentRequired(
            "this person has their own account: ask them for a consent code "
            "(POST /v1/residents/me/consents) and send it as consent_code"
        )
    used = await Consent.filter(
        code_hash=_sha256(code.strip().upper()),
        subject_id=subject_id,
        used_at=None,
        expires_at__gt=now,
    ).update(used_at=now, used_by_account_id=account_id)
    if used == 0:
        raise ConsentInvalid()


# -- what other domains ask --------------------------------------------------------------


async def subject_for_request(principal: Principal, dependent_id: str | None) -> str:
    """The subject a resident acts for: their own, or a dependent they guard."""
    if not principal.is_resident:
        raise Forbidden("only residents act for a subject")
    subject_id = principal.subject_id
    if subject_id is None:
        account = await Account.get_or_none(id=principal.id)
        subject_id = account.subject_id if account is not None else None
    if subject_id is None:
        raise IdentityRequired()
    if dependent_id is None or dependent_id == subject_id:
        return subject_id
    if not await Guardianship.exists(guardian_account_id=principal.id, subject_id=dependent_id):
        raise DependentNotFound()
    return dependent_id


@dataclass(frozen=True)
class SubjectProfile:
    """What gates, hospitals and codes may know about a person: nothing in clear."""

    subject_id: str
    masked_name: str
    birth_date: date
    age_group: str
    is_dependent: bool

    @property
    def birth_year(self) -> int:
        return self.birth_date.year


async def subject_profile(subject_id: str, *, now: datetime | None = None) -> SubjectProfile | None:
    """The masked profile of a subject. Pass `now` (ctx.clock.now()) where a clock is at
    hand; the age group is a day-precision fact, so the wall clock is the fallback."""
    subject = await Subject.get_or_none(id=subject_id)
    if subject is None:
        return None
    today = (now or SystemClock().now()).date()
    return SubjectProfile(
        subject_id=subject.id,
        masked_name=subject.masked_name,
        birth_date=subject.birth_date,
        age_group=identity.age_group(subject.birth_date, today),
        is_dependent=subject.owner_account_id is None,
    )
