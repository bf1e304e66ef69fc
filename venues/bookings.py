"""Time slots and reservations: publishing slots, booking a party without ever overbooking,
cancelling, and marking the bookings nobody used as no-shows of their booker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from auth.api import Principal, subject_for_request
from venues import store
from venues.catalogue import get_venue, new_id
from venues.config import VenueRules, VenuesRuntime
from venues.errors import (
    AlreadyBooked,
    CancellationClosed,
    ReservationNotFound,
    SlotFull,
    SlotInvalid,
    SlotNotFound,
)
from venues.models import Entry, NoShow, Reservation, Seat, Slot, Suspension, Venue
from venues.policy import ADMIT
from venues.rules import check_booking, may_cancel, suspension_until
from venues.states import RESERVATION, Direction, ReservationStatus


async def create_slot(
    ctx: AppContext,
    venue_id: str,
    *,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    walk_in: int,
) -> Slot:
    await get_venue(venue_id)
    if ends_at <= starts_at:
        raise SlotInvalid("ends_at must be after starts_at")
    if walk_in > capacity:
        raise SlotInvalid("walk_in cannot exceed capacity")
    if ends_at <= ctx.clock.now():
        raise SlotInvalid("the slot is already over")
    return await Slot.create(
        id=new_id("slot"),
        venue_id=venue_id,
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        walk_in=walk_in,
        created_at=ctx.clock.now(),
    )


async def list_slots(ctx: AppContext, venue_id: str, day: date | None) -> list[Slot]:
    await get_venue(venue_id)
    rules = ctx.runtime(VenuesRuntime).rules
    query = Slot.filter(venue_id=venue_id)
    if day is not None:
        start, end = rules.day_bounds(day)
        query = query.filter(starts_at__gte=start, starts_at__lt=end)
    else:
        query = query.filter(ends_at__gt=ctx.clock.now())
    return await query.order_by("starts_at").limit(500)


@dataclass(frozen=True)
class Booking:
    reservation: Reservation
    slot: Slot


async def _move(
    reservation_id: str, current: ReservationStatus, target: ReservationStatus, **fields: Any
) -> bool:
    """The one way a reservation's status changes: a conditional update from `current`."""
    status = RESERVATION.advance(current, target)
    return bool(
        await Reservation.filter(id=reservation_id, status=current).update(status=status, **fields)
    )


async def _party(principal: Principal, dependents: Sequence[str]) -> list[str]:
    booker = await subject_for_request(principal, None)
    party = [booker]
    for dependent_id in dependents:
        subject = await subject_for_request(principal, dependent_id)
        if subject not in party:
            party.append(subject)
    return party


async def _bookable_slot(rules: VenueRules, slot_id: str, party: list[str], now: datetime) -> Slot:
    """The slot, once the booking rules allow this party to book it."""
    slot = await Slot.get_or_none(id=slot_id)
    if slot is None:
        raise SlotNotFound()
    suspension = await Suspension.get_or_none(subject_id=party[0])
    check_booking(
        rules,
        now=now,
        slot_starts_at=slot.starts_at,
        slot_ends_at=slot.ends_at,
        party_size=len(party),
        suspended_until=suspension.until if suspension is not None else None,
    )
    return slot


async def _seat_party(reservation: Reservation, slot: Slot, party: list[str]) -> None:
    """Take the places and save the booking with one seat per person, all or nothing."""
    try:
        async with in_transaction():
            if not await store.take_places(slot.id, len(party)):
                raise SlotFull(extra={"slot_id": slot.id})
            await reservation.save(force_create=True)
            await Seat.bulk_create(
                [
                    Seat(
                        reservation_id=reservation.id,
                        venue_id=slot.venue_id,
                        day=reservation.day,
                        subject_id=subject,
                        starts_at=slot.starts_at,
                        ends_at=slot.ends_at,
                    )
                    for subject in party
                ]
            )
    except IntegrityError:
        # The seats' unique key: someone in the party holds a booking there that day.
        # The transaction rolled back, so the slot's places were given back too.
        raise AlreadyBooked("someone in the party already has a booking here that day") from None


