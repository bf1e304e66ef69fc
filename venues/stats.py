"""The operator's view of one venue-local day: occupancy now, entries and exits by gate and
local hour, the gates' last contact and bundle age, and the day's slots with booked and
entered counts (`GET /v1/venues/{id}/stats`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any

from app.context import AppContext
from venues.catalogue import get_venue
from venues.config import VenuesRuntime
from venues.models import Entry, Gate, Reservation, Slot
from venues.states import Direction, ScanDecision

# (gate_id, direction, scanned_at, reservation_id) of one counted scan
Row = tuple[Any, ...]


@dataclass(frozen=True)
class GateHour:
    gate_id: str
    gate_name: str
    hour: int
    entries: int
    exits: int


@dataclass(frozen=True)
class GateContact:
    id: str
    name: str
    direction: str
    last_contact_at: datetime | None
    bundle_fetched_at: datetime | None
    bundle_age_s: int | None


@dataclass(frozen=True)
class SlotCount:
    id: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int
    entered: int


@dataclass(frozen=True)
class VenueStats:
    venue_id: str
    day: date
    occupancy: int
    capacity: int
    by_gate_hour: list[GateHour]
    gates: list[GateContact]
    slots: list[SlotCount]


async def day_stats(ctx: AppContext, venue_id: str, day: date | None) -> VenueStats:
    """The stats of a venue-local day (today when `day` is None).

    Entries and exits are the scans that moved the occupancy (`counted`, not annulled):
    a denied scan, a repeat of an admission, an exit of someone not inside or an entry
    already counted (no anti-passback) is not a person coming in or going out. A slot's
    `entered` counts the entries made with one of its reservations plus the entries without
    a reservation scanned during its time."""
    rules = ctx.runtime(VenuesRuntime).rules
    now = ctx.clock.now()
    venue = await get_venue(venue_id)
    day = day or rules.local_day(now)
    start, end = rules.day_bounds(day)
    gates = await Gate.filter(venue_id=venue_id).order_by("name", "id")
    rows = await Entry.filter(
        venue_id=venue_id,
        scanned_at__gte=start,
        scanned_at__lt=end,
        decision=ScanDecision.ADMIT,
        counted=True,
        annulled_at=None,
    ).values_list("gate_id", "direction", "scanned_at", "reservation_id")
    slots = await Slot.filter(venue_id=venue_id, starts_at__gte=start, starts_at__lt=end).order_by(
        "starts_at", "id"
    )
    entered = await _entered_per_slot(rows, slots)
    return VenueStats(
        venue_id=venue.id,
        day=day,
        occupancy=venue.occupancy,
        capacity=venue.capacity,
        by_gate_hour=_by_gate_hour(rows, gates, rules.tz),
        gates=[_contact(g, now) for g in gates],
        slots=[
            SlotCount(s.id, s.starts_at, s.ends_at, s.capacity, s.booked, entered[s.id])
            for s in slots
        ],
    )


def _by_gate_hour(rows: Sequence[Row], gates: Sequence[Gate], tz: tzinfo) -> list[GateHour]:
    names = {g.id: g.name for g in gates}
    order = {g.id: n for n, g in enumerate(gates)}
    ins: Counter[tuple[str, int]] = Counter()
    outs: Counter[tuple[str, int]] = Counter()
    for gate_id, direction, scanned_at, _ in rows:
        key = (gate_id, scanned_at.astimezone(tz).hour)
        (ins if direction == Direction.IN else outs)[key] += 1
    keys = sorted(set(ins) | set(outs), key=lambda k: (k[1], order.get(k[0], len(order)), k[0]))
    return [
        GateHour(gate_id, names.get(gate_id, gate_id), hour, ins[(gate_id, hour)],
                 outs[(gate_id, hour)])
        for gate_id, hour in keys
    ]  # fmt: skip


def _contact(gate: Gate, now: datetime) -> GateContact:
    fetched = gate.bundle_fetched_at
    age = None if fetched is None else max(0, int((now - fetched).total_seconds()))
    return GateContact(gate.id, gate.name, gate.direction, gate.last_contact_at, fetched, age)


async def _entered_per_slot(rows: Sequence[Row], slots: Sequence[Slot]) -> Counter[str]:
    slot_of: dict[str, str] = {}
    if slots:
        reserved = await Reservation.filter(slot_id__in=[s.id for s in slots]).values_list(
            "id", "slot_id"
        )
        slot_of = {rid: sid for rid, sid in reserved}
    entered: Counter[str] = Counter()
    for _, direction, scanned_at, reservation_id in rows:
        if direction != Direction.IN:
            continue
        if reservation_id is not None and reservation_id in slot_of:
            entered[slot_of[reservation_id]] += 1
        elif reservation_id is None:
            during = next((s.id for s in slots if s.starts_at <= scanned_at < s.ends_at), None)
            if during is not None:
                entered[during] += 1
    return entered
