"""HTTP endpoints of the venues domain: venues, gates, slots, reservations, gate scans,
offline bundles and sync, place codes, check-ins, occupancy, entries and visits."""

from __future__ import annotations

from datetime import date

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import IdempotencyKeyReused, NotFound
from app.http import endpoint, json_response, read_json, read_query
from auth import scopes as sc
from auth.authz import require
from auth.errors import IdentityRequired
from codes import qr
from codes.errors import PlaceCodeInvalid
from venues import service
from venues.errors import (
    AlreadyBooked,
    AnnulWindowPassed,
    BookingNotOpen,
    BookingSuspended,
    CancellationClosed,
    DirectionNotSupported,
    GateNotFound,
    PartyTooLarge,
    ReservationNotFound,
    ScanClockSkewed,
    ScanNotAnnullable,
    ScanNotFound,
    SlotFull,
    SlotInPast,
    SlotInvalid,
    SlotNotFound,
    VenueNotFound,
)
from venues.models import Entry, Gate, Reservation, Slot, Venue
from venues.schemas import (
    AnnulOut,
    BundleOut,
    CheckinIn,
    CheckinOut,
    Display,
    EntriesQuery,
    EntryOut,
    EntryPage,
    GateIn,
    GateOut,
    JwksOut,
    OccupancyOut,
    PlaceCodeOut,
    PlaceCodeQuery,
    PolicyOut,
    ReservationIn,
    ReservationOut,
    ScanIn,
    ScanOut,
    SlotIn,
    SlotList,
    SlotOut,
    SlotQuery,
    SyncIn,
    SyncOut,
    SyncResult,
    VenueBrief,
    VenueIn,
    VenueList,
    VenueOut,
    VenuePatch,
    VisitList,
    VisitOut,
)

TAGS = ["venues"]
GATE_TAGS = ["gates"]
NO_STORE = {"Cache-Control": "no-store"}
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
# QR module size in pixels: a phone screen, or an A4 poster printed at 300 dpi.
BOX_SIZES = {"screen": 8, "poster": 40}


