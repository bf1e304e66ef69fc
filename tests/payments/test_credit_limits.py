"""Credit limits from the (sandbox) credit bureau's score in tiers, the reasons the resident
sees, the bureau's failure modes, the grace period, suspension and reinstatement."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from app.settings import SettingsError
from payments import credit, tasks
from payments.credit_bureau import (
    CreditConfig,
    CreditReport,
    CreditRuntime,
    Persona,
    SandboxCreditBureau,
    assess,
)
from payments.models import Bill, CreditScore
from tests.factories import Resident, assert_problem, code_of, resident
from tests.payments.helpers import (
    charge,
    close,
    hospital,
    item,
    key,
    open_encounter,
    refreshed,
    relogged,
)


def bureau(ctx: AppContext) -> SandboxCreditBureau:
    found = ctx.runtime(CreditRuntime).bureau
    assert isinstance(found, SandboxCreditBureau), "tests run with the sandbox credit bureau"
    return found


async def enrolled(
    client: httpx.AsyncClient,
    ctx: AppContext,
    persona: Persona | None = None,
    payment_method: str = "pm_sandbox_ok",
) -> Resident:
    person = await resident(client, ctx)
    assert person.subject_id is not None
    if persona is not None:
        bureau(ctx).set_persona(person.subject_id, persona)
    response = await client.post(
        "/v1/credit/enroll", json={"payment_method": payment_method}, headers=person.headers
    )
    assert response.status_code == 201, response.text
    return person


@pytest.mark.parametrize(
    ("persona", "tier", "limit_fen", "reason"),
    [
        (Persona(score=812), "A", 300_000, "score 812 is in tier A"),
        (Persona(score=720, factors=("short_history",)), "B", 200_000, "short_history"),
        (Persona(score=650), "C", 100_000, "score 650 is in tier C"),
        (Persona(score=610), "D", 50_000, "tier D"),
        (Persona(score=540), "E", 0, "no credit line"),
        (Persona(score=None), "starter", 20_000, "no credit history"),
        (Persona(frozen=True), "frozen", 0, "frozen"),
    ],
)
async def test_the_limit_comes_from_the_score_tier_and_says_why(
    client: httpx.AsyncClient,
    ctx: AppContext,
    persona: Persona,
    tier: str,
    limit_fen: int,
    reason: str,
) -> None:
    person = await enrolled(client, ctx, persona)
    explained = await client.get("/v1/credit/me/limit", headers=person.headers)
    assert explained.status_code == 200, explained.text
    body = explained.json()
    assert (body["tier"], body["limit_fen"], body["available_fen"]) == (tier, limit_fen, limit_fen)
    assert body["provisional"] is False and body["status"] == "active"
    assert any(reason in r for r in body["reasons"]), body["reasons"]
    assert body["grace_days"] == 10
    me = (await client.get("/v1/credit/me", headers=person.headers)).json()
    assert me["limit_fen"] == limit_fen


async def test_a_score_below_the_tiers_cannot_open_an_encounter(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await enrolled(client, ctx, Persona(score=480))
    response = await client.post(
        "/v1/encounters",
        json={"code": await code_of(client, person), "department": "内科"},
        headers={**where.headers, **key()},
    )
    body = assert_problem(response, 402, "credit_unavailable")
    assert body["reason"] == "no_credit_left"


async def test_a_bureau_timeout_gives_a_provisional_limit_until_the_review_gets_a_score(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await enrolled(client, ctx, Persona(failure="timeout"))
    body = (await client.get("/v1/credit/me/limit", headers=person.headers)).json()
    assert (body["tier"], body["limit_fen"], body["provisional"]) == ("provisional", 20_000, True)
    assert "did not answer" in body["reasons"][0]
    assert person.subject_id is not None
    bureau(ctx).set_persona(person.subject_id, Persona(score=705))
    assert await credit.review_due_limits(ctx) == 0  # not due yet
    clock.advance(timedelta(minutes=11))
    assert await credit.review_due_limits(ctx) == 1
    person = await relogged(client, ctx, person)
    body = (await client.get("/v1/credit/me/limit", headers=person.headers)).json()
    assert (body["tier"], body["limit_fen"], body["provisional"]) == ("B", 200_000, False)


async def test_a_bureau_outage_never_takes_away_a_limit_a_score_earned(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    person = await enrolled(client, ctx, Persona(score=760))
    assert person.subject_id is not None
    bureau(ctx).set_persona(person.subject_id, Persona(failure="unavailable"))
    clock.advance(timedelta(days=31))
    asked = bureau(ctx).inquiries
    assert await credit.review_due_limits(ctx) == 1
    assert bureau(ctx).inquiries == asked + 1
    score = await CreditScore.get(account_id=(await _account_id(client, ctx, person)))
    assert (score.tier, score.pending) == ("A", False)
    assert score.next_check_at == clock.now() + timedelta(minutes=10)  # asked again soon
    # The bureau back with a lower score: the limit follows it.
    bureau(ctx).set_persona(person.subject_id, Persona(score=655))
    clock.advance(timedelta(minutes=11))
    assert await credit.review_due_limits(ctx) == 1
    score = await CreditScore.get(account_id=score.account_id)
    assert (score.tier, score.score) == ("C", 655)


async def _account_id(client: httpx.AsyncClient, ctx: AppContext, person: Resident) -> str:
    person = await relogged(client, ctx, person)
    account_id: str = (await client.get("/v1/credit/me", headers=person.headers)).json()[
        "account_id"
    ]
    return account_id


async def test_overdue_after_the_grace_suspends_and_paying_reinstates_at_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await enrolled(client, ctx, payment_method="pm_sandbox_declined")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(6_000, "C")])
    bill_id = (await close(client, where, encounter["id"])).json()["bill_id"]
    clock.advance(timedelta(days=9, hours=23))
    await tasks.run_collections(ctx)
    assert (await Bill.get(id=bill_id)).status == "payment_pending"  # still in the grace
    clock.advance(timedelta(hours=1, seconds=1))
    await tasks.run_collections(ctx)
    assert (await Bill.get(id=bill_id)).status == "overdue"
    person = await relogged(client, ctx, person)
    where = await refreshed(client, where)
    limit = (await client.get("/v1/credit/me/limit", headers=person.headers)).json()
    assert limit["status"] == "suspended" and limit["overdue_bill_ids"] == [bill_id]
    assert any("overdue" in r and "reinstates" in r for r in limit["reasons"])
    refused = await client.post(
        "/v1/encounters",
        json={"code": await code_of(client, person), "department": "内科"},
        headers={**where.headers, **key()},
    )
    assert_problem(refused, 402, "credit_unavailable")
    paid = await client.post(
        f"/v1/bills/{bill_id}/pay", json={"payment_method": "pm_sandbox_ok"}, headers=person.headers
    )
    assert paid.status_code == 200, paid.text
    # The moment it is paid: no job run, no clock moved.
    limit = (await client.get("/v1/credit/me/limit", headers=person.headers)).json()
    assert limit["status"] == "active" and limit["overdue_bill_ids"] == []
    assert limit["available_fen"] == limit["limit_fen"]
    await open_encounter(client, where, person)


def test_assessment_caps_every_tier_at_the_platform_ceiling() -> None:
    capped = assess(CreditReport(score=900), ceiling_fen=150_000)
    assert capped.limit_fen == 150_000
    assert capped.reasons[-1] == "capped at the platform ceiling of 1,500 yuan"
    assert assess(CreditReport(score=2_000), ceiling_fen=10**9).score == 950  # the scale's top
    assert assess(None, ceiling_fen=10**9).pending is True


def test_production_refuses_the_sandbox_credit_bureau_and_unknown_bureaus() -> None:
    with pytest.raises(SettingsError, match="production refuses SUISHEN_CREDIT_BUREAU=sandbox"):
        CreditConfig.from_extra({}, production=True)
    with pytest.raises(SettingsError, match="SUISHEN_CREDIT_BUREAU must be one of sandbox"):
        CreditConfig.from_extra({"SUISHEN_CREDIT_BUREAU": "pboc"}, production=False)
    tuned = CreditConfig.from_extra({"SUISHEN_CREDIT_REVIEW_DAYS": "7"}, production=False)
    assert tuned.review_after == timedelta(days=7)
