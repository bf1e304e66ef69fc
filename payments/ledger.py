"""Double-entry rules of the ledger: account names, balanced transfers, the invariants.

Pure: `payments.store` stores what this module builds. A posting's amount is signed
integer fen, positive = debit (the account holder owes / holds more), negative = credit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

INSURANCE_FUND = "insurance_fund"
PROVIDER_CLEARING = "provider_clearing"


class UnbalancedTransfer(ValueError):
    """A transfer whose postings do not sum to zero, or that is malformed."""


def resident_account(subject_id: str) -> str:
    """What a resident owes on credit (positive) or is owed back (negative)."""
    return f"resident:{subject_id}"


def hospital_account(hospital_id: str) -> str:
    """What the platform owes a hospital for care given (negative = owed to it)."""
    return f"hospital:{hospital_id}"


def account_kind(account: str) -> str:
    return account.split(":", 1)[0]


@dataclass(frozen=True)
class Posting:
    account: str
    amount_fen: int


@dataclass(frozen=True)
class Transfer:
    """A balanced set of postings, posted at most once under its idempotency key."""

    key: str
    kind: str
    postings: tuple[Posting, ...]


def transfer(key: str, kind: str, amounts: Mapping[str, int]) -> Transfer:
    """Build a transfer from account -> signed amount, refusing anything unbalanced.

    Zero amounts are dropped (they carry no information); what remains must be at least
    two postings of integer fen summing to zero.
    """
    if not key:
        raise UnbalancedTransfer("a transfer needs an idempotency key")
    for account, amount in amounts.items():
        # bool is an int subclass; a True posted as 1 fen would be a silent bug.
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise UnbalancedTransfer(f"{account}: amounts are integer fen, got {amount!r}")
    postings = tuple(Posting(a, v) for a, v in sorted(amounts.items()) if v != 0)
    if postings and len(postings) < 2:
        raise UnbalancedTransfer("a transfer moves money between at least two accounts")
    if sum(p.amount_fen for p in postings) != 0:
        raise UnbalancedTransfer(f"transfer {key} does not balance: {postings}")
    return Transfer(key=key, kind=kind, postings=postings)


def personal_current_account(subject_id: str) -> str:
    """The resident's current-year personal medical account (当年账户) at the bureau."""
    return f"personal_current:{subject_id}"


def personal_accumulated_account(subject_id: str) -> str:
    """The resident's accumulated personal medical account (历年账户) at the bureau."""
    return f"personal_accumulated:{subject_id}"


BUREAU_ACCOUNT_KINDS = (INSURANCE_FUND, "personal_current", "personal_accumulated")


def _care_legs(
    key: str,
    *,
    payer_id: str,
    patient_id: str,
    hospital_id: str,
    insurance_fen: int,
    self_pay_fen: int,
    current_account_fen: int,
    accumulated_account_fen: int,
) -> dict[str, int]:
    """The postings of billed care: the hospital is owed the total; of the bureau's part
    (`insurance_fen`) the patient's personal accounts pay theirs and the fund the rest;
    the resident who owes the bill (`payer_id`) owes the cash part."""
    fund = insurance_fen - current_account_fen - accumulated_account_fen
    if fund < 0 or current_account_fen < 0 or accumulated_account_fen < 0:
        raise UnbalancedTransfer(f"{key}: the bureau's parts exceed what it pays")
    return {
        hospital_account(hospital_id): -(insurance_fen + self_pay_fen),
        INSURANCE_FUND: fund,
        personal_current_account(patient_id): current_account_fen,
        personal_accumulated_account(patient_id): accumulated_account_fen,
        resident_account(payer_id): self_pay_fen,
    }


def settlement(
    key: str,
    *,
    subject_id: str,
    hospital_id: str,
    insurance_fen: int,
    self_pay_fen: int,
    current_account_fen: int = 0,
    accumulated_account_fen: int = 0,
) -> Transfer:
    """Care is billed: the hospital is owed the total, each payer owes its part. The
    bureau's part (`insurance_fen`) is the personal accounts' plus the fund's."""
    legs = _care_legs(
        key,
        payer_id=subject_id,
        patient_id=subject_id,
        hospital_id=hospital_id,
        insurance_fen=insurance_fen,
        self_pay_fen=self_pay_fen,
        current_account_fen=current_account_fen,
        accumulated_account_fen=accumulated_account_fen,
    )
    return transfer(key, "settlement", legs)


def collection(key: str, *, subject_id: str, amount_fen: int) -> Transfer:
    """The provider collected self-pay from the resident's payment method."""
    return transfer(
        key,
        "collection",
        {PROVIDER_CLEARING: amount_fen, resident_account(subject_id): -amount_fen},
    )


def refund(
    key: str,
    *,
    subject_id: str,
    patient_id: str,
    hospital_id: str,
    insurance_fen: int,
    self_pay_fen: int,
    current_account_fen: int = 0,
    accumulated_account_fen: int = 0,
) -> Transfer:
    """A settled charge is refunded: the reverse of its share of the settlement, each payer
    of the bureau's part (`insurance_fen`: the fund's plus the patient's personal accounts')
    credited back to its own account, the cash part to the resident who owes the bill
    (`subject_id`: the payer, a guardian for a family bill; `patient_id` owns the personal
    accounts)."""
    legs = _care_legs(
        key,
        payer_id=subject_id,
        patient_id=patient_id,
        hospital_id=hospital_id,
        insurance_fen=insurance_fen,
        self_pay_fen=self_pay_fen,
        current_account_fen=current_account_fen,
        accumulated_account_fen=accumulated_account_fen,
    )
    return transfer(key, "refund", {account: -amount for account, amount in legs.items()})


def payout(key: str, *, subject_id: str, amount_fen: int) -> Transfer:
    """Money the resident had paid goes back to their payment method."""
    return transfer(
        key,
        "payout",
        {PROVIDER_CLEARING: -amount_fen, resident_account(subject_id): amount_fen},
    )


@dataclass(frozen=True)
class EntryRow:
    transfer_key: str
    account: str
    amount_fen: int


def invariant_violations(
    entries: Iterable[EntryRow], balances: Mapping[str, int] | None = None
) -> list[str]:
    """Every way the stored ledger breaks double entry; empty when it holds.

    Checks that each transfer balances, that the sum over all accounts is zero, and (when
    `balances` is given) that each reported balance equals the sum of its entries.
    """
    problems: list[str] = []
    by_transfer: dict[str, int] = defaultdict(int)
    by_account: dict[str, int] = defaultdict(int)
    for entry in entries:
        by_transfer[entry.transfer_key] += entry.amount_fen
        by_account[entry.account] += entry.amount_fen
    problems += [f"transfer {k} sums to {v}" for k, v in by_transfer.items() if v != 0]
    if sum(by_account.values()) != 0:
        problems.append(f"accounts sum to {sum(by_account.values())}")
    if balances is not None:
        for account in set(balances) | set(by_account):
            if balances.get(account, 0) != by_account.get(account, 0):
                problems.append(
                    f"{account}: balance {balances.get(account, 0)} != entries "
                    f"{by_account.get(account, 0)}"
                )
    return problems
