"""Family credit: a dependent treated on a guardian's credit line, and relatives repaying
bills. Relations come from auth (`guardians_of`, `dependents_of`).

The encounter stays the patient's (their code, their insurance at the bureau); its hold is
on the payer's account. At settlement (`on_bill_settled`, a hook of payments/settlement.py)
the bill becomes the payer's: a `family` transfer moves the cash part the patient's
resident account was booked with to the payer's, so the ledger says who owes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tortoise.expressions import Q

from app.context import AppContext
from app.errors import NotFound
from auth.api import Principal, dependents_of, guardians_of, subject_for_request, subject_profile
from payments import invoices, ledger
from payments.collection import BillView, run_collection, start_collection
from payments.config import PaymentsRuntime
from payments.credit import bind_method
from payments.errors import NotEnrolled, PaymentDeclined, ProviderUnavailable
from payments.models import Bill, BillLine, CreditAccount, Encounter
from payments.states import AccountStatus, CollectionStatus, CollectionTrigger
from payments.store import post_transfer

if TYPE_CHECKING:  # settlement imports encounters, which imports this module
    from payments.settlement import Booked


async def paying_account(subject_id: str) -> CreditAccount | None:
    """Whose credit a patient is treated on: their own account, else their first guardian's
    (an active one before a suspended one), else None."""
    own = await CreditAccount.get_or_none(subject_id=subject_id)
    if own is not None:
        return own
    guardians = await guardians_of(subject_id)
    if not guardians:
        return None
    found = {a.subject_id: a for a in await CreditAccount.filter(subject_id__in=guardians)}
    accounts = [found[g] for g in guardians if g in found]
    active = [a for a in accounts if a.status == AccountStatus.ACTIVE]
    chosen = active or accounts
    return chosen[0] if chosen else None


async def on_bill_settled(ctx: AppContext, bill: Bill, booked: Booked) -> None:
    """Inside the settlement's transaction: hand a dependent's bill to the guardian whose
    credit paid for it, then issue the bill's e-invoice (exactly once, with the booking)."""
    payer = booked.payer
    if payer.subject_id != bill.subject_id:
        await post_transfer(
            ledger.transfer(
                f"family:{bill.id}",
                "family",
                {
                    ledger.resident_account(bill.subject_id): -bill.self_pay_fen,
                    ledger.resident_account(payer.subject_id): bill.self_pay_fen,
                },
            ),
            hospital_id=bill.hospital_id,
            now=ctx.clock.now(),
        )
        bill.subject_id = payer.subject_id
        await bill.save(update_fields=["subject_id"])
    await invoices.issue_for_bill(ctx, bill, booked=booked)


@dataclass(frozen=True)
class FamilyBill:
    """A bill seen by a relative: the bill, and who was treated and whose credit paid."""

    view: BillView
    patient_subject_id: str
    patient_masked_name: str | None
    payer_masked_name: str | None


async def _relatives(subject_id: str) -> set[str]:
    return set(await guardians_of(subject_id)) | set(await dependents_of(subject_id))


async def _is_relative_of_bill(me: str, bill: Bill, patient: str) -> bool:
    if me in (bill.subject_id, patient):
        return True
    return me in await _relatives(bill.subject_id) or me in await guardians_of(patient)


async def family_bills(ctx: AppContext, principal: Principal) -> list[FamilyBill]:
    """The bills of the caller's family: their dependents' treatment (on anyone's credit)
    and the bills of relatives (guardians, dependents with their own account), newest first."""
    me = await subject_for_request(principal, None)
    dependents = await dependents_of(me)
    relatives = await _relatives(me)
    mine = Q(subject_id__in=list(relatives)) | Q(encounter__subject_id__in=dependents)
    bills = await Bill.filter(mine).order_by("-created_at").limit(200)
    return [await _family_bill(ctx, bill) for bill in bills]


async def _family_bill(ctx: AppContext, bill: Bill) -> FamilyBill:
    encounter = await Encounter.get(id=bill.encounter_id)
    now = ctx.clock.now()
    patient = await subject_profile(encounter.subject_id, now=now)
    payer = await subject_profile(bill.subject_id, now=now)
    lines = await BillLine.filter(bill_id=bill.id).order_by("position")
    return FamilyBill(
        BillView(bill, lines),
        encounter.subject_id,
        patient.masked_name if patient else None,
        payer.masked_name if payer else None,
    )


async def repay_bill(
    ctx: AppContext, principal: Principal, bill_id: str, *, payment_method: str | None
) -> FamilyBill:
    """A relative pays a bill that is not theirs, with a method they give or the one bound
    to their own credit account. Paying an overdue bill reinstates its owner's credit."""
    me = await subject_for_request(principal, None)
    bill = await Bill.get_or_none(id=bill_id)
    encounter = await Encounter.get_or_none(id=bill.encounter_id) if bill else None
    if (
        bill is None
        or encounter is None
        or not await _is_relative_of_bill(me, bill, encounter.subject_id)
    ):
        raise NotFound("no such bill")
    if payment_method is None:
        own = await CreditAccount.get_or_none(subject_id=me)
        if own is None:
            raise NotEnrolled("give a payment_method, or enrol to pay with your own")
        payment_method = own.payment_method
    else:
        await bind_method(ctx.runtime(PaymentsRuntime).provider, payment_method)
    started = await start_collection(
        bill.id,
        trigger=CollectionTrigger.MANUAL,
        payment_method=payment_method,
        now=ctx.clock.now(),
    )
    if not isinstance(started, Bill):
        collection = await run_collection(ctx, started)
        if collection.status == CollectionStatus.PENDING:
            raise ProviderUnavailable(
                "the payment provider did not answer; the payment will be completed automatically"
            )
        if collection.status == CollectionStatus.DECLINED:
            raise PaymentDeclined(
                f"the payment was declined: {collection.reason}",
                extra={"reason": collection.reason},
            )
    return await _family_bill(ctx, await Bill.get(id=bill.id))
