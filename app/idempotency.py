"""The one Idempotency-Key mechanism, for every POST a machine sends us.

Same key + same request  -> the stored response is replayed (kept 24 h).
Same key + other request -> 422 idempotency_key_reused.
Same key while the first is still running -> 409 request_in_progress.

A request is recorded `in_progress` under a short lease (LEASE) before the action runs,
and the running request renews it every RENEW_EVERY while the action lasts, so a live
request holds its key however long it takes (a duplicate meanwhile gets 409). If the
process dies mid-action the renewals stop, the lease runs out within LEASE and a retry
takes the key over: a client retrying after a crash is answered within seconds. The
action itself must be safe to run again (domain operations are keyed by their natural
ids as well). Outcomes the client caused (4xx problems except 429) are stored and
replayed like successes; server-side failures release the key so a retry runs the action
afresh (when the database itself is unreachable the lease releases it instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from tortoise.exceptions import IntegrityError

from app.context import AppContext
from app.db import unavailable_error
from app.errors import IdempotencyKeyReused, Problem, RequestInProgress, ValidationFailed
from app.http import json_response
from app.models import IdempotencyRecord

RETENTION = timedelta(hours=24)
# A crashed holder blocks its key for at most LEASE; a live one renews every RENEW_EVERY,
# so only an event loop stalled for LEASE - RENEW_EVERY could lose a lease it still needs.
LEASE = timedelta(seconds=6)
RENEW_EVERY = timedelta(seconds=2)
log = logging.getLogger("suishen.idempotency")
HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyKeyRequired(Problem):
    """The endpoint needs an Idempotency-Key header and none (or an unusable one) came."""

    status, code, title = 400, "idempotency_key_required", "Idempotency-Key header required"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool = False


def _canonical(data: Any) -> bytes:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def canonical_hash(data: Any) -> str:
    """SHA-256 of `data` as canonical JSON: the same request compares equal however its
    keys were ordered or spaced (client-supplied ids such as scan_id and charge_id)."""
    return hashlib.sha256(_canonical(data)).hexdigest()


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Hash of what the request asks for: JSON bodies are canonicalised, so whitespace or
    key order does not make a retry look like a different request."""
    try:
        canonical = _canonical(json.loads(body))
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


async def run_idempotent(
    ctx: AppContext,
    *,
    owner: str,
    key: str,
    request_hash: str,
    action: Callable[[], Awaitable[StoredResponse]],
) -> StoredResponse:
    """Run `action` at most once per (owner, key); replay its stored outcome afterwards."""
    record = await _claim(ctx, owner, key, request_hash)
    if isinstance(record, StoredResponse):
        return record
    keeper = asyncio.ensure_future(_hold_lease(ctx, record))
    try:
        try:
            outcome = await action()
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
    except Problem as problem:
        if problem.status >= 500 or problem.status == 429:
            await _release(record, problem)
            raise
        await _finish(record, problem.status, problem.body())
        raise
    except BaseException as exc:
        await _release(record, exc)
        raise
    await _finish(record, outcome.status, outcome.body)
    return outcome


async def _hold_lease(ctx: AppContext, record: IdempotencyRecord) -> None:
    """Renew the running request's lease until cancelled. Each renewal is conditional on
    the lease being the one this request last set, so it never extends a retry's lease
    after a takeover."""
    held = record.locked_until
    while True:
        await asyncio.sleep(RENEW_EVERY.total_seconds())
        until = ctx.clock.now() + LEASE
        try:
            renewed = await IdempotencyRecord.filter(
                id=record.id, state="in_progress", locked_until=held
            ).update(locked_until=until)
        except Exception:  # noqa: S112 (the database hiccupped: try again next tick)
            continue
        if not renewed:
            return  # taken over: this request stalled past its lease
        held = record.locked_until = until