def venue_out(venue: Venue) -> VenueOut:
    p = service.policy_of(venue)
    return VenueOut(
        id=venue.id,
        name=venue.name,
        kind=venue.kind,
        district=venue.district,
        address=venue.address,
        opening_hours=venue.opening_hours,
        capacity=venue.capacity,
        occupancy=venue.occupancy,
        policy=PolicyOut(
            allowed_statuses=sorted(p.allowed_statuses),
            reservation_required=p.reservation_required,
            anti_passback=p.anti_passback,
            reentry_allowed=p.reentry_allowed,
            min_age=p.min_age,
        ),
        created_at=venue.created_at,
        updated_at=venue.updated_at,
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
    body = await read_json(request, VenueIn)
    await require(request, sc.ADMIN)
    venue = await service.create_venue(
        app_context(request),
        name=body.name,
        kind=body.kind,
        district=body.district,
        address=body.address,
        opening_hours=body.opening_hours,
        capacity=body.capacity,
        policy=body.policy.model_dump(),
    )
    return json_response(venue_out(venue), status=201)


@endpoint(summary="List venues", response=VenueList, tags=TAGS)
async def get_venues(request: Request) -> Response:
    venues = await service.list_venues(
        kind=request.query_params.get("kind"), district=request.query_params.get("district")
    )
    return json_response(VenueList(items=[venue_out(v) for v in venues]))


@endpoint(summary="One venue", response=VenueOut, errors=[VenueNotFound], tags=TAGS)
async def get_venue(request: Request) -> Response:
    return json_response(venue_out(await service.get_venue(request.path_params["venue_id"])))


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
    body = await read_json(request, VenuePatch)
    await require(request, [sc.VENUES_MANAGE, sc.ADMIN], tenant_id=venue_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    venue = await service.update_venue(app_context(request), venue_id, changes)
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
    body = await read_json(request, GateIn)
    principal = await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    registered = await service.register_gate(
        app_context(request), venue_id, name=body.name, direction=body.direction, actor=principal
    )
    gate: Gate = registered.gate
    out = GateOut(
        id=gate.id,
        venue_id=gate.venue_id,
        name=gate.name,
        direction=gate.direction,
        client_id=gate.client_id,
        client_secret=registered.client_secret,
        scope=registered.scope,
    )
    return json_response(out, status=201, headers=NO_STORE)


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
    body = await read_json(request, SlotIn)
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    slot = await service.create_slot(
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
    day = date.fromisoformat(query.day) if query.day else None
    slots = await service.list_slots(app_context(request), request.path_params["venue_id"], day)
    return json_response(SlotList(items=[slot_out(s) for s in slots]))


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
    body = await read_json(request, ReservationIn)
    principal = await require(request, sc.RESIDENT)
    booking = await service.book(app_context(request), principal, body.slot_id, body.dependents)
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
    booking = await service.cancel_reservation(
        app_context(request), principal, request.path_params["reservation_id"]
    )
    return json_response(reservation_out(booking.reservation, booking.slot))


# -- gates ----------------------------------------------------------------------------------


@endpoint(
    summary="Decide a scanned code at a gate (admit/deny) and record it",
    body=ScanIn,
    response=ScanOut,
    errors=[
        GateNotFound,
        VenueNotFound,
        ScanClockSkewed,
        DirectionNotSupported,
        IdempotencyKeyReused,
    ],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def post_scan(request: Request) -> Response:
    body = await read_json(request, ScanIn)
    principal = await require(request, sc.GATES_SCAN)
    ctx = app_context(request)
    gate = await service.gate_for(ctx, principal)
    answer = await service.scan(
        ctx,
        gate,
        service.ScanRequest(body.scan_id, body.code, body.direction, body.scanned_at),
    )
    return json_response(answer, headers=NO_STORE)


@endpoint(
    summary="Annul an admit the turnstile did not let through (within 60 s)",
    response=AnnulOut,
    errors=[GateNotFound, ScanNotFound, ScanNotAnnullable, AnnulWindowPassed],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def post_annul(request: Request) -> Response:
    principal = await require(request, sc.GATES_SCAN)
    ctx = app_context(request)
    gate = await service.gate_for(ctx, principal)
    entry, occupancy = await service.annul_scan(ctx, gate, request.path_params["scan_id"])
    assert entry.annulled_at is not None
    return json_response(
        AnnulOut(scan_id=entry.scan_id, annulled_at=entry.annulled_at, occupancy=occupancy)
    )


@endpoint(
    summary="Signed offline bundle for this gate (24 h)",
    response=BundleOut,
    errors=[GateNotFound, VenueNotFound],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def get_bundle(request: Request) -> Response:
    principal = await require(request, sc.GATES_SCAN)
    ctx = app_context(request)
    bundle = await service.offline_bundle(ctx, await service.gate_for(ctx, principal))
    out = BundleOut(
        bundle=bundle.token, kid=bundle.kid, expires_at=bundle.expires_at, document=bundle.document
    )
    return json_response(out, headers=NO_STORE)


@endpoint(summary="Public keys offline bundles are signed with (JWK Set)", response=JwksOut,
          tags=GATE_TAGS)  # fmt: skip
async def get_bundle_keys(request: Request) -> Response:
    return json_response(service.bundle_keys(app_context(request)))


@endpoint(
    summary="Upload scans decided offline; idempotent by scan_id; conflicts reported",
    body=SyncIn,
    response=SyncOut,
    errors=[GateNotFound],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def post_sync(request: Request) -> Response:
    body = await read_json(request, SyncIn)
    principal = await require(request, sc.GATES_SCAN)
    ctx = app_context(request)
    gate = await service.gate_for(ctx, principal)
    scans = [
        service.OfflineScan(s.scan_id, s.code, s.direction, s.scanned_at, s.decision, s.reason)
        for s in body.scans
    ]
    results, occupancy = await service.sync_offline(ctx, gate, scans)
    items = [SyncResult(scan_id=r.scan_id, outcome=r.outcome, conflicts=r.conflicts)
             for r in results]  # fmt: skip
    return json_response(
        SyncOut(
            recorded=sum(r.outcome == "recorded" for r in results),
            duplicates=sum(r.outcome == "duplicate" for r in results),
            conflicts=[r for r in items if r.conflicts],
            results=items,
            occupancy=occupancy,
        )
    )


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
    venue = await service.get_venue(request.path_params["venue_id"])
    shape: str | None = query.format
    if shape is None:
        accept = request.headers.get("accept", "")
        shape = next((n for n, m in IMAGE_TYPES.items() if m in accept), "json")
    box = BOX_SIZES[query.size]
    if shape == "png":
        return Response(qr.png(venue.place_code, box), media_type="image/png")
    if shape == "svg":
        return Response(qr.svg(venue.place_code, box), media_type="image/svg+xml")
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
    body = await read_json(request, CheckinIn)
    principal = await require(request, sc.RESIDENT)
    done = await service.check_in(
        app_context(request), principal, body.place_code, body.dependent_id
    )
    venue = done.venue
    out = CheckinOut(
        visit_id=done.visit.id,
        venue=VenueBrief(id=venue.id, name=venue.name, kind=venue.kind, address=venue.address),
        display=Display(masked_name=done.masked_name, status=done.visit.status),
        checked_in_at=done.visit.checked_in_at,
    )
    return json_response(out, status=201)


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
    venue = await service.get_venue(venue_id)
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
    query = read_query(request, EntriesQuery)
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    rows, next_cursor = await service.list_entries(
        venue_id,
        gate_id=query.gate_id,
        since=query.since,
        until=query.until,
        limit=query.limit,
        cursor=query.cursor,
    )
    return json_response(EntryPage(items=[entry_out(e) for e in rows], next_cursor=next_cursor))


@endpoint(
    summary="Your own visits: check-ins and gate entries",
    response=VisitList,
    errors=[IdentityRequired],
    auth=sc.RESIDENT,
    tags=TAGS,
)
async def get_my_visits(request: Request) -> Response:
    principal = await require(request, sc.RESIDENT)
    records = await service.my_visits(principal)
    items = [VisitOut(kind=r.kind, venue_id=r.venue_id, venue_name=r.venue_name, at=r.at)
             for r in records]  # fmt: skip
    return json_response(VisitList(items=items))


routes = [
    Route("/v1/venues", post_venue, methods=["POST"]),
    Route("/v1/venues", get_venues, methods=["GET"]),
    Route("/v1/venues/{venue_id}", get_venue, methods=["GET"]),
    Route("/v1/venues/{venue_id}", patch_venue, methods=["PATCH"]),
    Route("/v1/venues/{venue_id}/gates", post_gate, methods=["POST"]),
    Route("/v1/venues/{venue_id}/slots", post_slot, methods=["POST"]),
    Route("/v1/venues/{venue_id}/slots", get_slots, methods=["GET"]),
    Route("/v1/venues/{venue_id}/place-code", get_place_code, methods=["GET"]),
    Route("/v1/venues/{venue_id}/occupancy", get_occupancy, methods=["GET"]),
    Route("/v1/venues/{venue_id}/entries", get_entries, methods=["GET"]),
    Route("/v1/reservations", post_reservation, methods=["POST"]),
    Route("/v1/reservations/{reservation_id}", delete_reservation, methods=["DELETE"]),
    Route("/v1/gates/scan", post_scan, methods=["POST"]),
    Route("/v1/gates/scan/{scan_id}/annul", post_annul, methods=["POST"]),
    Route("/v1/gates/bundle", get_bundle, methods=["GET"]),
    Route("/v1/gates/bundle/keys", get_bundle_keys, methods=["GET"]),
    Route("/v1/gates/sync", post_sync, methods=["POST"]),
    Route("/v1/checkins", post_checkin, methods=["POST"]),
    Route("/v1/residents/me/visits", get_my_visits, methods=["GET"]),
]
