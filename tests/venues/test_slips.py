"""What else a kiosk does for the resident it identified: book a slot and print the booking,
print the recent visits, pay a payment_pending bill; the app's own endpoints, the kiosk's
token, every step audited under the kiosk's id."""

from __future__ import annotations

from datetime import timedelta

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import AuditEvent
from tests.auth.helpers import KIOSK_LOCATION, kiosk, kiosk_visit
from tests.factories import assert_problem, pdf_text, resident
from tests.payments.helpers import charge, close, hospital, item, open_encounter, patient
from tests.venues.helpers import local_time, make_slot, make_venue
from venues.slips import local


def flat(content: bytes) -> str:
    """A PDF's text without whitespace (lines wrap and justify on paper)."""
    return "".join(pdf_text(content).split())


async def test_a_kiosk_books_a_slot_and_prints_the_booking(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx, reservation_required=True)
    starts = local_time(clock.now(), days=1, hour=10)
    slot = await make_slot(client, venue, starts)
    person = await resident(client, ctx, name="吴老师")
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    booked = await client.post(
        "/v1/reservations", json={"slot_id": slot["id"], "dependents": []}, headers=visit.headers
    )
    assert booked.status_code == 201, booked.text
    reservation_id = booked.json()["id"]
    # The resident sees it in the app: the kiosk booked for them, not for itself.
    mine = await client.get("/v1/residents/me/reservations", headers=person.headers)
    assert [r["id"] for r in mine.json()["items"]] == [reservation_id]
    slip = await client.get(f"/v1/reservations/{reservation_id}/slip.pdf", headers=visit.headers)
    assert slip.status_code == 200, slip.text
    assert slip.headers["content-type"] == "application/pdf"
    text = flat(slip.content)
    for expected in (
        "预约凭条",
        "上海博物馆",
        local(starts, "%Y-%m-%d"),
        f"{local(starts, '%H:%M')}-{local(starts + timedelta(hours=1), '%H:%M')}",
        "吴*师",
        reservation_id,
        KIOSK_LOCATION,
    ):
        assert "".join(expected.split()) in text, expected
    assert "吴老师" not in text
    # Someone else's booking is not there to print.
    stranger = await resident(client, ctx)
    other = await client.get(
        f"/v1/reservations/{reservation_id}/slip.pdf", headers=stranger.headers
    )
    assert_problem(other, 404, "reservation_not_found")
    actions = [e.action for e in await AuditEvent.filter(actor=at.client_id).order_by("id")]
    assert "booking_slip_printed" in actions and "kiosk_request" in actions


async def test_a_kiosk_prints_the_recent_visits(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    venue = await make_venue(client, ctx)
    person = await resident(client, ctx, name="冯阿姨")
    place = (await client.get(f"/v1/venues/{venue.id}/place-code")).json()["place_code"]
    checked = await client.post("/v1/checkins", json={"place_code": place}, headers=person.headers)
    assert checked.status_code == 201, checked.text
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    listed = await client.get("/v1/residents/me/visits", headers=visit.headers)
    assert listed.status_code == 200, listed.text
    slip = await client.get("/v1/residents/me/visits.pdf", headers=visit.headers)
    assert slip.status_code == 200, slip.text
    text = flat(slip.content)
    for expected in ("到访记录", "冯*姨", "上海博物馆", "扫码登记", KIOSK_LOCATION):
        assert "".join(expected.split()) in text, expected
    assert "冯阿姨" not in text
    # From the app, the same list says where it was printed: in the app.
    own = await client.get("/v1/residents/me/visits.pdf", headers=person.headers)
    assert "随申办app" in flat(own.content)
    actions = [e.action for e in await AuditEvent.filter(actor=at.client_id).order_by("id")]
    assert "visits_slip_printed" in actions


async def test_a_kiosk_pays_a_payment_pending_bill_for_the_resident(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, payment_method="pm_sandbox_declined")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(20_000, "C")])
    settled = await close(client, where, encounter["id"])
    assert settled.json()["status"] == "payment_pending", settled.text
    bill_id = settled.json()["bill_id"]
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    bills = await client.get("/v1/bills", headers=visit.headers)
    assert bills.status_code == 200, bills.text
    assert bill_id in bills.text
    paid = await client.post(
        f"/v1/bills/{bill_id}/pay", json={"payment_method": "pm_sandbox_ok"}, headers=visit.headers
    )
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid"
    used = await AuditEvent.filter(actor=at.client_id, action="kiosk_request").count()
    assert used >= 2  # the list and the payment, each under the kiosk's id
