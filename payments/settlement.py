"""Settlement: closing an encounter once into a bill split between insurance and self-pay,
booked in the ledger, with the self-pay part handed to collection.

Closing a settled encounter returns its bill, so concurrent or repeated closes settle once.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.transactions import in_transaction

from app.context import AppContext
from auth.api import Principal
from payments import ledger
from payments.collection import new_collection, run_collection
from payments.config import PaymentsConfig, PaymentsRuntime
from payments.encounters import find_encounter
from payments.hospitals import hospital_of
from payments.insurance import InsuranceProfile, Line, Split, allot, split_encounter
from payments.models import Bill, BillLine, Charge, ChargeItem, Collection, CreditAccount, Encounter
from payments.states import (
    ENCOUNTER,
    BillStatus,
    ClosedBy,
    CollectionKind,
    CollectionTrigger,
    EncounterStatus,
    SettlementStatus,
)
from payments.store import bill_event, emit, new_id, post_transfer, settlement_event

# A charge item as billed: its charge, the item, and its amount net of refunds before settlement.
Billed = tuple[Charge, ChargeItem, int]


def insurance_profile(
    account: CreditAccount, config: PaymentsConfig, now: datetime
) -> InsuranceProfile:
    # The deductible and the cap are annual: last year's figures count for nothing now.
    same_year = account.insurance_year == now.year
    return InsuranceProfile(
        insured=account.insured,
        scheme=config.scheme,
        deductible_met_fen=account.deductible_met_fen if same_year else 0,
        paid_this_year_fen=account.insurance_paid_fen if same_year else 0,
    )


def settlement_status(bill: Bill) -> SettlementStatus:
    """What the close endpoint reports: settled once nothing is owed, else payment_pending."""
    if bill.status == BillStatus.PAID:
        return SettlementStatus.SETTLED
    return SettlementStatus.PAYMENT_PENDING


async def close_encounter(ctx: AppContext, principal: Principal, encounter_id: str) -> Bill:
    """The hospital closes one of its encounters: settle it (once) and return its bill."""
    return await settle_encounter(
        ctx, hospital_id=hospital_of(principal), encounter_id=encounter_id
    )


async def settle_encounter(
    ctx: AppContext,
    *,
    hospital_id: str,
    encounter_id: str,
    closed_by: ClosedBy = ClosedBy.HOSPITAL,
) -> Bill:
    """Settle the encounter once: split, bill, ledger, release the hold, collect self-pay."""
    found = await find_encounter(hospital_id, encounter_id)
    if found.status != EncounterStatus.OPEN:
        return await Bill.get(encounter_id=encounter_id)
    config = ctx.runtime(PaymentsRuntime).config
    now = ctx.clock.now()
    async with in_transaction():
        account = await CreditAccount.filter(id=found.account_id).select_for_update().get()
        encounter = await Encounter.filter(id=encounter_id).select_for_update().get()
        if encounter.status != EncounterStatus.OPEN:
            return await Bill.get(encounter_id=encounter_id)
        billed = await _billed_items(encounter_id)
        profile = insurance_profile(account, config, now)
        split = split_encounter(
            [Line(amount, item.insurance_class) for _, item, amount in billed],  # type: ignore[arg-type]
            profile,
        )
        bill = await _create_bill(encounter, split, billed, config, now)
        collection = await _book_settlement(account, encounter, bill, now)
        await _count_insurance_year(account, profile, split, now)
        encounter.status = ENCOUNTER.advance(encounter.status, EncounterStatus.SETTLED)
        encounter.closed_at = now
        encounter.closed_by = closed_by
        await encounter.save(update_fields=["status", "closed_at", "closed_by"])
        await emit(hospital_id, "encounter.settled", settlement_event(encounter, bill), now)
        if collection is None:
            await emit(hospital_id, "bill.paid", bill_event(bill), now)
    # Booked and committed first: a crash from here on is resumed by the worker.
    if collection is not None:
        await run_collection(ctx, collection)
    return await Bill.get(id=bill.id)


async def _billed_items(encounter_id: str) -> list[Billed]:
    """Every item of the encounter's charges, net of refunds made before settlement."""
    charges = {c.id: c for c in await Charge.filter(encounter_id=encounter_id)}
    # Item ids grow with insertion, so the bill lists items in the order they were posted.
    items = await ChargeItem.filter(charge_id__in=list(charges)).order_by("id")
    by_charge: dict[str, list[ChargeItem]] = {}
    for item in items:
        by_charge.setdefault(item.charge_id, []).append(item)
    billed: list[Billed] = []
    for charge_key, own in by_charge.items():
        charge = charges[charge_key]
        # Refunds made before settlement come off the charge's items in proportion.
        cuts = allot(charge.refunded_fen, [i.amount_fen for i in own])
        billed += [(charge, i, i.amount_fen - cut) for i, cut in zip(own, cuts, strict=True)]
    return billed


async def _create_bill(
    encounter: Encounter,
    split: Split,
    billed: list[Billed],
    config: PaymentsConfig,
    now: datetime,
) -> Bill:
    owes = split.self_pay_fen > 0
    bill = await Bill.create(
        id=new_id("bill"),
        encounter_id=encounter.id,
        hospital_id=encounter.hospital_id,
        subject_id=encounter.subject_id,
        total_fen=split.total_fen,
        insurance_fen=split.insurance_fen,
        self_pay_fen=split.self_pay_fen,
        status=BillStatus.COLLECTING if owes else BillStatus.PAID,
        paid_at=None if owes else now,
        due_at=now + config.overdue_after,
        created_at=now,
    )
    await BillLine.bulk_create(
        [
            BillLine(
                bill_id=bill.id,
                charge_ref=charge.id,
                hospital_charge_id=charge.charge_id,
                position=n,
                item_code=item.item_code,
                name=item.name,
                category=item.category,
                quantity=item.quantity,
                unit_price_fen=item.unit_price_fen,
                insurance_class=item.insurance_class,
                amount_fen=amount,
                insurance_fen=line.insurance_fen,
                self_pay_fen=line.self_pay_fen,
            )
            for n, ((charge, item, amount), line) in enumerate(
                zip(billed, split.lines, strict=True)
            )
        ]
    )
    return bill


async def _book_settlement(
    account: CreditAccount, encounter: Encounter, bill: Bill, now: datetime
) -> Collection | None:
    """Post the settlement transfer; the keyed collection of the self-pay part, if any."""
    await post_transfer(
        ledger.settlement(
            f"settlement:{encounter.id}",
            subject_id=encounter.subject_id,
            hospital_id=encounter.hospital_id,
            insurance_fen=bill.insurance_fen,
            self_pay_fen=bill.self_pay_fen,
        ),
        hospital_id=encounter.hospital_id,
        now=now,
    )
    if bill.self_pay_fen <= 0:
        return None
    return await new_collection(
        bill,
        CollectionKind.COLLECT,
        CollectionTrigger.SETTLEMENT,
        amount_fen=bill.self_pay_fen,
        payment_method=account.payment_method,
        now=now,
    )


async def _count_insurance_year(
    account: CreditAccount, profile: InsuranceProfile, split: Split, now: datetime
) -> None:
    # The profile already counts last year's figures as zero, so this also rolls the year.
    account.deductible_met_fen = profile.deductible_met_fen + split.deductible_applied_fen
    account.insurance_paid_fen = profile.paid_this_year_fen + split.insurance_fen
    account.insurance_year = now.year
    account.updated_at = now
    await account.save(
        update_fields=["deductible_met_fen", "insurance_paid_fen", "insurance_year", "updated_at"]
    )
