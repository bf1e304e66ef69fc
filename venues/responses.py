"""Building the venues endpoints' responses (`venues/schemas.py`) from the domain's objects."""

from __future__ import annotations

from collections.abc import Sequence

from venues.bookings import MyBooking
from venues.catalogue import RegisteredGate, policy_of
from venues.checkins import CheckIn
from venues.models import Entry, Reservation, Slot, Venue
from venues.offline import SignedBundle
from venues.schemas import (
    BundleOut,
    CheckinOut,
    Display,
    EntryOut,
    GateContactOut,
    GateHourOut,
    GateOut,
    MyReservationList,
    MyReservationOut,
    PolicyOut,
    ReservationOut,
    SlotCountOut,
    SlotOut,
    SyncOut,
    SyncResult,
    VenueBrief,
    VenueOut,
    VenueStatsOut,
    VisitList,
    VisitOut,
)
from venues.states import SyncOutcome
from venues.stats import VenueStats
from venues.sync import SyncedScan
from venues.visits import VisitRecord


def venue_out(venue: Venue) -> VenueOut:
    return VenueOut(
        id=venue.id,
        name=venue.name,
        kind=venue.kind,
        district=venue.district,
        address=venue.address,
        opening_hours=venue.opening_hours,
        capacity=venue.capacity,
        occupancy=venue.occupancy,
        policy=PolicyOut(**policy_of(venue).as_json()),
        created_at=venue.created_at,
        updated_at=venue.updated_at,
    )


def gate_out(registered: RegisteredGate) -> GateOut:
    gate = registered.gate
    return GateOut(
        id=gate.id,
        venue_id=gate.venue_id,
        name=gate.name,
        direction=gate.direction,
        client_id=gate.client_id,
        client_secret=registered.client_secret,
        scope=registered.scope,
    )


def slot_out(slot: Slot) -> SlotOut:
    return SlotOut(
        id=slot.id,
        venue_id=slot.venue_id,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        capacity=slot.capacity,
        walk_in=slot.walk_in,
        booked=slot.booked,
        available=max(0, slot.capacity - slot.walk_in - slot.booked),
    )


def reservation_out(reservation: Reservation, slot: Slot) -> ReservationOut:
    return ReservationOut(
        id=reservation.id,
        slot_id=slot.id,
        venue_id=slot.venue_id,
        starts_at=slot.starts_at,
        ends_at=slot.ends_at,
        party_size=reservation.party_size,
        status=reservation.status,
        created_at=reservation.created_at,
        cancelled_at=reservation.cancelled_at,
    )


def entry_out(entry: Entry) -> EntryOut:
    display = (entry.response or {}).get("display") or {}
    return EntryOut(
        id=entry.id,
        scan_id=entry.scan_id,
        gate_id=entry.gate_id,
        direction=entry.direction,
        decision=entry.decision,
        reason=entry.reason,
        masked_name=display.get("masked_name"),
        status=display.get("status"),
        offline=entry.offline,
        scanned_at=entry.scanned_at,
        recorded_at=entry.recorded_at,
        annulled_at=entry.annulled_at,
    )


def bundle_out(bundle: SignedBundle) -> BundleOut:
    return BundleOut(
        bundle=bundle.token, kid=bundle.kid, expires_at=bundle.expires_at, document=bundle.document
    )


def sync_out(results: Sequence[SyncedScan], occupancy: int) -> SyncOut:
    items = [SyncResult(scan_id=r.scan_id, outcome=r.outcome, conflicts=list(r.conflicts),
                        reason=r.reason) for r in results]  # fmt: skip
    stored = (SyncOutcome.RECORDED, SyncOutcome.CONFLICT)
    return SyncOut(
        recorded=sum(r.outcome in stored for r in results),
        duplicates=sum(r.outcome == SyncOutcome.DUPLICATE for r in results),
        rejected=sum(r.outcome == SyncOutcome.REJECTED for r in results),
        conflicts=[r for r in items if r.conflicts],
        results=items,
        occupancy=occupancy,
    )


def checkin_out(done: CheckIn) -> CheckinOut:
    venue = done.venue
    return CheckinOut(
        visit_id=done.visit.id,
        venue=VenueBrief(id=venue.id, name=venue.name, kind=venue.kind, address=venue.address),
        display=Display(masked_name=done.masked_name, status=done.visit.status),
        checked_in_at=done.visit.checked_in_at,
    )


def visit_list(records: Sequence[VisitRecord]) -> VisitList:
    return VisitList(
        items=[
            VisitOut(kind=r.kind, venue_id=r.venue_id, venue_name=r.venue_name, at=r.at)
            for r in records
        ]
    )


def my_reservation_list(records: Sequence[MyBooking]) -> MyReservationList:
    return MyReservationList(
        items=[
            MyReservationOut(
                **reservation_out(r.reservation, r.slot).model_dump(),
                venue_name=r.venue_name,
                cancellable=r.cancellable,
            )
            for r in records
        ]
    )


def stats_out(stats: VenueStats) -> VenueStatsOut:
    return VenueStatsOut(
        venue_id=stats.venue_id,
        day=stats.day,
        occupancy=stats.occupancy,
        capacity=stats.capacity,
        by_gate_hour=[GateHourOut(**vars(h)) for h in stats.by_gate_hour],
        gates=[GateContactOut(**vars(g)) for g in stats.gates],
        slots=[SlotCountOut(**vars(s)) for s in stats.slots],
    )
