"""Machine clients (gates, hospitals, the authority, operators, admins): create, rotate
the secret, disable, and the client-credentials grant that turns a secret into a token."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from app.context import AppContext
from app.errors import Conflict, RateLimited
from auth import scopes as sc
from auth import store, tokens
from auth.audit import RequestMeta, audit
from auth.config import AuthConfig, AuthRuntime
from auth.errors import (
    ClientDisabled,
    ClientNotFound,
    InvalidClient,
    LocationNotAllowed,
    LocationRequired,
    TenantNotAllowed,
    TenantRequired,
)
from auth.models import Client
from auth.principal import Principal, PrincipalKind
from auth.states import CLIENT, ClientStatus

CLIENT_FAILURE_WINDOW_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class ClientCredentials:
    """A client's credentials as shown once, at creation or rotation."""

    client_id: str
    client_secret: str
    scope: str
    kind: str
    tenant_id: str | None
    location: str | None = None


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
    location: str | None = None,
) -> ClientCredentials:
    """Create a machine client; the secret is returned here only and stored hashed. A kiosk
    names its `location` (printed on what it issues); no other kind has one."""
    if kind not in sc.CLIENT_KINDS:
        raise ValueError(f"unknown client kind {kind!r}")
    client_kind = PrincipalKind(kind)
    if client_kind in sc.TENANT_KINDS and not tenant_id:
        raise TenantRequired(f"a {kind} client belongs to one {_tenant_word(client_kind)}")
    if client_kind not in sc.TENANT_KINDS and tenant_id:
        raise TenantNotAllowed(f"a {kind} client is platform-wide")
    location = location.strip() if location else None
    if client_kind in sc.LOCATED_KINDS and not location:
        raise LocationRequired(f"a {kind} client says where it stands")
    if client_kind not in sc.LOCATED_KINDS and location:
        raise LocationNotAllowed(f"a {kind} client has no location")
    now = ctx.clock.now()
    secret = _new_secret()
    scope = sc.render(sc.KIND_SCOPES[client_kind])
    client = await Client.create(
        id=store.new_id(f"cl_{kind}", 9),
        kind=client_kind.value,
        tenant_id=tenant_id,
        scope=scope,
        secret_hash=store.sha256_hex(secret),
        created_at=now,
        created_by=_actor_id(actor)[:64],
        location=location,
    )
    await audit(
        "client_created", now=now, actor=_actor_id(actor), target=client.id,
        request_id=request_id, detail={"kind": kind, "tenant_id": tenant_id},
    )  # fmt: skip
    return ClientCredentials(client.id, secret, scope, client_kind.value, tenant_id, location)


def _tenant_word(kind: PrincipalKind) -> str:
    return "hospital" if kind is PrincipalKind.HOSPITAL else "venue"


async def _client(client_id: str) -> Client:
    client = await Client.get_or_none(id=client_id)
    if client is None:
        raise ClientNotFound()
    return client


async def rotate_client(
    ctx: AppContext, client_id: str, *, actor: Principal | str, request_id: str | None = None
) -> ClientCredentials:
    """A new secret; the old one and every token issued under it stop working."""
    now = ctx.clock.now()
    client = await _client(client_id)
    if ClientStatus.of(client) is not ClientStatus.ACTIVE:
        raise ClientDisabled()
    secret = _new_secret()
    # Conditional on the generation read (and the client active), so of two concurrent
    # rotations only one hands out a secret (the other's would never have worked).
    rotated = await Client.filter(
        id=client.id, generation=client.generation, disabled_at=None
    ).update(secret_hash=store.sha256_hex(secret), generation=client.generation + 1, rotated_at=now)
    if rotated == 0:
        raise Conflict("the client changed meanwhile (rotated or disabled); try again")
    client.generation += 1
    await store.mark_client_generation(ctx, client.id, client.generation)
    await audit("client_rotated", now=now, actor=_actor_id(actor), target=client.id,
                request_id=request_id)  # fmt: skip
    return ClientCredentials(
        client.id, secret, client.scope, client.kind, client.tenant_id, client.location
    )


async def disable_client(
    ctx: AppContext, client_id: str, *, actor: Principal | str, request_id: str | None = None
) -> Client:
    """Disable for good (again is a no-op); its tokens stop working at once."""
    now = ctx.clock.now()
    client = await _client(client_id)
    if CLIENT.can_move(ClientStatus.of(client), ClientStatus.DISABLED):
        client.disabled_at = now
        await client.save(update_fields=["disabled_at"])
    await store.mark_client_disabled(ctx, client.id)
    await audit("client_disabled", now=now, actor=_actor_id(actor), target=client.id,
                request_id=request_id)  # fmt: skip
    return client


async def client_token(
    ctx: AppContext, client_id: str, client_secret: str, meta: RequestMeta
) -> tokens.IssuedToken:
    """The client-credentials grant. Failures count per client and per address; past
    the limit every attempt is refused (429) until the window passes, right secret or not."""
    counters = _failure_counters(ctx, ctx.runtime(AuthRuntime).config, client_id, meta.ip)
    for key, limit in counters:
        failures = await ctx.kv.get(key)
        if failures is not None and int(failures) >= limit:
            raise RateLimited(
                store.retry_after_s(await ctx.kv.ttl_ms(key) or CLIENT_FAILURE_WINDOW_MS)
            )
    now = ctx.clock.now()
    client = await Client.get_or_none(id=client_id)
    if client is None or not _secret_opens(client, client_secret):
        for key, _limit in counters:
            await ctx.kv.incr(key, 1, ttl_ms=CLIENT_FAILURE_WINDOW_MS)
        await audit(
            "client_auth_failed", now=now, actor=f"client:{client_id[:60]}",
            request_id=meta.request_id, ip=meta.ip, detail={"reason": _failure(client)},
        )  # fmt: skip
        raise InvalidClient()
    principal = Principal(
        kind=PrincipalKind(client.kind),
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


def _failure_counters(
    ctx: AppContext, cfg: AuthConfig, client_id: str, ip: str | None
) -> list[tuple[str, int]]:
    """The failure counters a grant for `client_id` from `ip` checks, with their limits."""
    key = ctx.kv.keys.key
    counters = [
        (key("auth", "client-fail", "id", store.sha256_hex(client_id)[:32]),
         cfg.client_failures_per_client),
    ]  # fmt: skip
    if (counted := cfg.counted_ip(ip)) is not None:
        counters.append((key("auth", "client-fail", "ip", counted), cfg.client_failures_per_ip))
    return counters


def _secret_opens(client: Client, secret: str) -> bool:
    return ClientStatus.of(client) is ClientStatus.ACTIVE and hmac.compare_digest(
        store.sha256_hex(secret), client.secret_hash
    )


def _failure(client: Client | None) -> str:
    """Why a grant failed, for the audit trail (the caller only ever sees invalid_client)."""
    if client is None:
        return "unknown"
    return "disabled" if ClientStatus.of(client) is ClientStatus.DISABLED else "bad_secret"
