"""The one Idempotency-Key mechanism, for every POST a machine sends us.

Same key + same request  -> the stored response is replayed (kept 24 h).
Same key + other request -> 422 idempotency_key_reused.
Same key while the first is still running -> 409 request_in_progress.

A request is recorded `in_progress` under a lease before the action runs. If the process
dies mid-action the lease runs out and a retry takes the key over, so the action itself
must be safe to run again (domain operations are keyed by their natural ids as well).
Outcomes the client caused (4xx problems except 429) are stored and replayed like
successes; server-side failures release the key so a retry runs the action afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from tortoise.exceptions import IntegrityError

from app.context import AppContext
from app.errors import IdempotencyKeyReused, Problem, RequestInProgress, ValidationFailed
from app.http import json_response
from app.models import IdempotencyRecord

RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=30)
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
    try:
        outcome = await action()
    except Problem as problem:
        if problem.status >= 500 or problem.status == 429:
            await record.delete()
            raise
        await _finish(record, problem.status, problem.body())
        raise
    except BaseException:
        await record.delete()
        raise
    await _finish(record, outcome.status, outcome.body)
    return outcome


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
