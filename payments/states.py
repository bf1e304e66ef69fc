"""The payments domain's state machines: one `StrEnum` per stored status and its allowed moves.

The enum values are the strings the database stores (no schema change); every status change
goes through its machine's `advance` (`app.states.Machine`), so a move the table does not list
fails loudly.

    encounter        open -> settled ("settling" is reported for an open one being closed)
    bill             scheduled -> collecting (the daily batch) | paid (refunded to nothing)
                     collecting -> paid | payment_pending | overdue (a declined manual payment)
                     payment_pending -> collecting | overdue | paid (refunded to nothing owed)
                     overdue -> collecting | paid
    collection       pending -> succeeded | declined
    bureau settlement pending -> settled
    credit account   active <-> suspended
    outbox event     pending -> pending (retry later) | delivered | failed | skipped

A refund has no status (a refund row is final when written; money going back moves as a
`payout` collection), and a webhook delivery row is a log line: the delivery state is the
outbox event's.
"""

from __future__ import annotations

from enum import StrEnum

# The machine and its error are app.states's, named here for the domain's callers.
from app.states import IllegalTransition as IllegalTransition
from app.states import Machine as Machine


class EncounterStatus(StrEnum):
    OPEN = "open"
    # Reported, never stored: an open encounter whose closing has started (closed_at set)
    # and whose bureau settlement is not booked yet. It takes no more charges.
    SETTLING = "settling"
    SETTLED = "settled"


class ClosedBy(StrEnum):
    """Who closed an encounter: the hospital, or the worker after the auto-close delay."""

    HOSPITAL = "hospital"
    AUTO = "auto"


class BillStatus(StrEnum):
    SCHEDULED = "scheduled"  # a daily-batch hospital's bill waiting for the batch
    COLLECTING = "collecting"  # a provider call under a recorded key is (or was) in flight
    PAYMENT_PENDING = "payment_pending"
    OVERDUE = "overdue"
    PAID = "paid"


# Bills whose self-pay part is (or may still be) owed.
UNPAID_BILLS = (
    BillStatus.SCHEDULED,
    BillStatus.COLLECTING,
    BillStatus.PAYMENT_PENDING,
    BillStatus.OVERDUE,
)


class BureauStatus(StrEnum):
    """A `BureauSettlement`: pending until its answer is booked into a bill."""

    PENDING = "pending"
    SETTLED = "settled"


class SettlementMode(StrEnum):
    """When a hospital's bills are collected: at close, or in a daily batch."""

    ENCOUNTER = "encounter"
    DAILY = "daily"


class SettlementStatus(StrEnum):
    """What closing an encounter reports: settled once nothing is owed (derived, not stored)."""

    SETTLED = "settled"
    PAYMENT_PENDING = "payment_pending"


class CollectionStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class CollectionKind(StrEnum):
    COLLECT = "collect"  # money from the resident's payment method
    PAYOUT = "payout"  # money back to it


class CollectionTrigger(StrEnum):
    SETTLEMENT = "settlement"
    RETRY = "retry"
    MANUAL = "manual"
    REFUND = "refund"
    BATCH = "batch"  # one charge for a patient's day (payments/batches.py)


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # while any of the resident's bills is overdue


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the give-up horizon
    SKIPPED = "skipped"  # the hospital has no webhook endpoint


ENCOUNTER = Machine(
    "encounter",
    EncounterStatus,
    {
        EncounterStatus.OPEN: frozenset({EncounterStatus.SETTLED}),
        EncounterStatus.SETTLING: frozenset(),  # derived, see above
        EncounterStatus.SETTLED: frozenset(),
    },
)

BILL = Machine(
    "bill",
    BillStatus,
    {
        BillStatus.SCHEDULED: frozenset({BillStatus.COLLECTING, BillStatus.PAID}),
        BillStatus.COLLECTING: frozenset(
            {BillStatus.PAID, BillStatus.PAYMENT_PENDING, BillStatus.OVERDUE}
        ),
        BillStatus.PAYMENT_PENDING: frozenset(
            {BillStatus.COLLECTING, BillStatus.OVERDUE, BillStatus.PAID}
        ),
        BillStatus.OVERDUE: frozenset({BillStatus.COLLECTING, BillStatus.PAID}),
        BillStatus.PAID: frozenset(),
    },
)

COLLECTION = Machine(
    "collection",
    CollectionStatus,
    {
        CollectionStatus.PENDING: frozenset(
            {CollectionStatus.SUCCEEDED, CollectionStatus.DECLINED}
        ),
        CollectionStatus.SUCCEEDED: frozenset(),
        CollectionStatus.DECLINED: frozenset(),
    },
)

ACCOUNT = Machine(
    "credit account",
    AccountStatus,
    {
        AccountStatus.ACTIVE: frozenset({AccountStatus.SUSPENDED}),
        AccountStatus.SUSPENDED: frozenset({AccountStatus.ACTIVE}),
    },
)

OUTBOX = Machine(
    "outbox event",
    OutboxStatus,
    {
        OutboxStatus.PENDING: frozenset(
            {
                OutboxStatus.PENDING,
                OutboxStatus.DELIVERED,
                OutboxStatus.FAILED,
                OutboxStatus.SKIPPED,
            }
        ),
        OutboxStatus.DELIVERED: frozenset(),
        OutboxStatus.FAILED: frozenset(),
        OutboxStatus.SKIPPED: frozenset(),
    },
)
