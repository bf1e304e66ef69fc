"""HTTP endpoints of gates: pairing (the operator's one-time code and the device's trade),
scans and annulment, the offline bundle and its keys, and syncing offline scans."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import app_context
from app.errors import IdempotencyKeyReused, RateLimited
from app.http import endpoint, json_response, read_json
from auth.api import require
from auth.api import scopes as sc
from codes.api import qr_svg
from venues import gate, offline, pairing, sync
from venues.errors import (
    AnnulWindowPassed,
    DirectionNotSupported,
    GateNotFound,
    PairingCodeInvalid,
    PartyTooLarge,
    ScanClockSkewed,
    ScanNotAnnullable,
    ScanNotFound,
    VenueNotFound,
)
from venues.offline_gate import OfflineScan
from venues.responses import (
    bundle_out,
    sync_out,
)
from venues.schemas import (
    AnnulOut,
    BundleOut,
    JwksOut,
    PairedOut,
    PairIn,
    PairingOut,
    ScanIn,
    ScanOut,
    SyncIn,
    SyncOut,
)
from venues.states import Direction, GateDirection, ScanDecision

TAGS = ["venues"]
GATE_TAGS = ["gates"]
NO_STORE = {"Cache-Control": "no-store"}
IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
# QR module size in pixels: a phone screen, or an A4 poster printed at 300 dpi.
BOX_SIZES = {"screen": 8, "poster": 40}


# -- pairing --------------------------------------------------------------------------


@endpoint(
    summary="A one-time pairing code for a gate console (10 min, single use)",
    response=PairingOut,
    status=201,
    errors=[VenueNotFound, GateNotFound],
    auth=sc.VENUES_MANAGE,
    tags=TAGS,
)
async def post_pairing(request: Request) -> Response:
    venue_id = request.path_params["venue_id"]
    await require(request, sc.VENUES_MANAGE, tenant_id=venue_id)
    made = await pairing.create_pairing(
        app_context(request), venue_id, request.path_params["gate_id"]
    )
    out = PairingOut(
        pairing_code=made.pairing_code,
        gate_id=made.gate_id,
        expires_at=made.expires_at,
        qr_svg=qr_svg(made.pairing_code).decode(),
    )
    return json_response(out, status=201, headers=NO_STORE)


@endpoint(
    summary="Trade a pairing code for the gate's client credentials (rotates its secret)",
    body=PairIn,
    response=PairedOut,
    errors=[PairingCodeInvalid, RateLimited],
    tags=GATE_TAGS,
)
async def post_pair(request: Request) -> Response:
    body = await read_json(request, PairIn)
    ip = request.client.host if request.client else ""
    paired = await pairing.trade(app_context(request), body.pairing_code, ip)
    out = PairedOut(
        gate_id=paired.gate.id,
        venue_id=paired.gate.venue_id,
        name=paired.gate.name,
        direction=GateDirection(paired.gate.direction),
        client_id=paired.client_id,
        client_secret=paired.client_secret,
        scope=paired.scope,
    )
    return json_response(out, headers=NO_STORE)


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
        PartyTooLarge,
        IdempotencyKeyReused,
        RateLimited,
    ],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def post_scan(request: Request) -> Response:
    principal = await require(request, sc.GATES_SCAN)
    body = await read_json(request, ScanIn)
    answer = await gate.scan(
        app_context(request),
        principal,
        gate.ScanRequest(
            body.scan_id,
            body.code,
            Direction(body.direction),
            body.scanned_at,
            id_card=body.id_card,
            companions=body.companions,
        ),
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
    entry, occupancy = await gate.annul_scan(
        app_context(request), principal, request.path_params["scan_id"]
    )
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
    bundle = await offline.offline_bundle(app_context(request), principal)
    return json_response(bundle_out(bundle), headers=NO_STORE)


@endpoint(summary="Public keys offline bundles are signed with (JWK Set)", response=JwksOut,
          tags=GATE_TAGS)  # fmt: skip
async def get_bundle_keys(request: Request) -> Response:
    return json_response(offline.bundle_keys(app_context(request)))


@endpoint(
    summary="Upload scans decided offline; idempotent by scan_id; conflicts and rejections "
    "reported per scan",
    body=SyncIn,
    response=SyncOut,
    errors=[GateNotFound],
    auth=sc.GATES_SCAN,
    tags=GATE_TAGS,
)
async def post_sync(request: Request) -> Response:
    principal = await require(request, sc.GATES_SCAN)
    body = await read_json(request, SyncIn)
    scans = [
        OfflineScan(
            s.scan_id,
            s.code,
            Direction(s.direction),
            s.scanned_at,
            ScanDecision(s.decision),
            s.reason,
            s.repeat_of,
        )
        for s in body.scans
    ]
    results, occupancy = await sync.sync_offline(
        app_context(request), principal, scans, body.gate_time
    )
    return json_response(sync_out(results, occupancy))


routes = [
    Route("/v1/venues/{venue_id:id}/gates/{gate_id:id}/pairing", post_pairing, methods=["POST"]),
    Route("/v1/gates/pair", post_pair, methods=["POST"]),
    Route("/v1/gates/scan", post_scan, methods=["POST"]),
    Route("/v1/gates/scan/{scan_id:longid}/annul", post_annul, methods=["POST"]),
    Route("/v1/gates/bundle", get_bundle, methods=["GET"]),
    Route("/v1/gates/bundle/keys", get_bundle_keys, methods=["GET"]),
    Route("/v1/gates/sync", post_sync, methods=["POST"]),
]
