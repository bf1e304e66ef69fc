"""Webhooks to hospitals: endpoints, signing secrets, and delivery of the outbox.

Delivery is at least once: events carry an `id` receivers deduplicate on. Each attempt
is logged; failures back off exponentially until the give-up horizon (24 h by default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta

import httpx

from app.context import AppContext
from app.errors import ValidationFailed
from auth.api import Principal
from payments.config import PaymentsRuntime
from payments.hospitals import hospital_of
from payments.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from payments.states import OUTBOX, OutboxStatus

SIGNATURE_HEADER = "Suishen-Signature"
# Claim an event for this long while delivering, so a second worker process skips it.
CLAIM = timedelta(seconds=60)
MAX_BACKOFF = timedelta(hours=6)


def signing_secret(ctx: AppContext, hospital_id: str, version: int) -> str:
    """Derived from the platform's webhook key, so no secret is ever stored in the database."""
    key = ctx.keys.secrets.get("webhooks")
    message = f"webhook:{hospital_id}:{version}".encode()
    return "whsec_" + hmac.new(key, message, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def set_endpoint(
    ctx: AppContext, principal: Principal, url: str, *, rotate_secret: bool
) -> tuple[WebhookEndpoint, str]:
    """Set the client's hospital's webhook URL; returns the endpoint and its signing secret."""
    hospital_id = hospital_of(principal)
    # Signed bodies still leak their content over plain HTTP: production takes HTTPS only.
    if ctx.settings.is_production and not url.lower().startswith("https://"):
        raise ValidationFailed(
            [{"field": "url", "message": "must be an https:// URL", "type": "url_scheme"}]
        )
    now = ctx.clock.now()
    endpoint, created = await WebhookEndpoint.get_or_create(
        hospital_id=hospital_id, defaults={"url": url, "updated_at": now}
    )
    if not created:
        endpoint.url = url
        endpoint.updated_at = now
        if rotate_secret:
            endpoint.secret_version += 1
        await endpoint.save(update_fields=["url", "updated_at", "secret_version"])
    return endpoint, signing_secret(ctx, hospital_id, endpoint.secret_version)


def backoff(attempts: int, base: timedelta) -> timedelta:
    """base, 2 base, 4 base, ... capped at six hours between attempts."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(delay, MAX_BACKOFF)


async def deliver_due(ctx: AppContext, *, limit: int = 100) -> int:
    """Deliver every due event once; returns how many were attempted."""
    now = ctx.clock.now()
    due = (
        await OutboxEvent.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .limit(limit)
    )
    if not due:
        return 0
    endpoints = {
        e.hospital_id: e
        for e in await WebhookEndpoint.filter(hospital_id__in={d.hospital_id for d in due})
    }
    attempted = 0
    timeout = ctx.runtime(PaymentsRuntime).config.webhook_timeout_s
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
        for event in due:
            claimed = await OutboxEvent.filter(
                id=event.id, status=OutboxStatus.PENDING, next_attempt_at=event.next_attempt_at
            ).update(next_attempt_at=now + CLAIM)
            if not claimed:
                continue
            endpoint = endpoints.get(event.hospital_id)
            if endpoint is None:
                skipped = OUTBOX.advance(event.status, OutboxStatus.SKIPPED)
                await OutboxEvent.filter(id=event.id).update(status=skipped)
                continue
            attempted += 1
            await _attempt(ctx, http, event, endpoint, now)
    return attempted


async def _attempt(
    ctx: AppContext,
    http: httpx.AsyncClient,
    event: OutboxEvent,
    endpoint: WebhookEndpoint,
    now: datetime,
) -> None:
    config = ctx.runtime(PaymentsRuntime).config
    body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
    secret = signing_secret(ctx, event.hospital_id, endpoint.secret_version)
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature(secret, int(now.timestamp()), body),
        "Suishen-Event": event.type,
        "Suishen-Event-Id": event.id,
    }
    status_code: int | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        response = await http.post(endpoint.url, content=body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    duration_ms = int((time.perf_counter() - started) * 1000)
    attempts = event.attempts + 1
    await WebhookDelivery.create(
        event_id=event.id,
        attempt=attempts,
        url=endpoint.url,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
        created_at=now,
    )
    if error is None:
        delivered = OUTBOX.advance(event.status, OutboxStatus.DELIVERED)
        await OutboxEvent.filter(id=event.id).update(
            status=delivered, attempts=attempts, delivered_at=now
        )
        return
    retry_at = now + backoff(attempts, config.webhook_backoff)
    give_up = retry_at > event.created_at + config.webhook_give_up_after
    after = OUTBOX.advance(event.status, OutboxStatus.FAILED if give_up else OutboxStatus.PENDING)
    await OutboxEvent.filter(id=event.id).update(
        status=after, attempts=attempts, next_attempt_at=retry_at
    )
