"""Building the payments endpoints' responses (`payments/schemas.py`) from the domain's objects."""

from __future__ import annotations

from payments import (
    collection,
    credit,
    encounters,
    settlement,
)
from payments.models import Bill, Encounter, Refund
from payments.schemas import (
    BillLineOut,
    BillOut,
    CreditOut,
    EncounterBillOut,
    EncounterBrief,
    EncounterListItem,
    EncounterOut,
    PatientOut,
    QuoteLineOut,
    QuoteOut,
    RefundOut,
    SegmentsOut,
    SettlementOut,
)


def segments_out(bill: Bill) -> SegmentsOut:
    return SegmentsOut(
        self_paid_items_fen=bill.self_paid_items_fen,
        current_account_fen=bill.current_account_fen,
        self_segment_accumulated_fen=bill.self_segment_accumulated_fen,
        self_segment_cash_fen=bill.self_segment_cash_fen,
        fund_fen=bill.fund_fen,
        copay_accumulated_fen=bill.copay_accumulated_fen,
        copay_cash_fen=bill.copay_cash_fen,
        rule_version=bill.rule_version,
    )


def encounter_status(encounter: Encounter) -> str:
    """`settling` while closing has started but the bureau's answer is not booked yet."""
    if encounter.status == "open" and encounter.closed_at is not None:
        return "settling"
    return str(encounter.status)


def quote_out(quote: settlement.Quote) -> QuoteOut:
    split, visit = quote.split, quote.visit
    parts = split.parts()
    return QuoteOut(
        encounter_id=visit.encounter.id,
        hospital_tier=visit.hospital.tier,
        category=quote.category,
        total_fen=split.total_fen,
        insurance_fen=split.insurance_fen,
        cash_fen=split.cash_fen,
        credit_used_fen=split.cash_fen,
        hold_fen=visit.encounter.hold_fen,
        segments=SegmentsOut(**parts, rule_version=split.rule_version),
        lines=[
            QuoteLineOut(
                charge_id=billed.charge_id,
                item_code=billed.item_code,
                insurance_class=billed.insurance_class,
                amount_fen=billed.amount_fen,
                insurance_fen=share.insurance_fen,
                self_pay_fen=share.self_pay_fen,
            )
            for billed, share in zip(visit.billed, split.lines, strict=True)
        ],
    )


def bill_out(bill: Bill, lines: list[BillLineOut] | None = None) -> BillOut:
    return BillOut(
        id=bill.id,
        encounter_id=bill.encounter_id,
        hospital_id=bill.hospital_id,
        status=bill.status,
        total_fen=bill.total_fen,
        insurance_fen=bill.insurance_fen,
        self_pay_fen=bill.self_pay_fen,
        segments=segments_out(bill),
        refunded_insurance_fen=bill.refunded_insurance_fen,
        refunded_self_pay_fen=bill.refunded_self_pay_fen,
        collected_fen=bill.collected_fen,
        paid_out_fen=bill.paid_out_fen,
        outstanding_fen=bill.outstanding_fen,
        due_at=bill.due_at,
        paid_at=bill.paid_at,
        next_retry_at=bill.next_retry_at,
        created_at=bill.created_at,
        lines=lines,
    )


def bill_view_out(view: collection.BillView) -> BillOut:
    lines = [
        BillLineOut(
            charge_id=line.hospital_charge_id,
            item_code=line.item_code,
            name=line.name,
            category=line.category,
            quantity=line.quantity,
            unit_price_fen=line.unit_price_fen,
            insurance_class=line.insurance_class,
            amount_fen=line.amount_fen,
            insurance_fen=line.insurance_fen,
            self_pay_fen=line.self_pay_fen,
        )
        for line in view.lines
    ]
    return bill_out(view.bill, lines)


def encounter_out(encounter: Encounter, patient: PatientOut | None = None) -> EncounterOut:
    return EncounterOut(
        id=encounter.id,
        hospital_id=encounter.hospital_id,
        department=encounter.department,
        status=encounter_status(encounter),
        hold_fen=encounter.hold_fen,
        charged_fen=encounter.charged_fen,
        opened_at=encounter.opened_at,
        closed_at=encounter.closed_at,
        patient=patient,
        ec_token=encounter.ec_token if patient is not None else None,
        ec_token_expires_at=encounter.ec_token_expires_at if patient is not None else None,
    )


def settlement_out(bill: Bill) -> SettlementOut:
    return SettlementOut(
        encounter_id=bill.encounter_id,
        bill_id=bill.id,
        total_fen=bill.total_fen,
        insurance_fen=bill.insurance_fen,
        self_pay_fen=bill.self_pay_fen,
        segments=segments_out(bill),
        status=settlement.settlement_status(bill),
    )


def refund_out(refund: Refund) -> RefundOut:
    return RefundOut(
        refund_id=refund.refund_id,
        encounter_id=refund.encounter_id,
        charge_id=refund.hospital_charge_id,
        amount_fen=refund.amount_fen,
        insurance_fen=refund.insurance_fen,
        self_pay_fen=refund.self_pay_fen,
        after_settlement=refund.after_settlement,
        created_at=refund.created_at,
    )


def credit_out(summary: credit.CreditSummary) -> CreditOut:
    account = summary.account
    return CreditOut(
        account_id=account.id,
        status=account.status,
        limit_fen=account.limit_fen,
        available_fen=summary.available_fen,
        holds_fen=summary.holds_fen,
        unpaid_fen=summary.unpaid_fen,
        payment_method=account.payment_method,
        insured=account.insured,
        open_encounters=[
            EncounterBrief(
                id=e.id,
                hospital_id=e.hospital_id,
                department=e.department,
                hold_fen=e.hold_fen,
                charged_fen=e.charged_fen,
                opened_at=e.opened_at,
            )
            for e in summary.open_encounters
        ],
        unpaid_bills=[bill_out(b) for b in summary.unpaid_bills],
    )


def encounter_list_item(row: encounters.DayEncounter) -> EncounterListItem:
    e, bill = row.encounter, row.bill
    return EncounterListItem(
        id=e.id,
        department=e.department,
        status=encounter_status(e),
        hold_fen=e.hold_fen,
        charged_fen=e.charged_fen,
        opened_at=e.opened_at,
        closed_at=e.closed_at,
        patient=PatientOut(masked_name=row.masked_name, age_group=None),
        bill=None
        if bill is None
        else EncounterBillOut(
            id=bill.id,
            status=bill.status,
            settlement_status=settlement.settlement_status(bill),
            total_fen=bill.total_fen,
            insurance_fen=bill.insurance_fen,
            self_pay_fen=bill.self_pay_fen,
            outstanding_fen=bill.outstanding_fen,
        ),
    )
