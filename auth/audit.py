"""The audit trail of security events, and `RequestMeta`: where a call came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auth.models import AuditEvent


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
