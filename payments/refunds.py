"""Refunds of a charge, before settlement (the charge shrinks) or after it (the refund is
split like the bill's lines, reversed in the ledger, and overpaid self-pay is paid out).

The charge row is locked, so concurrent refunds queue and each sees the sum of the previous
ones: refunds never pass what was charged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from tortoise.transactions import in_transaction

from app.context import AppContext
from app.errors import IdempotencyKeyReused, NotFound
from app.idempotency import canonical_hash
from auth.api import Principal
from payments import invoices, ledger
from payments.bureau import BureauDown, BureauRefused, BureauTimeout
from payments.collection import new_collection, run_collection
from payments.config import PaymentsRuntime
from payments.credit import refresh_account_status
from payments.encounters import find_encounter
from payments.errors import BureauUnavailable, PaymentInProgress, RefundExceedsCharge
from payments.hospitals import hospital_of
from payments.insurance import BureauParts, refund_payers
from payments.insurance import proportional_part as insurance_part
from payments.models import Bill, BillLine, Charge, Collection, CreditAccount, Encounter, Refund
from payments.states import (
    BILL,
    BillStatus,
    CollectionKind,
    CollectionStatus,
    CollectionTrigger,
    EncounterStatus,
)
from payments.store import emit, new_id, post_transfer


@dataclass(frozen=True)
class RefundResult:
    refund: Refund
    created: bool


@dataclass(frozen=True)
class RefundRequest:
    hospital_id: str
    encounter_id: str
    refund_id: str
    charge_id: str  # the hospital's own charge_id
    amount_fen: int


@dataclass(frozen=True)
class SettledRefund:
    """A refund after settlement: its split, and the payout of overpaid self-pay if any."""

    insurance_fen: int
    self_pay_fen: int
    payout: Collection | None


async def refund_charge(
    ctx: AppContext,
    principal: Principal,
    *,
    encounter_id: str,
    refund_id: str,
    charge_id: str,
    amount_fen: int,
) -> RefundResult:
    """Refund part or all of a charge of one of the client's encounters, once per refund_id."""
    ask = RefundRequest(hospital_of(principal), encounter_id, refund_id, charge_id, amount_fen)
    await find_encounter(ask.hospital_id, encounter_id)
    fingerprint = canonical_hash({"charge_id": charge_id, "amount_fen": amount_fen})
    now = ctx.clock.now()
    async with in_transaction():
        encounter = await Encounter.filter(id=encounter_id).select_for_update().get()
        existing = await Refund.get_or_none(encounter_id=encounter_id, refund_id=refund_id)
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused("this refund_id was used with another request")
            return RefundResult(existing, created=False)
        charge = await _refundable_charge(ask)
        after = encounter.status != EncounterStatus.OPEN
        if after:
            settled = await _refund_settled(ctx, ask, charge, encounter, now)
        else:
            settled = SettledRefund(0, 0, None)
            encounter.charged_fen -= amount_fen
            await encounter.save(update_fields=["charged_fen"])
        charge.refunded_fen += amount_fen
        await charge.save(update_fields=["refunded_fen"])
        refund = await _record_refund(ask, charge, settled, after, fingerprint, now)
        # The red (冲红) invoice commits with the refund, or neither does.
        await invoices.issue_for_refund(ctx, refund)
    if settled.payout is not None:
        await run_collection(ctx, settled.payout)
    if after:
        # The account that owes the bill: the patient's, or the guardian's it was treated on.
        payer = await CreditAccount.get(id=encounter.account_id)
        await refresh_account_status(ctx, payer.subject_id)
    return RefundResult(refund, created=True)


async def _refundable_charge(ask: RefundRequest) -> Charge:
    """The charge, locked; 404 when it is not on the encounter, 409 past what it charged."""
    charge = (
        await Charge.filter(encounter_id=ask.encounter_id, charge_id=ask.charge_id)
        .select_for_update()
        .first()
    )
    if charge is None:
        raise NotFound("no such charge on this encounter")
    if charge.refunded_fen + ask.amount_fen > charge.amount_fen:
        raise RefundExceedsCharge(
            "the refunds would exceed the charge",
            extra={"refundable_fen": charge.amount_fen - charge.refunded_fen},
        )
    return charge


async def _refund_settled(
    ctx: AppContext, ask: RefundRequest, charge: Charge, encounter: Encounter, now: datetime
) -> SettledRefund:
    """Split the refund like the charge's bill lines, its bureau part by payer; reverse that
    part at the bureau, then each payer's share in the ledger; start paying back what the
    resident paid beyond what is now owed."""
    bill = await Bill.filter(encounter_id=ask.encounter_id).select_for_update().get()
    if bill.status == BillStatus.COLLECTING:
        raise PaymentInProgress("the bill's payment is in flight; retry the refund shortly")
    insurance_fen = await _insurance_share(bill, charge, ask.amount_fen)
    self_pay_fen = ask.amount_fen - insurance_fen
    payers = refund_payers(bureau_parts(bill), bill.refunded_insurance_fen, insurance_fen)
    if payers.total_fen > 0:
        await _reverse_at_bureau(ctx, ask, bill, payers, now)
    bill.refunded_insurance_fen += insurance_fen
    bill.refunded_self_pay_fen += self_pay_fen
    await post_transfer(
        ledger.refund(
            f"refund:{ask.encounter_id}:{ask.refund_id}",
            subject_id=bill.subject_id,  # who owes the bill's cash (a guardian's bill)
            patient_id=encounter.subject_id,  # whose personal accounts paid
            hospital_id=ask.hospital_id,
            insurance_fen=insurance_fen,
            self_pay_fen=self_pay_fen,
            current_account_fen=payers.current_account_fen,
            accumulated_account_fen=payers.accumulated_fen,
        ),
        hospital_id=ask.hospital_id,
        now=now,
    )
    payout = await _pay_back_overpayment(bill, now)
    if (
        bill.status in (BillStatus.PAYMENT_PENDING, BillStatus.OVERDUE)
        and bill.outstanding_fen == 0
    ):
        bill.status = BILL.advance(bill.status, BillStatus.PAID)
        bill.paid_at = now
        bill.next_retry_at = None
    await bill.save(
        update_fields=[
            "refunded_insurance_fen",
            "refunded_self_pay_fen",
            "status",
            "paid_at",
            "next_retry_at",
        ]
    )
    return SettledRefund(insurance_fen, self_pay_fen, payout)


