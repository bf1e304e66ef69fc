"""Credit accounts: enrolment, what a resident's credit is used by, the account's status.

Available credit = limit - holds of open encounters - what unpaid bills still owe; an
account is suspended while any of its bills is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from auth.api import Principal, subject_for_request
from payments.config import PaymentsRuntime
from payments.errors import AlreadyEnrolled, NotEnrolled, PaymentMethodInvalid
from payments.models import Bill, CreditAccount, Encounter
from payments.provider import PaymentMethodRejected, PaymentProvider
from payments.states import ACCOUNT, UNPAID_BILLS, AccountStatus, BillStatus, EncounterStatus
from payments.store import new_id


@dataclass(frozen=True)
class CreditUse:
    holds_fen: int
    unpaid_fen: int
    overdue: bool


async def credit_use(account: CreditAccount) -> CreditUse:
    holds = cast(
        list[int],
        await Encounter.filter(account_id=account.id, status=EncounterStatus.OPEN).values_list(
            "hold_fen", flat=True
        ),
    )
    bills = await Bill.filter(subject_id=account.subject_id, status__in=UNPAID_BILLS)
    return CreditUse(
        holds_fen=sum(holds),
        unpaid_fen=sum(b.outstanding_fen for b in bills),
        overdue=any(b.status == BillStatus.OVERDUE for b in bills),
    )


def available_fen(account: CreditAccount, use: CreditUse) -> int:
    room: int = account.limit_fen - use.holds_fen - use.unpaid_fen
    return max(0, room)


async def bind_method(provider: PaymentProvider, payment_method: str) -> None:
    """Have the provider accept the method for later charges; 422 when it refuses."""
    try:
        await provider.bind(payment_method)
    except PaymentMethodRejected as exc:
        raise PaymentMethodInvalid(str(exc)) from None


@dataclass(frozen=True)
class CreditSummary:
    account: CreditAccount
    available_fen: int
    holds_fen: int
    unpaid_fen: int
    open_encounters: list[Encounter]
    unpaid_bills: list[Bill]


async def enroll(
    ctx: AppContext,
    principal: Principal,
    payment_method: str,
    *,
    insured: bool = True,
    deductible_met_fen: int = 0,
) -> CreditSummary:
    """Open the resident's one credit account on a bound payment method."""
    subject_id = await subject_for_request(principal, None)
    rt = ctx.runtime(PaymentsRuntime)
    await bind_method(rt.provider, payment_method)
    now = ctx.clock.now()
    try:
        await CreditAccount.create(
            id=new_id("cred"),
            subject_id=subject_id,
            limit_fen=rt.config.credit_limit_fen,
            payment_method=payment_method,
            insured=insured,
            scheme=rt.config.scheme.name,
            insurance_year=now.year,
            deductible_met_fen=deductible_met_fen,
            created_at=now,
            updated_at=now,
        )
    except IntegrityError:
        raise AlreadyEnrolled("this resident already has a credit account") from None
    return await summary_of(subject_id)


async def credit_summary(principal: Principal) -> CreditSummary:
    """The resident's credit: limit, what is available, open encounters, unpaid bills."""
    return await summary_of(await subject_for_request(principal, None))


async def summary_of(subject_id: str) -> CreditSummary:
    account = await CreditAccount.get_or_none(subject_id=subject_id)
    if account is None:
        raise NotEnrolled("enrol first: POST /v1/credit/enroll")
    use = await credit_use(account)
    return CreditSummary(
        account=account,
        available_fen=available_fen(account, use),
        holds_fen=use.holds_fen,
        unpaid_fen=use.unpaid_fen,
        open_encounters=await Encounter.filter(
            account_id=account.id, status=EncounterStatus.OPEN
        ).order_by("opened_at"),
        unpaid_bills=await Bill.filter(subject_id=subject_id, status__in=UNPAID_BILLS).order_by(
            "created_at"
        ),
    )


async def refresh_account_status(ctx: AppContext, subject_id: str) -> None:
    """Suspend while any bill is overdue, reactivate once none is (under the account lock,
    after the bill change committed, so the two never race into a wrong status)."""
    async with in_transaction():
        account = await CreditAccount.filter(subject_id=subject_id).select_for_update().first()
        if account is None:
            return
        overdue = await Bill.filter(subject_id=subject_id, status=BillStatus.OVERDUE).exists()
        status = AccountStatus.SUSPENDED if overdue else AccountStatus.ACTIVE
        if account.status != status:
            account.status = ACCOUNT.advance(account.status, status)
            account.updated_at = ctx.clock.now()
            await account.save(update_fields=["status", "updated_at"])
