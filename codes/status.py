"""Health status: the authority sets a subject's colour (alone or in batches, optionally
until a time), every change is kept as history, and the colour in force is served from the
key-value cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import ValidationFailed
from auth.api import Principal
from codes import store
from codes.config import CodesRuntime
from codes.models import HealthStatus, HealthStatusChange
from codes.states import STATUS_OF, Status
from codes.subjects import actor_of


@dataclass(frozen=True)
class StatusRecord:
    """The last status set for a subject (None fields: never set)."""

    subject_id: str
    version: int
    status: Status | None
    reason: str | None
    valid_until: datetime | None
    set_at: datetime | None

    def in_force(self, now: datetime, default: Status) -> Status:
        if self.status is None or (self.valid_until is not None and now >= self.valid_until):
            return default
        return self.status

    @property
    def cached(self) -> str:
        return store.encode_status(self.version, self.status, self.valid_until)


@dataclass(frozen=True)
class StatusReport:
    """A subject's last set status and the one in force now (the default once it lapsed)."""

    record: StatusRecord
    in_force: Status


@dataclass(frozen=True)
class StatusChange:
    subject_id: str
    status: str
    reason: str
    valid_until: datetime | None


def _record_of(subject_id: str, row: HealthStatus | None) -> StatusRecord:
    if row is None:
        return StatusRecord(subject_id, 0, None, None, None, None)
    return StatusRecord(
        subject_id, row.version, STATUS_OF[row.status], row.reason, row.valid_until, row.set_at
    )


async def _load_status(ctx: AppContext, subject_id: str) -> StatusRecord:
    record = _record_of(subject_id, await HealthStatus.get_or_none(subject_id=subject_id))
    await store.cache_status(ctx, subject_id, record.version, record.cached)
    return record


async def status_in_force(ctx: AppContext, subject_id: str, cached: bytes | None) -> Status:
    """The status in force now from its `cached` form, or from the row (then cached)."""
    default = ctx.runtime(CodesRuntime).config.default_status
    now = ctx.clock.now()
    if cached is not None:
        return store.status_from_cache(cached, now, default)
    return (await _load_status(ctx, subject_id)).in_force(now, default)


async def current_status(ctx: AppContext, subject_id: str) -> Status:
    """The status in force now: the last one set, or the default once its `valid_until`
    passed (or if none was ever set). Served from the key-value cache."""
    cached = await ctx.kv.get(store.status_key(ctx, subject_id))
    return await status_in_force(ctx, subject_id, cached)


async def status_report(ctx: AppContext, subject_id: str) -> StatusReport:
    """What GET /v1/health-status/{subject_id} shows: the row, then the status in force."""
    record = _record_of(subject_id, await HealthStatus.get_or_none(subject_id=subject_id))
    return StatusReport(record, await current_status(ctx, subject_id))


async def status_history(subject_id: str) -> list[HealthStatusChange]:
    return await HealthStatusChange.filter(subject_id=subject_id).order_by("set_at", "id").all()


def _check_changes(changes: Sequence[StatusChange], now: datetime) -> None:
    """All-or-nothing validation: every offending entry is listed, nothing is written."""
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, change in enumerate(changes):
        if change.status not in STATUS_OF:
            errors.append(_entry_error(i, "status", "must be green, yellow or red"))
        if change.valid_until is not None:
            if change.valid_until.tzinfo is None:
                errors.append(_entry_error(i, "valid_until", "needs a timezone"))
            elif change.valid_until <= now:
                errors.append(
                    _entry_error(i, "valid_until", "must be in the future", kind="in_the_past")
                )
        if change.subject_id in seen:
            errors.append(
                _entry_error(i, "subject_id", "appears twice in one batch", kind="duplicate")
            )
        seen.add(change.subject_id)
    if errors:
        raise ValidationFailed(errors, f"{len(errors)} invalid entries; nothing was changed")


def _entry_error(
    index: int, name: str, message: str, *, kind: str = "value_error"
) -> dict[str, Any]:
    # `kind` names the rules no schema can state (a time after now, one entry per subject),
    # so a client can tell them from a malformed entry.
    return {"field": f"entries.{index}.{name}", "message": message, "type": kind}


async def set_statuses(
    ctx: AppContext, principal: Principal, changes: Sequence[StatusChange]
) -> list[StatusRecord]:
    """Set many subjects' statuses in one transaction (all or nothing), keep each change
    in the history, then update the cache. Rows are locked so versions follow commits."""
    now = ctx.clock.now()
    _check_changes(changes, now)
    actor = actor_of(principal)
    try:
        records = await _write_statuses(changes, actor, now)
    except IntegrityError:
        # A concurrent first write created one of the rows this batch meant to create;
        # the rolled-back batch runs again and now updates that row.
        records = await _write_statuses(changes, actor, now)
    await store.cache_statuses(ctx, [(r.subject_id, r.version, r.cached) for r in records])
    return records


async def set_status(ctx: AppContext, principal: Principal, change: StatusChange) -> StatusReport:
    """Set one subject's status; the record written and the status now in force."""
    record = (await set_statuses(ctx, principal, [change]))[0]
    default = ctx.runtime(CodesRuntime).config.default_status
    return StatusReport(record, record.in_force(ctx.clock.now(), default))


async def _locked_rows(ids: Sequence[str]) -> dict[str, HealthStatus]:
    existing: dict[str, HealthStatus] = {}
    for start in range(0, len(ids), 1000):
        rows = await HealthStatus.filter(
            subject_id__in=ids[start : start + 1000]
        ).select_for_update()
        existing.update({row.subject_id: row for row in rows})
    return existing


async def _write_statuses(
    changes: Sequence[StatusChange], actor: str, now: datetime
) -> list[StatusRecord]:
    records: list[StatusRecord] = []
    async with in_transaction():
        existing = await _locked_rows([c.subject_id for c in changes])
        updated, created, history = [], [], []
        for change in changes:
            row = existing.get(change.subject_id)
            values = {
                "status": change.status,
                "reason": change.reason,
                "valid_until": change.valid_until,
                "version": row.version + 1 if row is not None else 1,
                "set_by": actor,
                "set_at": now,
            }
            if row is None:
                row = HealthStatus(subject_id=change.subject_id, **values)
                created.append(row)
            else:
                row.update_from_dict(values)
                updated.append(row)
            history.append(HealthStatusChange(subject_id=change.subject_id, **values))
            records.append(_record_of(change.subject_id, row))
        await _save_rows(created, updated, history)
    return records


async def _save_rows(
    created: list[HealthStatus], updated: list[HealthStatus], history: list[HealthStatusChange]
) -> None:
    if created:
        await HealthStatus.bulk_create(created, batch_size=1000)
    if updated:
        # These rows exist and are locked: an INSERT ... ON CONFLICT DO UPDATE updates
        # them in one statement per 1000, far faster than the ORM's bulk UPDATE (one
        # CASE expression per column), and unlike delete + insert it keeps the locks.
        await HealthStatus.bulk_create(
            updated,
            batch_size=1000,
            on_conflict=["subject_id"],
            update_fields=["status", "reason", "valid_until", "version", "set_by", "set_at"],
        )
    await HealthStatusChange.bulk_create(history, batch_size=1000)
