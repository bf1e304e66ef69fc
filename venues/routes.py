"""HTTP endpoints of the venues domain for operators and residents: venues, gates, slots,
reservations, place codes, check-ins, occupancy, entries, stats and visits (what gate
devices call is in `venues/gate_routes.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import NotFound
from app.http import endpoint, json_response, read_json, read_query
from auth.api import IdentityRequired, require
from auth.api import scopes as sc
from codes.api import PlaceCodeInvalid, qr_png, qr_svg
from venues import bookings, catalogue, checkins, slips, stats, visits
from venues.config import VenuesRuntime
from venues.errors import (
    AlreadyBooked,
    BookingNotOpen,
    BookingSuspended,
    CancellationClosed,
    PartyTooLarge,
    ReservationNotFound,
    SlotFull,
    SlotInPast,
    SlotInvalid,
    SlotNotFound,
    VenueNotFound,
)
from venues.responses import (
    checkin_out,
    entry_out,
    gate_out,
    my_reservation_list,
    reservation_out,
    slot_out,
    stats_out,
    venue_out,
    visit_list,
)
from venues.schemas import (
    BookingRulesOut,
    CheckinIn,
    CheckinOut,
    EntriesQuery,
    EntryPage,
    GateIn,
    GateOut,
    MyReservationList,
    OccupancyOut,
    PlaceCodeOut,
    PlaceCodeQuery,
    ReservationIn,
    ReservationOut,
    SlotIn,
    SlotList,
    SlotOut,
    SlotQuery,
    StatsQuery,
    VenueIn,
    VenueList,
    VenueOut,
    VenuePatch,
    VenuesQuery,
    VenueStatsOut,
    VisitList,
)
from venues.states import GateDirection

TAGS = ["venues"]
GATE_TAGS = ["gates"]
NO_STORE = {"Cache-Control": "no-store"}
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
# QR module size in pixels: a phone screen, or an A4 poster printed at 300 dpi.
BOX_SIZES = {"screen": 8, "poster": 40}


# -- venues ---------------------------------------------------------------------------


@endpoint(
    summary="Create a venue (platform admin)",
    body=VenueIn,
    response=VenueOut,
    status=201,
    auth=sc.ADMIN,
    tags=TAGS,
)
async def post_venue(request: Request) -> Response:
    await require(request, sc.ADMIN)
    body = await read_json(request, VenueIn)
    venue = await catalogue.create_venue(
        app_context(request),
        name=body.name,
        kind=body.kind,
        district=body.district,
        address=body.address,
        opening_hours={str(day): hours for day, hours in body.opening_hours.items()},
        capacity=body.capacity,
        policy=body.policy.model_dump(),
    )
    return json_response(venue_out(venue), status=201)


@endpoint(summary="List venues", query=VenuesQuery, response=VenueList, tags=TAGS)
async def get_venues(request: Request) -> Response:
    query = read_query(request, VenuesQuery)
    venues = await catalogue.list_venues(kind=query.kind, district=query.district)
    return json_response(VenueList(items=[venue_out(v) for v in venues]))


@endpoint(summary="One venue", response=VenueOut, errors=[VenueNotFound], tags=TAGS)
async def get_venue(request: Request) -> Response:
    return json_response(venue_out(await catalogue.get_venue(request.path_params["venue_id"])))


@endpoint(
    summary="Edit a venue (its operator)",
    body=VenuePatch,
    response=VenueOut,
    errors=[VenueNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def patch_venue(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, [sc.VENUES_MANAGE, sc.ADMIN], tenant_id=venue_id)
    body = await read_json(request, VenuePatch)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    venue = await catalogue.update_venue(app_context(request), venue_id, changes)
    return json_response(venue_out(venue))


@endpoint(
    summary="Register a gate; its client credentials are shown only here",
    body=GateIn,
    response=GateOut,
    status=201,
    errors=[VenueNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def post_gate(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    principal = await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    body = await read_json(request, GateIn)
    registered = await catalogue.register_gate(
        app_context(request),
        venue_id,
        name=body.name,
        direction=GateDirection(body.direction),
        actor=principal,
    )
    return json_response(gate_out(registered), status=201, headers=NO_STORE)


# -- slots and reservations -------------------------------------------------------------


@endpoint(
    summary="Publish a time slot (its operator)",
    body=SlotIn,
    response=SlotOut,
    status=201,
    errors=[VenueNotFound, SlotInvalid],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def post_slot(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    body = await read_json(request, SlotIn)
    slot = await bookings.create_slot(
        app_context(request),
        venue_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        capacity=body.capacity,
        walk_in=body.walk_in,
    )
    return json_response(slot_out(slot), status=201)


@endpoint(
    summary="Time slots of a venue (upcoming, or of one local day)",
    query=SlotQuery,
    response=SlotList,
    errors=[VenueNotFound],
    tags=TAGS,
)
async def get_slots(request: Request) -> Response:
    query = read_query(request, SlotQuery)
    slots = await bookings.list_slots(
        app_context(request), request.path_params["venue_id"], query.day
    )
    rules = app_context(request).runtime(VenuesRuntime).rules
    return json_response(
        SlotList(
            items=[slot_out(s) for s in slots],
            rules=BookingRulesOut(
                max_party=rules.max_party, booking_opens_days=rules.booking_opens_days
            ),
        )
    )


@endpoint(
    summary="Book a slot for yourself and dependents you guard",
    body=ReservationIn,
    response=ReservationOut,
    status=201,
    errors=[
        SlotNotFound,
        SlotFull,
        AlreadyBooked,
        SlotInPast,
        BookingNotOpen,
        PartyTooLarge,
        BookingSuspended,
        IdentityRequired,
        NotFound,
    ],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_reservation(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, ReservationIn)
    booking = await bookings.book(app_context(request), principal, body.slot_id, body.dependents)
    return json_response(reservation_out(booking.reservation, booking.slot), status=201)


@endpoint(
    summary="Cancel a booking (until its slot starts)",
    response=ReservationOut,
    errors=[ReservationNotFound, CancellationClosed],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def delete_reservation(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    booking = await bookings.cancel_reservation(
        app_context(request), principal, request.path_params["reservation_id"]
    )
    return json_response(reservation_out(booking.reservation, booking.slot))


@endpoint(
    summary="Your own bookings, newest first, with the venue's name and the slot's times",
    response=MyReservationList,
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_my_reservations(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    records = await bookings.my_reservations(app_context(request), principal)
    return json_response(my_reservation_list(records), headers=NO_STORE)


# -- place codes, check-ins, occupancy, entries, visits -------------------------------------


@endpoint(
    summary="The venue's static signed place code (JSON, PNG or SVG; screen or poster size)",
    query=PlaceCodeQuery,
    response=PlaceCodeOut,
    errors=[VenueNotFound],
    media_types=list(IMAGE_TYPES.values()),
    tags=TAGS,
)
async def get_place_code(request: Request) -> Response:
    query = read_query(request, PlaceCodeQuery)
    venue = await catalogue.get_venue(request.path_params["venue_id"])
    shape: str | None = query.format
    if shape is None:
        accept = request.headers.get("accept", "")
        shape = next((n for n, m in IMAGE_TYPES.items() if m in accept), "json")
    box = BOX_SIZES[query.size]
    if shape == "png":
        return Response(qr_png(venue.place_code, box), media_type="image/png")
    if shape == "svg":
        return Response(qr_svg(venue.place_code, box), media_type="image/svg+xml")
    return json_response(
        PlaceCodeOut(venue_id=venue.id, name=venue.name, place_code=venue.place_code)
    )


@endpoint(
    summary="Check in by scanning a venue's place code",
    body=CheckinIn,
    response=CheckinOut,
    status=201,
    errors=[PlaceCodeInvalid, VenueNotFound, IdentityRequired, NotFound],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def post_checkin(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    body = await read_json(request, CheckinIn)
    done = await checkins.check_in(
        app_context(request), principal, body.place_code, body.dependent_id
    )
    return json_response(checkin_out(done), status=201)


@endpoint(
    summary="Live occupancy (the venue's operator)",
    response=OccupancyOut,
    errors=[VenueNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def get_occupancy(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    venue = await catalogue.get_venue(venue_id)
    out = OccupancyOut(
        venue_id=venue.id,
        occupancy=venue.occupancy,
        capacity=venue.capacity,
        available=max(0, venue.capacity - venue.occupancy),
    )
    return json_response(out, headers=NO_STORE)


@endpoint(
    summary="Entry log, newest first (the venue's operator); filter by gate and time",
    query=EntriesQuery,
    response=EntryPage,
    errors=[VenueNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def get_entries(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    query = read_query(request, EntriesQuery)
    rows, next_cursor = await visits.list_entries(
        venue_id,
        gate_id=query.gate_id,
        since=query.since,
        until=query.until,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(EntryPage(items=[entry_out(e) for e in rows], next_cursor=next_cursor))


@endpoint(
    summary="A day at the venue (its operator): occupancy, entries by gate and hour, gates' "
    "last contact and bundle age, slots with booked and entered counts",
    query=StatsQuery,
    response=VenueStatsOut,
    errors=[VenueNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def get_stats(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    query = read_query(request, StatsQuery)
    day = await stats.day_stats(app_context(request), venue_id, query.day)
    return json_response(stats_out(day), headers=NO_STORE)


@endpoint(
    summary="Your own visits: check-ins and gate entries",
    response=VisitList,
    errors=[IdentityRequired],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_my_visits(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    return json_response(visit_list(await visits.my_visits(principal)))


routes = [
    Route("/v1/venues", post_venue, methods=["POST"]),
    Route("/v1/venues", get_venues, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}", get_venue, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}", patch_venue, methods=["PATCH"]),
    Route("/v1/venues/{venue_id:id}/gates", post_gate, methods=["POST"]),
    Route("/v1/venues/{venue_id:id}/slots", post_slot, methods=["POST"]),
    Route("/v1/venues/{venue_id:id}/slots", get_slots, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}/place-code", get_place_code, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}/occupancy", get_occupancy, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}/entries", get_entries, methods=["GET"]),
    Route("/v1/venues/{venue_id:id}/stats", get_stats, methods=["GET"]),
    Route("/v1/reservations", post_reservation, methods=["POST"]),
    Route("/v1/reservations/{reservation_id:id}", delete_reservation, methods=["DELETE"]),
    Route("/v1/checkins", post_checkin, methods=["POST"]),
    Route("/v1/residents/me/visits", get_my_visits, methods=["GET"]),
    Route("/v1/residents/me/reservations", get_my_reservations, methods=["GET"]),
    *slips.routes,  # printable booking and visits slips (PDF)
]
