"""The insurance bureau in the money path: the visit's ec_token, the split by segment and
payer in the bill and the ledger, the quote, refusals, timeouts, a bureau that is down, a
crash between the bureau's settlement and our booking, and bad input."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import httpx
import pytest

from app.clock import FrozenClock
from app.context import AppContext
from app.settings import Settings, SettingsError
from payments import ledger, tasks
from payments.bureau import EcToken, InsuranceBureau, SandboxBureau
from payments.config import PaymentsRuntime
from payments.insurance import BureauParts
from payments.models import (
    Bill,
    BureauSettlement,
    CreditAccount,
    LedgerTransfer,
    SandboxBureauOperation,
    SandboxInsured,
)
from payments.segments import Segments, Standing
from tests.factories import assert_problem, code_of
from tests.payments.helpers import (
    InjectedCrash,
    account_balances,
    charge,
    check_books,
    close,
    hospital,
    item,
    key,
    open_encounter,
    patient,
    payments_runtime,
)


def sandbox_bureau(ctx: AppContext) -> SandboxBureau:
    bureau = payments_runtime(ctx).sandbox_bureau
    assert bureau is not None
    return bureau


async def test_open_returns_an_ec_token_bound_to_the_visit(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    first = await open_encounter(client, where, person)
    second = await open_encounter(client, where, person)
    assert first["ec_token"].startswith("ect1.")
    expires = datetime.fromisoformat(first["ec_token_expires_at"])
    assert clock.now() < expires <= clock.now() + timedelta(hours=2)
    bureau = sandbox_bureau(ctx)
    standing = await bureau.standing(
        ec_token=first["ec_token"], visit_id=first["id"], now=clock.now()
    )
    assert standing.category == "employee_45" and standing.deductible_used_fen == 150_000
    # Another visit's token, or an expired one, is refused by the bureau.
    for token, visit, at in (
        (first["ec_token"], second["id"], clock.now()),
        (first["ec_token"], first["id"], clock.now() + timedelta(hours=3)),
        (first["ec_token"][:-2] + "00", first["id"], clock.now()),
    ):
        with pytest.raises(Exception) as refused:
            await bureau.standing(ec_token=token, visit_id=visit, now=at)
        assert getattr(refused.value, "reason", None) in ("token_invalid", "token_expired")


async def test_an_e_voucher_the_bureau_cannot_read_is_refused(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    body = {"code": await code_of(client, person), "department": "内科"}
    bad = await client.post(
        "/v1/encounters",
        json={**body, "insurance_voucher": "garbled"},
        headers={**where.headers, **key()},
    )
    problem = assert_problem(bad, 422, "insurance_voucher_rejected")
    assert problem["reason"] == "voucher_invalid"


async def test_bill_and_ledger_carry_each_segment_and_payer(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    """The worked example of test_segments at a tier-3 hospital, through HTTP."""
    where = await hospital(client, ctx, tier=3)
    person = await patient(
        client,
        ctx,
        persona="employee",
        deductible_met_fen=100_000,
        current_account_fen=50_000,
        accumulated_account_fen=80_000,
    )
    # A bill this size needs more than a starting credit limit (the score's business).
    await CreditAccount.all().update(limit_fen=1_000_000)
    encounter = await open_encounter(client, where, person)
    items = [item(200_000, "A"), item(100_000, "B"), item(30_000, "C")]
    assert (await charge(client, where, encounter["id"], items)).status_code == 201
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["segments"] == {
        "self_paid_items_fen": 40_000,
        "current_account_fen": 50_000,
        "self_segment_accumulated_fen": 50_000,
        "self_segment_cash_fen": 0,
        "fund_fen": 95_000,
        "copay_accumulated_fen": 30_000,
        "copay_cash_fen": 65_000,
        "rule_version": "2025.04-1",
    }
    assert (settled["total_fen"], settled["insurance_fen"], settled["self_pay_fen"]) == (
        330_000,
        225_000,
        105_000,
    )
    balances = await account_balances()
    bill = await Bill.get(id=settled["bill_id"])
    assert balances[ledger.INSURANCE_FUND] == 95_000
    assert balances[ledger.personal_current_account(bill.subject_id)] == 50_000
    assert balances[ledger.personal_accumulated_account(bill.subject_id)] == 80_000
    assert balances[ledger.hospital_account(where.id)] == -330_000
    # The bureau's books: both accounts drawn, the deductible and the fund counted once.
    insured = await SandboxInsured.get(subject_id=bill.subject_id)
    assert (insured.current_account_fen, insured.accumulated_account_fen) == (0, 0)
    assert (insured.deductible_used_fen, insured.fund_used_fen) == (150_000, 95_000)
    await check_books()


async def test_quote_is_what_close_settles_and_the_patient_may_ask_too(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx, tier=1)
    person = await patient(client, ctx, persona="retired", deductible_met_fen=20_000)
    encounter = await open_encounter(client, where, person)
    path = f"/v1/encounters/{encounter['id']}/quote"
    await charge(client, where, encounter["id"], [item(80_000, "A"), item(5_000, "C")], "c1")
    by_hospital = await client.get(path, headers=where.headers)
    assert by_hospital.status_code == 200, by_hospital.text
    quote = by_hospital.json()
    # retired: 700 yuan deductible, 200 used -> 500 yuan self segment; tier 1 = 85 %.
    assert quote["segments"]["self_segment_cash_fen"] == 50_000
    assert quote["segments"]["fund_fen"] == 30_000 * 85 // 100
    assert quote["cash_fen"] == 85_000 - 25_500 == quote["credit_used_fen"]
    assert quote["category"] == "retired" and quote["hospital_tier"] == 1
    by_patient = await client.get(path, headers=person.headers)
    assert by_patient.status_code == 200 and by_patient.json() == quote
    stranger = await patient(client, ctx)
    assert (await client.get(path, headers=stranger.headers)).status_code == 404
    # A quote changes nothing at the bureau: asking twice gives the same figures.
    assert (await client.get(path, headers=where.headers)).json() == quote
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["segments"] == quote["segments"]
    assert (settled["insurance_fen"], settled["self_pay_fen"]) == (
        quote["insurance_fen"],
        quote["cash_fen"],
    )
    bill_lines = (
        await client.get(f"/v1/bills/{settled['bill_id']}", headers=person.headers)
    ).json()
    assert [line["insurance_fen"] for line in bill_lines["lines"]] == [
        line["insurance_fen"] for line in quote["lines"]
    ]
    assert_problem(await client.get(path, headers=where.headers), 409, "encounter_closed")


async def test_a_refused_person_is_settled_as_cash(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, persona="suspended")
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")])
    settled = (await close(client, where, encounter["id"])).json()
    assert settled["insurance_fen"] == 0 and settled["self_pay_fen"] == 10_000
    assert settled["segments"]["self_paid_items_fen"] == 10_000
    assert await SandboxBureauOperation.all().count() == 0
    await check_books()


async def test_a_bureau_timeout_leaves_a_settlement_the_worker_finishes_once(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx, persona="timeout", deductible_met_fen=150_000)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")])
    unanswered = await close(client, where, encounter["id"])
    assert_problem(unanswered, 503, "insurance_bureau_unavailable")
    # The bureau did settle (its answer was lost); we have booked nothing yet.
    assert await SandboxBureauOperation.filter(kind="settle").count() == 1
    assert not await Bill.exists(encounter_id=encounter["id"])
    shown = await client.get(f"/v1/encounters/{encounter['id']}", headers=where.headers)
    assert shown.json()["status"] == "settling"
    late = await charge(client, where, encounter["id"], [item(100)])
    assert_problem(late, 409, "encounter_closed")
    assert await tasks.finish_bureau_settlements(ctx) == 0  # not before the retry time
    clock.advance(timedelta(seconds=31))
    assert await tasks.finish_bureau_settlements(ctx) == 1
    assert await tasks.finish_bureau_settlements(ctx) == 0
    bill = await Bill.get(encounter_id=encounter["id"])
    # The timeout persona is an employee under 45: 60 % at a tier-2 hospital.
    assert (bill.fund_fen, bill.self_pay_fen) == (6_000, 4_000) and bill.status == "paid"
    [operation] = await SandboxBureauOperation.all()
    assert operation.attempts == 2
    insured = await SandboxInsured.get(subject_id=bill.subject_id)
    assert insured.fund_used_fen == 6_000  # counted once at the bureau
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    record = await BureauSettlement.get(encounter_id=encounter["id"])
    assert record.status == "settled"
    await check_books()


async def test_a_bureau_that_is_down_is_waited_for(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")])
    bureau = sandbox_bureau(ctx)
    bureau.down = True
    try:
        assert_problem(
            await close(client, where, encounter["id"]), 503, "insurance_bureau_unavailable"
        )
        clock.advance(timedelta(seconds=31))
        assert await tasks.finish_bureau_settlements(ctx) == 0  # still down
    finally:
        bureau.down = False
    assert await SandboxBureauOperation.all().count() == 0
    clock.advance(timedelta(seconds=31))
    assert await tasks.finish_bureau_settlements(ctx) == 1
    again = await close(client, where, encounter["id"])
    assert again.status_code == 200 and again.json()["insurance_fen"] == 7_000
    assert await Bill.filter(encounter_id=encounter["id"]).count() == 1
    await check_books()


@dataclasses.dataclass
class CrashAfterBureau:
    """Settles at the bureau, then dies before the answer is booked (as the process would)."""

    inner: InsuranceBureau
    name: str = "crash-after-bureau"

    async def authorize(self, **kw: object) -> EcToken:
        return await self.inner.authorize(**kw)  # type: ignore[arg-type]

    async def standing(self, **kw: object) -> Standing:
        return await self.inner.standing(**kw)  # type: ignore[arg-type]

    async def pre_settle(self, **kw: object) -> Segments:
        return await self.inner.pre_settle(**kw)  # type: ignore[arg-type]

    async def settle(self, **kw: object) -> Segments:
        await self.inner.settle(**kw)  # type: ignore[arg-type]
        raise InjectedCrash("injected crash between the bureau's settlement and the booking")

    async def reverse(self, **kw: object) -> BureauParts:
        return await self.inner.reverse(**kw)  # type: ignore[arg-type]


async def test_crash_between_bureau_and_booking_settles_once_after_recovery(
    client: httpx.AsyncClient, ctx: AppContext, clock: FrozenClock
) -> None:
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(20_000, "A"), item(1_000, "C")])
    rt = payments_runtime(ctx)
    bureau, rt.bureau = rt.bureau, CrashAfterBureau(rt.bureau)
    try:
        crashed = await close(client, where, encounter["id"], idem="close-crash")
        assert crashed.status_code == 500
    finally:
        rt.bureau = bureau
    assert await SandboxBureauOperation.filter(kind="settle").count() == 1
    assert not await LedgerTransfer.exists(kind="settlement")
    clock.advance(timedelta(seconds=31))
    assert await tasks.finish_bureau_settlements(ctx) == 1
    retried = await close(client, where, encounter["id"], idem="close-crash")
    assert retried.status_code == 200 and retried.json()["insurance_fen"] == 14_000
    assert await Bill.filter(encounter_id=encounter["id"]).count() == 1
    assert await LedgerTransfer.filter(kind="settlement").count() == 1
    [operation] = await SandboxBureauOperation.all()
    assert operation.attempts == 2
    await check_books()


async def test_amounts_beyond_the_ceilings_and_bad_items_are_problems(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    rt = payments_runtime(ctx)
    rt.config = dataclasses.replace(rt.config, encounter_ceiling_fen=25_000_000)
    where = await hospital(client, ctx)
    person = await patient(client, ctx)
    encounter = await open_encounter(client, where, person)
    big_line = await charge(client, where, encounter["id"], [item(10_000_001)])
    assert_problem(big_line, 422, "amount_implausible")
    for n in range(2):
        await charge(client, where, encounter["id"], [item(100_000, quantity=100)], f"ok{n}")
    over = await charge(client, where, encounter["id"], [item(5_000_001)], "over")
    assert over.status_code in (402, 422)
    zero = await charge(client, where, encounter["id"], [item(100, quantity=0)])
    assert zero.status_code == 422 and zero.headers["content-type"].startswith(
        "application/problem+json"
    )


async def test_unknown_tier_is_refused_at_hospital_creation(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    with pytest.raises(AssertionError):
        await hospital(client, ctx, tier=4)


async def test_residents_do_not_declare_insurance_outside_the_sandbox(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    rt = payments_runtime(ctx)

    @dataclasses.dataclass
    class Elsewhere(CrashAfterBureau):
        name: str = "a real bureau"

    sandbox, rt.bureau = rt.bureau, Elsewhere(rt.bureau)
    try:
        with pytest.raises(AssertionError, match="insurance_declaration_refused"):
            await patient(client, ctx)
    finally:
        rt.bureau = sandbox
    production = Settings(
        app_env="production",
        database_url="postgres://x/y",
        redis_url="redis://x",
        sms_backend="sandbox",
        payment_provider="sandbox",
    )
    with pytest.raises(SettingsError, match="INSURANCE_BUREAU"):
        PaymentsRuntime.from_settings(production, b"k" * 32)
