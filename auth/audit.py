"""The audit trail of security events, and `RequestMeta`: where a call came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auth.models import AuditEvent
from auth.principal import Principal


@dataclass(frozen=True)
class RequestMeta:
    """Where a call came from, for rate limits and the audit trail."""

    ip: str | None = None
    request_id: str | None = None


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


async def audit_machine_action(
    principal: Principal,
    action: str,
    *,
    now: datetime,
    target: str | None = None,
    detail: dict[str, str] | None = None,
) -> None:
    """Record what a machine client (a gate, a hospital) did to a person, under its own id
    and tenant: the other domains' entry to the audit trail (ids and outcomes only)."""
    await audit(
        action, now=now, actor=principal.id, target=target,
        detail={"kind": str(principal.kind), "tenant": principal.tenant_id or "", **(detail or {})},
    )  # fmt: skip
