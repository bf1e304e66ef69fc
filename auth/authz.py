"""The one authorization helper every route uses: who is calling, and may they.

`require(request, scope, tenant_id=...)` authenticates the bearer token (401
`unauthorized`), checks the scope (403 `forbidden`) and, when a tenant is named, that
the caller belongs to it (403 `forbidden`). Scope and tenant rejections are audited.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import HTTPConnection

from app.context import app_context
from app.errors import Forbidden, Unauthorized
from app.http import raw_header
from auth import scopes as sc
from auth.audit import audit
from auth.principal import Principal
from auth.sessions import authenticate as authenticate_token

_STATE_KEY = "auth_principal"


def bearer_token(conn: HTTPConnection) -> str | None:
    raw = raw_header(conn.scope, b"authorization")
    if not raw:
        return None
    scheme, _, token = raw.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(conn: HTTPConnection) -> Principal:
    """The caller's principal (401 when there is no valid bearer token); verified once
    per request however many times it is asked."""
    cached: Principal | None = conn.scope.get(_STATE_KEY)
    if cached is not None:
        return cached
    token = bearer_token(conn)
    if token is None:
        raise Unauthorized(
            "send Authorization: Bearer <access token>",
            extra={"reason": "missing"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate_token(app_context(conn), token)
    conn.scope[_STATE_KEY] = principal
    return principal


async def require(
    conn: HTTPConnection, scope: str | Collection[str], *, tenant_id: str | None = None
) -> Principal:
    """The principal, if it holds `scope` (or any one of several) and, when `tenant_id` is
    given, belongs to that tenant. A principal holding `admin` passes tenant checks only
    where the route lists `admin` among the acceptable scopes: admins are platform-wide."""
    principal = await authenticate(conn)
    wanted = (scope,) if isinstance(scope, str) else tuple(scope)
    if not any(principal.has(s) for s in wanted):
        await _reject(conn, principal, "scope", " or ".join(wanted))
        raise Forbidden(f"this needs the scope {' or '.join(wanted)}")
    if tenant_id is not None and principal.tenant_id != tenant_id:
        admin_allowed = sc.ADMIN in wanted and principal.has(sc.ADMIN)
        if not admin_allowed:
            await _reject(conn, principal, "tenant", tenant_id)
            raise Forbidden("this belongs to another tenant")
    return principal


async def _reject(conn: HTTPConnection, principal: Principal, why: str, wanted: str) -> None:
    ctx = app_context(conn)
    await audit(
        "token_rejected",
        now=ctx.clock.now(),
        actor=principal.id,
        target=conn.scope.get("path"),
        request_id=conn.scope.get("request_id"),
        ip=conn.client.host if conn.client else None,
        detail={"why": why, "wanted": wanted, "kind": principal.kind},
    )
