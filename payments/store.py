"""The writes every payments change shares: ledger transfers, outbox events, new ids.

Always called inside the caller's transaction, so a change, its ledger postings and its
webhook events commit together or not at all. (The domain runs no raw SQL.)
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from payments import ledger
from payments.models import Bill, Encounter, LedgerEntry, LedgerTransfer, OutboxEvent


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


async def post_transfer(
    transfer: ledger.Transfer, *, hospital_id: str, now: datetime, fresh: bool = False
) -> bool:
    """Store a balanced transfer once; False when its key was posted before.

    Callers hold the lock of the object the key belongs to, so the existence check does
    not race; the unique key is the last line of defence. `fresh`: the caller's own state
    check under that lock already proves the key new (settlement, a collection's answer),
    so the existence query is skipped.
    """
    if not transfer.postings:
        return False
    if not fresh and await LedgerTransfer.filter(key=transfer.key).exists():
        return False
    row = await LedgerTransfer.create(
        key=transfer.key, kind=transfer.kind, hospital_id=hospital_id, created_at=now
    )
    await LedgerEntry.bulk_create(
        [
            LedgerEntry(
                transfer_id=row.id, account=p.account, amount_fen=p.amount_fen, created_at=now
            )
            for p in transfer.postings
        ]
    )
    return True


async def emit(hospital_id: str, event_type: str, data: dict[str, Any], now: datetime) -> None:
    """Write a webhook event to the outbox (inside the transaction of the change)."""
    event_id = new_id("evt")
    await OutboxEvent.create(
        id=event_id,
        hospital_id=hospital_id,
        type=event_type,
        payload={"id": event_id, "type": event_type, "created_at": now.isoformat(), "data": data},
        next_attempt_at=now,
        created_at=now,
    )


def settlement_event(encounter: Encounter, bill: Bill) -> dict[str, Any]:
    """The data of `encounter.settled`."""
    return {
        "encounter_id": encounter.id,
        "bill_id": bill.id,
        "department": encounter.department,
        "total_fen": bill.total_fen,
        "insurance_fen": bill.insurance_fen,
        "self_pay_fen": bill.self_pay_fen,
        "closed_by": encounter.closed_by,
    }


def bill_event(bill: Bill) -> dict[str, Any]:
    """The data of `bill.paid` and `bill.overdue`."""
    return {
        "bill_id": bill.id,
        "encounter_id": bill.encounter_id,
        "total_fen": bill.total_fen,
        "self_pay_fen": bill.self_pay_fen,
        "status": str(bill.status),
    }
