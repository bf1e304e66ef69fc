"""Refunds after settlement reverse at the insurance bureau and give each payer (the fund,
the patient's accumulated and current-year accounts) its own share back, exactly, in the
ledger, on the red invoice and in the bureau's books; a bureau that does not answer books
nothing, and a retried refund reverses once."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.context import AppContext
from payments import ledger
from payments.bureau import BureauRefused, BureauTimeout, InsuranceBureau
from payments.insurance import BureauParts, refund_payers
from payments.models import (
    Bill,
    Charge,
    Encounter,
    LedgerTransfer,
    Refund,
    SandboxBureauOperation,
    SandboxInsured,
)
from tests.factories import Resident, assert_problem, valid_id_number
from tests.payments.helpers import (
    Hospital,
    account_balances,
    charge,
    check_books,
    close,
    hospital,
    item,
    open_encounter,
    patient,
    payments_runtime,
    refund,
)
from tests.payments.test_bureau import sandbox_bureau
from tests.payments.test_family import child_visit, guard


@given(
    fund=st.integers(0, 10**6),
    accumulated=st.integers(0, 10**6),
    current=st.integers(0, 10**6),
    cuts=st.lists(st.floats(0, 1), max_size=6),
)
def test_refund_payers_add_up_and_give_back_exactly_what_was_paid(
    fund: int, accumulated: int, current: int, cuts: list[float]
) -> None:
    paid = BureauParts(fund, accumulated, current)
    points = sorted({int(c * paid.total_fen) for c in cuts} | {0, paid.total_fen})
    back = BureauParts()
    for before, after in itertools.pairwise(points):
        part = refund_payers(paid, before, after - before)
        assert part.total_fen == after - before
        assert min(part.fund_fen, part.accumulated_fen, part.current_account_fen) >= 0
        back += part
        left = paid - back
        assert min(left.fund_fen, left.accumulated_fen, left.current_account_fen) >= 0
    assert back == paid


def test_refund_payers_take_the_fund_first_then_accumulated_then_current() -> None:
    paid = BureauParts(fund_fen=6_300, accumulated_fen=2_000, current_account_fen=1_000)
    assert refund_payers(paid, 0, 4_650) == BureauParts(4_650, 0, 0)
    assert refund_payers(paid, 4_650, 4_650) == BureauParts(1_650, 2_000, 1_000)


async def red_splits(client: httpx.AsyncClient, person: Any, bill_id: str) -> list[dict[str, int]]:
    body = (await client.get(f"/v1/bills/{bill_id}/invoice", headers=person.headers)).json()
    payers = ("fund_fen", "current_account_fen", "accumulated_account_fen", "cash_fen")
    return [{p: red["split"][p] for p in payers} for red in body["red_invoices"]]


async def test_refunds_give_each_payer_its_share_back_at_the_bureau_and_in_the_ledger(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where = await hospital(client, ctx)  # tier 2: the fund pays 70 % for employee_45
    person = await patient(client, ctx, current_account_fen=1_000, accumulated_account_fen=2_000)
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")], "a")
    await charge(client, where, encounter["id"], [item(1_000, "C")], "c")
    closed = (await close(client, where, encounter["id"])).json()
    # By hand: C 10.00 self-paid; covered 100.00: current account 10.00, co-pay 90.00 ->
    # fund 63.00, patient 27.00 = accumulated 20.00 + cash 7.00.
    assert closed["segments"]["fund_fen"] == 6_300
    assert closed["segments"]["copay_accumulated_fen"] == 2_000
    assert closed["segments"]["current_account_fen"] == 1_000
    bill = await Bill.get(encounter_id=encounter["id"])
    current = ledger.personal_current_account(str(person.subject_id))
    accumulated = ledger.personal_accumulated_account(str(person.subject_id))

    first = await refund(client, where, encounter["id"], "a", 5_000, refund_id="r-1")
    assert first.status_code == 201, first.text
    # 93 % of the line was the bureau's: 46.50 of 50.00, all from the fund (taken first).
    assert (first.json()["insurance_fen"], first.json()["self_pay_fen"]) == (4_650, 350)
    balances = await account_balances()
    assert (balances.get(current, 0), balances.get(accumulated, 0)) == (1_000, 2_000)
    second = await refund(client, where, encounter["id"], "a", 5_000, refund_id="r-2")
    assert second.status_code == 201, second.text
    assert second.json()["insurance_fen"] == 4_650

    # The red invoices show who got what back; together the line's whole bureau part.
    splits = await red_splits(client, person, bill.id)
    assert splits == [
        {"fund_fen": -4_650, "current_account_fen": 0, "accumulated_account_fen": 0,
         "cash_fen": -350},
        {"fund_fen": -1_650, "current_account_fen": -1_000, "accumulated_account_fen": -2_000,
         "cash_fen": -350},
    ]  # fmt: skip
    # The bureau gave the accounts back and no longer counts the fund's use.
    insured = await SandboxInsured.get(subject_id=person.subject_id)
    assert (insured.current_account_fen, insured.accumulated_account_fen) == (1_000, 2_000)
    assert insured.fund_used_fen == 0
    balances = await account_balances()
    assert (balances.get(current, 0), balances.get(accumulated, 0)) == (0, 0)
    # A retried refund reverses nothing more.
    again = await refund(client, where, encounter["id"], "a", 5_000, refund_id="r-2")
    assert again.status_code == 200
    assert await SandboxBureauOperation.filter(kind="reverse").count() == 2
    await check_books()


async def settled_visit(
    client: httpx.AsyncClient, ctx: AppContext, *, current: int = 0, accumulated: int = 0
) -> tuple[Hospital, Resident, str]:
    """A patient of the given accounts, a class A line of 100.00 (charge "a") settled at a
    tier-2 hospital: (hospital, patient, encounter id)."""
    where = await hospital(client, ctx)
    person = await patient(
        client, ctx, current_account_fen=current, accumulated_account_fen=accumulated
    )
    encounter = await open_encounter(client, where, person)
    await charge(client, where, encounter["id"], [item(10_000, "A")], "a")
    await close(client, where, encounter["id"])
    return where, person, encounter["id"]


async def test_a_refund_the_bureau_does_not_confirm_books_nothing_and_its_retry_reverses_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    where, person, encounter_id = await settled_visit(client, ctx, accumulated=3_000)
    encounter = {"id": encounter_id}
    bureau = sandbox_bureau(ctx)
    bureau.down = True
    try:
        down = await refund(client, where, encounter["id"], "a", 10_000, refund_id="r-down")
        assert_problem(down, 503, "insurance_bureau_unavailable")
    finally:
        bureau.down = False
    assert not await Refund.exists(encounter_id=encounter["id"])
    assert (await Charge.get(encounter_id=encounter["id"], charge_id="a")).refunded_fen == 0
    assert not await LedgerTransfer.filter(kind="refund").exists()

    # The bureau reverses but the answer is lost: nothing booked; the retry reverses once.
    rt = payments_runtime(ctx)
    inner, rt.bureau = rt.bureau, LosesReversalAnswer(rt.bureau)
    try:
        lost = await refund(client, where, encounter["id"], "a", 10_000, refund_id="r-1")
        assert_problem(lost, 503, "insurance_bureau_unavailable")
    finally:
        rt.bureau = inner
    # (The sandbox keeps its books in our database, inside the refund's transaction, so its
    # reversal rolled back with the refund; a real bureau returns its first reversal to the
    # retry's same key, test_the_bureau_reverses_a_key_once.)
    assert not await Refund.exists(encounter_id=encounter["id"])
    done = await refund(client, where, encounter["id"], "a", 10_000, refund_id="r-1")
    assert done.status_code == 201, done.text
    assert await SandboxBureauOperation.filter(kind="reverse").count() == 1
    insured = await SandboxInsured.get(subject_id=person.subject_id)
    assert insured.accumulated_account_fen == 3_000 and insured.fund_used_fen == 0
    await check_books()


async def test_the_bureau_reverses_a_key_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    _, person, encounter_id = await settled_visit(client, ctx, current=2_000)
    settled = str((await Bill.get(encounter_id=encounter_id)).bureau_settlement_id)
    bureau, now = sandbox_bureau(ctx), ctx.clock.now()
    parts = BureauParts(fund_fen=1_000, current_account_fen=500)
    for _ in range(2):
        assert await bureau.reverse(key="k1", settlement_key=settled, now=now, parts=parts) == parts
    insured = await SandboxInsured.get(subject_id=person.subject_id)
    assert insured.current_account_fen == 500  # 2,000 - 2,000 paid + 500 back, once
    other = BureauParts(fund_fen=1)
    for key, asked, reason in (
        ("k1", other, "key_reused"),
        ("k2", BureauParts(current_account_fen=1_501), "exceeds_settlement"),
    ):
        with pytest.raises(BureauRefused) as refused:
            await bureau.reverse(key=key, settlement_key=settled, now=now, parts=asked)
        assert refused.value.reason == reason
    # A whole reversal gives back what is left.
    rest = await bureau.reverse(key="k3", settlement_key=settled, now=now)
    assert rest.current_account_fen == 1_500 and rest.accumulated_fen == 0
    insured = await SandboxInsured.get(subject_id=person.subject_id)
    assert insured.current_account_fen == 2_000 and insured.fund_used_fen == 0


class LosesReversalAnswer:
    """The bureau reverses, then the answer is lost on the way back (a timeout)."""

    def __init__(self, inner: InsuranceBureau) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def reverse(self, **kw: Any) -> BureauParts:
        await self.inner.reverse(**kw)
        raise BureauTimeout("the reversal's answer was lost")


async def test_a_family_bill_refund_gives_the_dependents_own_accounts_back(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    """A child insured in their own right (personal accounts at the bureau) is treated on
    the parent's credit: the cash is the parent's, the accounts stay the child's."""
    where = await hospital(client, ctx)
    parent = await patient(client, ctx)
    child_id = await guard(client, parent, valid_id_number())
    await sandbox_bureau(ctx).enrol_persona(
        child_id,
        "employee",
        ctx.clock.now(),
        current_account_fen=1_500,
        accumulated_account_fen=800,
        deductible_used_fen=150_000,
    )
    opened = await child_visit(client, where, parent, child_id)
    assert opened.status_code == 201, opened.text
    encounter_id = opened.json()["id"]
    await charge(client, where, encounter_id, [item(4_000, "A")], "a")
    closed = await close(client, where, encounter_id)
    assert closed.status_code == 200, closed.text
    bill = await Bill.get(encounter_id=encounter_id)
    assert bill.subject_id == parent.subject_id  # the parent pays the cash
    assert (await Encounter.get(id=encounter_id)).subject_id == child_id
    assert bill.current_account_fen == 1_500 and bill.copay_accumulated_fen == 800
    child_current = ledger.personal_current_account(child_id)
    assert (await account_balances())[child_current] == 1_500
    await check_books()  # the child's accounts under the child, not the parent

    done = await refund(client, where, encounter_id, "a", 4_000, refund_id="r-all")
    assert done.status_code == 201, done.text
    balances = await account_balances()
    assert balances.get(child_current, 0) == 0
    assert balances.get(ledger.personal_accumulated_account(child_id), 0) == 0
    assert ledger.personal_current_account(str(parent.subject_id)) not in balances
    insured = await SandboxInsured.get(subject_id=child_id)
    assert (insured.current_account_fen, insured.accumulated_account_fen) == (1_500, 800)
    [split] = await red_splits(client, parent, bill.id)
    assert split["current_account_fen"] == -1_500 and split["accumulated_account_fen"] == -800
    await check_books()
