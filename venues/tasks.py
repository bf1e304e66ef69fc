"""The venues domain's background jobs: counting no-shows when slots end, and purging
personal records past the retention period into daily counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from app.context import AppContext
from venues.bookings import mark_no_show, party_entered, unused_bookings
from venues.config import VenueRules, VenuesRuntime
from venues.models import (
    Admission,
    DailyCount,
    Entry,
    NoShow,
    Presence,
    Reservation,
    Slot,
    Suspension,
    Visit,
)
from venues.policy import ADMIT
from venues.states import Direction


async def count_no_shows(ctx: AppContext) -> int:
    """Slots that ended: each booking nobody of its party used is a no-show of the booker,
    and enough no-shows in the window suspend the booker's booking."""
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    counted = 0
    ended = await Slot.filter(ends_at__lte=now, no_shows_counted=False).limit(500)
    for slot in ended:
        async with in_transaction():
            # Claiming the slot makes the count happen once even with several workers.
            if not await Slot.filter(id=slot.id, no_shows_counted=False).update(
                no_shows_counted=True
            ):
                continue
            for reservation in await unused_bookings(slot):
                if await party_entered(reservation, slot, rules):
                    continue
                await mark_no_show(reservation, slot, rules, now)
                counted += 1
    return counted


@dataclass
class _Counts:
    admits: int = 0
    denies: int = 0
    exits: int = 0
    checkins: int = 0


async def purge(ctx: AppContext, *, batch: int = 2000) -> int:
    """Delete entries, visits, presences and past bookings older than the retention
    period, adding what is deleted to the daily counts per venue first."""
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    cutoff = now - timedelta(days=rules.retention_days)
    removed = 0
    while purged := await _purge_batch(rules, cutoff, batch):
        removed += purged
    return removed + await _purge_rest(rules, cutoff, now)


async def _purge_batch(rules: VenueRules, cutoff: datetime, batch: int) -> int:
    """Fold one batch of old entries and visits into the daily counts and delete them;
    0 when none are left."""
    rows = await Entry.filter(scanned_at__lt=cutoff).order_by("id").limit(batch)
    visits = await Visit.filter(checked_in_at__lt=cutoff).order_by("id").limit(batch)
    if not rows and not visits:
        return 0
    counts = _tally(rules, rows, visits)
    async with in_transaction():
        for (venue_id, day), c in counts.items():
            await _add_counts(venue_id, day, c)
        await Entry.filter(id__in=[e.id for e in rows]).delete()
        await Visit.filter(id__in=[v.id for v in visits]).delete()
    return len(rows) + len(visits)


def _tally(
    rules: VenueRules, rows: Sequence[Entry], visits: Sequence[Visit]
) -> dict[tuple[str, date], _Counts]:
    counts: dict[tuple[str, date], _Counts] = {}
    for entry in rows:
        c = counts.setdefault((entry.venue_id, rules.local_day(entry.scanned_at)), _Counts())
        if entry.annulled_at is not None:
            continue
        if entry.direction == Direction.OUT:
            c.exits += entry.decision == ADMIT
        elif entry.decision == ADMIT:
            c.admits += 1
        else:
            c.denies += 1
    for visit in visits:
        key = (visit.venue_id, rules.local_day(visit.checked_in_at))
        counts.setdefault(key, _Counts()).checkins += 1
    return counts


async def _purge_rest(rules: VenueRules, cutoff: datetime, now: datetime) -> int:
    """Presences, admissions, bookings, no-shows and suspensions nobody needs any more."""
    removed = await Admission.filter(admitted_at__lt=cutoff).delete()
    removed += await Presence.filter(inside=False, exited_at__lt=cutoff).delete()
    removed += await Presence.filter(inside=False, exited_at=None, entered_at__lt=cutoff).delete()
    removed += await Reservation.filter(
        slot_id__in=[s.id for s in await Slot.filter(ends_at__lt=cutoff).only("id")]
    ).delete()
    window = max(rules.retention_days, rules.no_show_window_days)
    removed += await NoShow.filter(at__lt=now - timedelta(days=window)).delete()
    removed += await Suspension.filter(until__lt=now).delete()
    return removed


async def _add_counts(venue_id: str, day: date, c: _Counts) -> None:
    changed = await DailyCount.filter(venue_id=venue_id, day=day).update(
        admits=F("admits") + c.admits,
        denies=F("denies") + c.denies,
        exits=F("exits") + c.exits,
        checkins=F("checkins") + c.checkins,
    )
    if not changed:
        await DailyCount.create(
            venue_id=venue_id,
            day=day,
            admits=c.admits,
            denies=c.denies,
            exits=c.exits,
            checkins=c.checkins,
        )
