"""Printable slips a kiosk prints for the resident it acts for (the app may fetch them too):
a booking slip (A6) and the resident's recent visits (A4), with their two GET endpoints."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fpdf import FPDF
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.context import AppContext, app_context
from app.http import endpoint
from app.pdf import build, new_document, pdf_response
from auth.api import (
    IdentityRequired,
    Principal,
    audit_kiosk_action,
    kiosk_info,
    require,
    scopes,
    subject_for_request,
    subject_profile,
)
from venues import visits
from venues.errors import ReservationNotFound
from venues.models import Reservation, Venue
from venues.states import VisitKind

SHANGHAI = timezone(timedelta(hours=8))
VISITS_ON_SLIP = 30
KIND_LABELS = {VisitKind.CHECKIN: "扫码登记 check-in", VisitKind.ENTRY: "闸机入场 entry"}


def local(when: datetime, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """Times on paper are Shanghai time, where the slip is read."""
    return when.astimezone(SHANGHAI).strftime(pattern)


async def _printed_at(ctx: AppContext, principal: Principal) -> str:
    """ "Printed <time> at <kiosk location>" (or "in the app")."""
    kiosk = await kiosk_info(principal.kiosk_id) if principal.kiosk_id else None
    where = kiosk.location if kiosk else "随申办 app"
    return f"打印 Printed {local(ctx.clock.now())} · {where}"


def _lines(pdf: FPDF, rows: list[tuple[str, str]]) -> None:
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for label, value in rows:
        pdf.multi_cell(width, 6, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")


def _heading(pdf: FPDF, title: str, subtitle: str) -> None:
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font_size(14)
    pdf.cell(width, 8, title, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(8)
    pdf.cell(width, 5, subtitle, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(10)
    pdf.ln(2)


async def booking_slip(ctx: AppContext, principal: Principal, reservation_id: str) -> bytes:
    """An A6 slip of one of the resident's own bookings (404 for anyone else's)."""
    reservation = (
        await Reservation.filter(id=reservation_id, account_id=principal.id)
        .prefetch_related("slot")
        .first()
    )
    if reservation is None:
        raise ReservationNotFound()
    venue = await Venue.get(id=reservation.venue_id)
    profile = await subject_profile(reservation.booker_subject_id, now=ctx.clock.now())
    slot = reservation.slot
    rows = [
        ("场馆 Venue", venue.name),
        ("地址 Address", venue.address or "-"),
        ("日期 Date", local(slot.starts_at, "%Y-%m-%d")),
        ("时段 Time", f"{local(slot.starts_at, '%H:%M')}-{local(slot.ends_at, '%H:%M')}"),
        ("人数 Party", str(reservation.party_size)),
        ("预约人 Booked by", profile.masked_name if profile else "-"),
        ("预约号 Booking no.", reservation.id),
        ("状态 Status", reservation.status),
    ]
    footer = await _printed_at(ctx, principal)
    await audit_kiosk_action(ctx, principal, "booking_slip_printed", target=reservation.id)

    def layout() -> FPDF:
        pdf = new_document("A6", title="预约凭条")
        _heading(pdf, "预约凭条", "Booking slip")
        _lines(pdf, rows)
        pdf.ln(2)
        pdf.set_font_size(7)
        _lines(pdf, [("入场 Entry", "请出示随申码或离线码 show your code or printed card")])
        pdf.multi_cell(0, 4, footer)
        return pdf

    return await build(layout)


async def visits_slip(ctx: AppContext, principal: Principal) -> bytes:
    """An A4 list of the resident's recent visits (check-ins and gate entries)."""
    subject_id = await subject_for_request(principal, None)
    profile = await subject_profile(subject_id, now=ctx.clock.now())
    records = await visits.my_visits(principal, limit=VISITS_ON_SLIP)
    footer = await _printed_at(ctx, principal)
    await audit_kiosk_action(ctx, principal, "visits_slip_printed", target=subject_id)

    def layout() -> FPDF:
        pdf = new_document("A4", title="到访记录")
        _heading(pdf, "到访记录", "Recent visits")
        _lines(pdf, [("姓名 Name", profile.masked_name if profile else "-")])
        pdf.ln(2)
        if not records:
            pdf.multi_cell(0, 6, "暂无记录 No visits")
        for record in records:
            label = KIND_LABELS.get(record.kind, record.kind)
            pdf.multi_cell(0, 6, f"{local(record.at)}  {record.venue_name}  ({label})")
        pdf.ln(2)
        pdf.set_font_size(8)
        pdf.multi_cell(0, 4, footer)
        return pdf

    return await build(layout)


# -- HTTP ------------------------------------------------------------------------------------


@endpoint(
    summary="A printable slip (A6 PDF) of one of your bookings, for a kiosk's printer",
    media_types=["application/pdf"],
    errors=[ReservationNotFound],
    auth=scopes.RESIDENT,
    tags=["venues"],
)
async def get_booking_slip(request: Request) -> Response:
    principal = await require(request, scopes.RESIDENT)
    slip = await booking_slip(
        app_context(request), principal, request.path_params["reservation_id"]
    )
    return pdf_response(slip, "booking.pdf")


@endpoint(
    summary="Your recent visits as a printable list (A4 PDF), for a kiosk's printer",
    media_types=["application/pdf"],
    errors=[IdentityRequired],
    auth=scopes.RESIDENT,
    tags=["venues"],
)
async def get_visits_slip(request: Request) -> Response:
    principal = await require(request, scopes.RESIDENT)
    return pdf_response(await visits_slip(app_context(request), principal), "visits.pdf")


routes = [
    Route("/v1/reservations/{reservation_id:id}/slip.pdf", get_booking_slip, methods=["GET"]),
    Route("/v1/residents/me/visits.pdf", get_visits_slip, methods=["GET"]),
]