async def book(
    ctx: AppContext, principal: Principal, slot_id: str, dependents: Sequence[str]
) -> Booking:
    """Book a slot for the resident and the dependents they guard: never overbooked."""
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    party = await _party(principal, dependents)
    slot = await _bookable_slot(rules, slot_id, party, now)
    reservation = Reservation(
        id=new_id("res"),
        slot_id=slot.id,
        venue_id=slot.venue_id,
        day=rules.local_day(slot.starts_at),
        account_id=principal.id,
        booker_subject_id=party[0],
        party_size=len(party),
        status=ReservationStatus.BOOKED,
        created_at=now,
    )
    await _seat_party(reservation, slot, party)
    await slot.refresh_from_db()
    return Booking(reservation, slot)


async def cancel_reservation(ctx: AppContext, principal: Principal, reservation_id: str) -> Booking:
    now = ctx.clock.now()
    reservation = await Reservation.get_or_none(id=reservation_id, account_id=principal.id)
    if reservation is None:
        raise ReservationNotFound()
    slot = await Slot.get(id=reservation.slot_id)
    if reservation.status == ReservationStatus.CANCELLED:
        return Booking(reservation, slot)
    if reservation.status != ReservationStatus.BOOKED or not may_cancel(
        now=now, slot_starts_at=slot.starts_at
    ):
        raise CancellationClosed("the slot has started; the booking can no longer be cancelled")
    async with in_transaction():
        if await _move(
            reservation.id, ReservationStatus.BOOKED, ReservationStatus.CANCELLED, cancelled_at=now
        ):
            await Seat.filter(reservation_id=reservation.id).delete()
            await store.give_back_places(slot.id, reservation.party_size)
    await reservation.refresh_from_db()
    await slot.refresh_from_db()
    return Booking(reservation, slot)


async def unused_bookings(slot: Slot) -> list[Reservation]:
    """Bookings of a slot still booked and never marked used at a gate."""
    return await Reservation.filter(slot_id=slot.id, status=ReservationStatus.BOOKED, used_at=None)


async def party_entered(reservation: Reservation, slot: Slot, rules: VenueRules) -> bool:
    """Whether someone of the party was admitted during the slot's window. Venues that do
    not require reservations never mark bookings used at the gate, so this asks the
    entries instead (only when a slot ends, off the scan path)."""
    subjects = await Seat.filter(reservation_id=reservation.id).values_list("subject_id", flat=True)
    return await Entry.filter(
        venue_id=reservation.venue_id,
        subject_id__in=list(subjects),
        direction=Direction.IN,
        decision=ADMIT,
        annulled_at=None,
        scanned_at__gte=slot.starts_at - rules.early_entry,
        scanned_at__lt=slot.ends_at,
    ).exists()


async def mark_no_show(
    reservation: Reservation, slot: Slot, rules: VenueRules, now: datetime
) -> None:
    """Count the booking as a no-show of its booker, suspending their booking when the
    no-shows inside the window reach the limit."""
    await _move(reservation.id, ReservationStatus.BOOKED, ReservationStatus.NO_SHOW)
    await NoShow.create(
        subject_id=reservation.booker_subject_id,
        venue_id=reservation.venue_id,
        reservation_id=reservation.id,
        at=slot.ends_at,
    )
    times = await NoShow.filter(
        subject_id=reservation.booker_subject_id,
        at__gt=now - timedelta(days=rules.no_show_window_days),
    ).values_list("at", flat=True)
    until = suspension_until(rules, list(times), now)  # type: ignore[arg-type]
    if until is not None:
        await _suspend(reservation.booker_subject_id, until)


async def _suspend(subject_id: str, until: datetime) -> None:
    current = await Suspension.get_or_none(subject_id=subject_id)
    if current is None:
        await Suspension.create(subject_id=subject_id, until=until)
    elif current.until < until:
        await Suspension.filter(subject_id=subject_id).update(until=until)


@dataclass(frozen=True)
class MyBooking:
    reservation: Reservation
    slot: Slot
    venue_name: str
    cancellable: bool


async def my_reservations(
    ctx: AppContext, principal: Principal, limit: int = 100
) -> list[MyBooking]:
    """The resident's own bookings (made from this account), newest first."""
    now = ctx.clock.now()
    rows = (
        await Reservation.filter(account_id=principal.id)
        .order_by("-created_at", "-id")
        .limit(limit)
        .prefetch_related("slot")
    )
    names = dict(await Venue.filter(id__in={r.venue_id for r in rows}).values_list("id", "name"))
    return [
        MyBooking(
            reservation=r,
            slot=r.slot,
            venue_name=str(names.get(r.venue_id, "")),
            cancellable=r.status == ReservationStatus.BOOKED
            and may_cancel(now=now, slot_starts_at=r.slot.starts_at),
        )
        for r in rows
    ]
