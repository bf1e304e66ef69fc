"""Kiosks: a resident identifies with the ID card and an OTP to their phone; the kiosk then
holds a token acting for that resident only, for minutes, audited under the kiosk's id."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx

from app.clock import FrozenClock
from app.context import AppContext
from auth.models import AuditEvent, KioskSession, RefreshToken
from tests.auth.helpers import KIOSK_LOCATION, identify, kiosk, kiosk_visit
from tests.factories import (
    add_dependent,
    assert_problem,
    bearer,
    machine,
    resident,
    sandbox,
    valid_id_number,
)


async def test_a_kiosk_client_says_where_it_stands(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await machine(client, ctx, "admin")
    missing = await client.post("/v1/admin/clients", json={"kind": "kiosk"}, headers=admin.headers)
    assert_problem(missing, 422, "location_required")
    gate = await client.post(
        "/v1/admin/clients",
        json={"kind": "gate", "tenant_id": "ven_1", "location": "somewhere"},
        headers=admin.headers,
    )
    assert_problem(gate, 422, "location_not_allowed")
    made = await client.post(
        "/v1/admin/clients",
        json={"kind": "kiosk", "location": KIOSK_LOCATION},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    assert made.json()["scope"] == "kiosk:sessions"
    assert made.json()["location"] == KIOSK_LOCATION
    assert made.json()["tenant_id"] is None


async def test_id_card_and_otp_give_a_short_token_acting_for_that_resident(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx, name="王老伯")
    at = await kiosk(client, ctx)
    clock.advance(seconds=61)
    started = await identify(client, at, person)
    assert started.status_code == 201, started.text
    challenge = started.json()
    assert challenge["otp_sent_to"] == person.phone[-11:-8] + "****" + person.phone[-4:]
    code = sandbox(ctx).last_code(person.phone)
    confirmed = await client.post(
        f"/v1/kiosk/sessions/{challenge['session_id']}/confirm",
        json={"otp": code},
        headers=at.headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["masked_name"] == "王*伯"
    assert body["subject_id"] == person.subject_id
    assert body["expires_in"] == 300
    me = await client.get("/v1/residents/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["account_id"] == person.account_id
    # The app's own endpoints work unchanged with it.
    code_now = await client.get("/v1/codes/me", headers=bearer(body["access_token"]))
    assert code_now.status_code == 200, code_now.text
    # The OTP was used up: a second confirmation of the same session gets nothing.
    again = await client.post(
        f"/v1/kiosk/sessions/{challenge['session_id']}/confirm",
        json={"otp": code},
        headers=at.headers,
    )
    assert_problem(again, 404, "not_found")


async def test_wrong_name_unknown_number_and_dependent_get_one_same_answer(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx, name="李四海")
    child_id = await add_dependent(client, person, name="李小海")
    at = await kiosk(client, ctx)
    wrong_name = await identify(client, at, person, name="李四河")
    unknown = await client.post(
        "/v1/kiosk/sessions",
        json={"name": "李四海", "id_number": valid_id_number()},
        headers=at.headers,
    )
    dependent = await client.post(
        "/v1/kiosk/sessions",
        json={"name": "李小海", "id_number": await _id_number_of(ctx, child_id)},
        headers=at.headers,
    )
    answers = [
        assert_problem(r, 401, "identification_failed") for r in (wrong_name, unknown, dependent)
    ]
    assert len({(a["title"], a["detail"]) for a in answers}) == 1
    assert not sandbox(ctx).messages[1:], "no OTP went anywhere"
    assert await KioskSession.all().count() == 0


async def _id_number_of(ctx: AppContext, subject_id: str) -> str:
    from auth.config import AuthRuntime
    from auth.models import Subject

    subject = await Subject.get(id=subject_id)
    return ctx.runtime(AuthRuntime).cipher.decrypt(
        subject.id_number_enc, field="id_number", row=subject.id
    )


async def test_the_otp_is_required_and_a_wrong_one_gives_no_token(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    at = await kiosk(client, ctx)
    other_kiosk = await kiosk(client, ctx, location="七宝镇 24小时自助服务点")
    clock.advance(seconds=61)
    session_id = (await identify(client, at, person)).json()["session_id"]
    code = sandbox(ctx).last_code(person.phone)
    assert code is not None
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = await client.post(
        f"/v1/kiosk/sessions/{session_id}/confirm", json={"otp": wrong}, headers=at.headers
    )
    assert_problem(refused, 401, "otp_invalid")
    elsewhere = await client.post(
        f"/v1/kiosk/sessions/{session_id}/confirm", json={"otp": code}, headers=other_kiosk.headers
    )
    assert_problem(elsewhere, 404, "not_found")
    # A resident's own token cannot start kiosk sessions.
    as_resident = await identify(client, replace(at, token=person.token), person)
    assert_problem(as_resident, 403, "forbidden")
    clock.advance(minutes=6)  # the OTP and the pending session expire
    late = await client.post(
        f"/v1/kiosk/sessions/{session_id}/confirm", json={"otp": code}, headers=at.headers
    )
    assert_problem(late, 404, "not_found")


async def test_identification_is_rate_limited_per_kiosk_and_per_id_number(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    person = await resident(client, ctx, name="赵五一")
    busy = await kiosk(client, ctx)
    for _ in range(5):
        r = await identify(client, busy, person, name="赵五二")
        assert_problem(r, 401, "identification_failed")
    # The sixth failure for this ID number is refused at any kiosk, right name or not.
    elsewhere = await kiosk(client, ctx, location="莘庄 服务窗口")
    limited = await identify(client, elsewhere, person)
    body = assert_problem(limited, 429, "rate_limited")
    assert limited.headers["retry-after"]
    assert body
    for _ in range(4):
        unknown = await client.post(
            "/v1/kiosk/sessions",
            json={"name": "钱多多", "id_number": valid_id_number()},
            headers=busy.headers,
        )
        assert_problem(unknown, 401, "identification_failed")
    # Ten identifications a minute per kiosk (five above and four here, then one more).
    await client.post(
        "/v1/kiosk/sessions",
        json={"name": "钱多多", "id_number": valid_id_number()},
        headers=busy.headers,
    )
    over = await client.post(
        "/v1/kiosk/sessions",
        json={"name": "钱多多", "id_number": valid_id_number()},
        headers=busy.headers,
    )
    assert_problem(over, 429, "rate_limited")


async def test_the_kiosk_token_acts_for_nobody_else(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    stranger = await resident(client, ctx, name="孙小红")
    strangers_child = await add_dependent(client, stranger, name="孙小小")
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    for someone in (stranger.subject_id, strangers_child):
        other = await client.get(f"/v1/codes/me?dependent_id={someone}", headers=visit.headers)
        assert_problem(other, 404, "not_found")
        revoke = await client.post(
            "/v1/codes/revoke", json={"subject_id": someone}, headers=visit.headers
        )
        assert_problem(revoke, 404, "not_found")
    # Not a kiosk, not an admin: a resident token with the kiosk's id in it, nothing more.
    as_kiosk = await client.post(
        "/v1/kiosk/sessions",
        json={"name": stranger.name, "id_number": stranger.id_number},
        headers=visit.headers,
    )
    assert_problem(as_kiosk, 403, "forbidden")


async def test_the_kiosk_token_dies_with_its_session_and_cannot_be_refreshed(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    # Nothing to refresh it with: no refresh token exists in its family (the session).
    assert "refresh_token" not in visit.body
    assert not await RefreshToken.filter(family_id=visit.session_id).exists()
    clock.advance(seconds=300 + 11)  # past the session and the tokens' 10 s leeway
    expired = await client.get("/v1/residents/me", headers=visit.headers)
    assert_problem(expired, 401, "unauthorized")
    # Ended by the kiosk: the token stops at once, long before its expiry.
    second = await kiosk_visit(client, ctx, clock, at, person)
    assert (await client.get("/v1/residents/me", headers=second.headers)).status_code == 200
    ended = await client.delete(f"/v1/kiosk/sessions/{second.session_id}", headers=at.headers)
    assert ended.status_code == 200, ended.text
    assert_problem(
        await client.get("/v1/residents/me", headers=second.headers), 401, "unauthorized"
    )
    # Ended by the resident pressing "done" (log out with the kiosk token).
    third = await kiosk_visit(client, ctx, clock, at, person)
    assert (await client.post("/v1/auth/logout", headers=third.headers)).status_code == 200
    assert_problem(await client.get("/v1/residents/me", headers=third.headers), 401, "unauthorized")
    assert (await KioskSession.get(id=third.session_id)).ended_at is not None
    # The resident's own app login is untouched by all this.
    assert (await client.get("/v1/residents/me", headers=person.headers)).status_code == 200


async def test_a_disabled_kiosk_takes_its_residents_tokens_with_it(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    at = await kiosk(client, ctx)
    visit = await kiosk_visit(client, ctx, clock, at, person)
    admin = await machine(client, ctx, "admin")
    disabled = await client.post(f"/v1/admin/clients/{at.client_id}/disable", headers=admin.headers)
    assert disabled.status_code == 200, disabled.text
    assert_problem(await client.get("/v1/residents/me", headers=visit.headers), 401, "unauthorized")


async def test_every_kiosk_action_is_audited_under_the_kiosk_id(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx, name="周大福")
    at = await kiosk(client, ctx)
    await identify(client, at, person, name="周大贵")
    visit = await kiosk_visit(client, ctx, clock, at, person)
    await client.get("/v1/codes/me", headers=visit.headers)
    await client.delete(f"/v1/kiosk/sessions/{visit.session_id}", headers=at.headers)
    events = await AuditEvent.filter(actor=at.client_id).order_by("id")
    actions = [e.action for e in events]
    assert actions[:2] == ["kiosk_identify_failed", "kiosk_identified"]
    assert {"kiosk_session_started", "kiosk_request", "kiosk_session_ended"} <= set(actions)
    used = next(e for e in events if e.action == "kiosk_request")
    assert used.target == person.account_id
    assert used.detail["session"] == visit.session_id
    leaks = ("周大福", "周大贵", str(person.id_number), person.phone, visit.token)
    for event in events:
        assert not [s for s in leaks if s in str(event.__dict__)], event.action


async def test_of_concurrent_confirmations_of_one_session_one_gets_a_token(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await resident(client, ctx)
    at = await kiosk(client, ctx)
    clock.advance(seconds=61)
    session_id = (await identify(client, at, person)).json()["session_id"]
    code = sandbox(ctx).last_code(person.phone)
    answers = await asyncio.gather(
        *(
            client.post(
                f"/v1/kiosk/sessions/{session_id}/confirm", json={"otp": code}, headers=at.headers
            )
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in answers).count(200) == 1
    assert {r.json()["code"] for r in answers if r.status_code != 200} <= {
        "otp_invalid",
        "not_found",
    }