async def _release(record: IdempotencyRecord, cause: BaseException) -> None:
    """Free the key after a server-side failure so a retry runs the action afresh. When
    the database is what failed, deleting would only wait for it again: the lease frees
    the key instead. A failed release never hides the failure that caused it."""
    if unavailable_error(cause):
        return
    try:
        await record.delete()
    except Exception as exc:
        log.warning("Idempotency-Key not released (%s); its lease frees it", type(exc).__name__)


async def _finish(record: IdempotencyRecord, status: int, body: Any) -> None:
    await IdempotencyRecord.filter(id=record.id).update(state="done", status=status, response=body)


async def _claim(
    ctx: AppContext, owner: str, key: str, request_hash: str
) -> IdempotencyRecord | StoredResponse:
    now = ctx.clock.now()
    for _ in range(3):
        try:
            return await IdempotencyRecord.create(
                owner=owner,
                key=key,
                request_hash=request_hash,
                state="in_progress",
                created_at=now,
                locked_until=now + LEASE,
                expires_at=now + RETENTION,
            )
        except IntegrityError:
            pass
        existing = await IdempotencyRecord.get_or_none(owner=owner, key=key)
        if existing is None:
            continue  # released between our insert and read: try again
        if existing.expires_at <= now:
            await IdempotencyRecord.filter(id=existing.id, expires_at=existing.expires_at).delete()
            continue
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; use a new key"
            )
        if existing.state == "done":
            assert existing.status is not None
            if existing.status >= 400:
                raise _replayed_problem(existing.status, existing.response)
            return StoredResponse(existing.status, existing.response, replayed=True)
        if existing.locked_until > now:
            raise RequestInProgress("the first request with this Idempotency-Key is still running")
        # The first attempt died holding the key: take it over, unless someone beat us to it.
        taken = await IdempotencyRecord.filter(
            id=existing.id, state="in_progress", locked_until=existing.locked_until
        ).update(locked_until=now + LEASE)
        if taken:
            existing.locked_until = now + LEASE
            return existing
        raise RequestInProgress("another retry with this Idempotency-Key is running")
    raise RequestInProgress("the Idempotency-Key is contended; retry shortly")


class _StoredProblem(Problem):
    """A client error replayed exactly as it was first answered."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body.get("detail", "")))
        self._status, self._body = status, body

    def body(self) -> dict[str, Any]:
        return dict(self._body)


def _replayed_problem(status: int, body: Any) -> Problem:
    problem = _StoredProblem(status, body if isinstance(body, dict) else {})
    problem.status = status  # type: ignore[misc]
    problem.code = str(problem.body().get("code", "bad_request"))  # type: ignore[misc]
    problem.headers["Idempotent-Replayed"] = "true"
    return problem


def idempotency_key(request: Request, *, required: bool) -> str | None:
    key = request.headers.get(HEADER)
    if key is None or key == "":
        if required:
            raise IdempotencyKeyRequired(f"send an {HEADER} header (e.g. a UUID) with this request")
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            [{"field": HEADER, "message": "must be 1-255 printable characters", "type": "header"}]
        )
    return key


async def idempotent_json(
    request: Request,
    ctx: AppContext,
    *,
    owner: str,
    action: Callable[[], Awaitable[StoredResponse]],
    required: bool = True,
    key: str | None = None,
) -> Response:
    """HTTP face of `run_idempotent`: key from the Idempotency-Key header (or a client id
    such as `charge_id` given as `key`), fingerprint from method, path and body."""
    key = key or idempotency_key(request, required=required)
    if key is None:
        outcome = await action()
    else:
        request_hash = fingerprint(request.method, request.url.path, await request.body())
        outcome = await run_idempotent(
            ctx, owner=owner, key=key, request_hash=request_hash, action=action
        )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return json_response(outcome.body, status=outcome.status, headers=headers)


async def purge_expired(ctx: AppContext) -> int:
    return await IdempotencyRecord.filter(expires_at__lte=ctx.clock.now()).delete()