def bureau_parts(bill: Bill) -> BureauParts:
    """What the bureau paid of the bill, by payer."""
    return BureauParts(
        fund_fen=bill.fund_fen,
        accumulated_fen=bill.self_segment_accumulated_fen + bill.copay_accumulated_fen,
        current_account_fen=bill.current_account_fen,
    )


def reversal_key(encounter_id: str, refund_id: str) -> str:
    """The bureau's key for a refund's reversal: the same for every retry of the refund
    (the hospital's refund_id is unique per encounter), short whatever refund_id is."""
    digest = hashlib.sha256(f"{encounter_id}\n{refund_id}".encode()).hexdigest()
    return f"rev_{digest[:40]}"


async def _reverse_at_bureau(
    ctx: AppContext, ask: RefundRequest, bill: Bill, payers: BureauParts, now: datetime
) -> None:
    """Reverse the refund's bureau part at the bureau, keyed by the hospital's refund_id, so
    a retried refund (after a timeout, or after our transaction rolled back) reverses once.
    Nothing is booked unless the bureau confirmed: a bureau that does not answer fails the
    refund (503) and the hospital retries it with the same refund_id."""
    if bill.bureau_settlement_id is None:
        raise BureauUnavailable("the bill has no settlement at the bureau to reverse")
    try:
        reversed_ = await ctx.runtime(PaymentsRuntime).bureau.reverse(
            key=reversal_key(ask.encounter_id, ask.refund_id),
            settlement_key=bill.bureau_settlement_id,
            now=now,
            parts=payers,
        )
    except (BureauTimeout, BureauDown):
        raise BureauUnavailable(
            "the insurance bureau did not confirm the reversal; retry the refund"
        ) from None
    except BureauRefused as refused:
        raise BureauUnavailable(
            "the insurance bureau refused the reversal", extra={"reason": refused.reason}
        ) from None
    if reversed_ != payers:
        raise BureauUnavailable(
            "the bureau reversed other parts under this refund_id", extra={"reason": "key_reused"}
        )


async def _insurance_share(bill: Bill, charge: Charge, amount_fen: int) -> int:
    """The insurance part of refunding `amount_fen` of the charge, cumulative over the
    charge's earlier refunds after settlement (so partial refunds add up exactly)."""
    lines = await BillLine.filter(bill_id=bill.id, charge_ref=charge.id)
    billed = sum(line.amount_fen for line in lines)
    billed_insurance = sum(line.insurance_fen for line in lines)
    before = sum(
        cast(
            list[int],
            await Refund.filter(charge_id=charge.id, after_settlement=True).values_list(
                "amount_fen", flat=True
            ),
        )
    )
    return insurance_part(billed_insurance, billed, before, amount_fen)


async def _pay_back_overpayment(bill: Bill, now: datetime) -> Collection | None:
    """A payout of what the resident paid beyond what the bill now asks, less payouts
    already under way; None when nothing is overpaid."""
    overpaid = (
        bill.collected_fen - bill.paid_out_fen - (bill.self_pay_fen - bill.refunded_self_pay_fen)
    )
    pending_payouts = sum(
        cast(
            list[int],
            await Collection.filter(
                bill_id=bill.id, kind=CollectionKind.PAYOUT, status=CollectionStatus.PENDING
            ).values_list("amount_fen", flat=True),
        )
    )
    if overpaid - pending_payouts <= 0:
        return None
    account = await CreditAccount.get(subject_id=bill.subject_id)
    return await new_collection(
        bill,
        CollectionKind.PAYOUT,
        CollectionTrigger.REFUND,
        amount_fen=overpaid - pending_payouts,
        payment_method=account.payment_method,
        now=now,
    )


async def _record_refund(
    ask: RefundRequest,
    charge: Charge,
    settled: SettledRefund,
    after: bool,
    fingerprint: str,
    now: datetime,
) -> Refund:
    """The refund row and its `refund.succeeded` event."""
    refund = await Refund.create(
        id=new_id("ref"),
        encounter_id=ask.encounter_id,
        charge_id=charge.id,
        hospital_id=ask.hospital_id,
        hospital_charge_id=ask.charge_id,
        refund_id=ask.refund_id,
        amount_fen=ask.amount_fen,
        insurance_fen=settled.insurance_fen,
        self_pay_fen=settled.self_pay_fen,
        after_settlement=after,
        request_hash=fingerprint,
        created_at=now,
    )
    await emit(
        ask.hospital_id,
        "refund.succeeded",
        {
            "refund_id": ask.refund_id,
            "encounter_id": ask.encounter_id,
            "charge_id": ask.charge_id,
            "amount_fen": ask.amount_fen,
            "insurance_fen": settled.insurance_fen,
            "self_pay_fen": settled.self_pay_fen,
            "after_settlement": after,
        },
        now,
    )
    return refund
