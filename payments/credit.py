"""Credit accounts: enrolment, the limit the credit bureau's score earns (and why), what a
resident's credit is used by, the account's status.

Available credit = limit - holds of open encounters - what unpaid bills still owe; an
account is suspended while any of its bills is overdue and active again the moment none is.
The limit comes from the bureau's score in tiers (payments/credit_bureau.py), reviewed by
the `payments-credit-review` job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from app.context import AppContext
from app.db import sql_for
from auth.api import Principal, subject_for_request
from payments.config import PaymentsRuntime
from payments.credit_bureau import Assessment, CreditRuntime, assess, inquire
from payments.errors import AlreadyEnrolled, NotEnrolled, PaymentMethodInvalid
from payments.models import Bill, CreditAccount, CreditScore, Encounter
from payments.provider import PaymentMethodRejected, PaymentProvider
from payments.states import ACCOUNT, UNPAID_BILLS, AccountStatus, BillStatus, EncounterStatus
from payments.store import connection, loaded, new_id


@dataclass(frozen=True)
class CreditUse:
    holds_fen: int
    unpaid_fen: int
    overdue: bool


async def credit_use(account: CreditAccount) -> CreditUse:
    """What uses the account's credit; read after its lock when a decision depends on it."""
    conn = connection()
    rows = await conn.execute_query_dict(
        sql_for(conn, _USE_SQL, 3 + len(UNPAID_BILLS)),
        [account.id, EncounterStatus.OPEN.value, account.subject_id, *_UNPAID],
    )
    # One row per unpaid bill (or one with no bill), each carrying the sum of the holds.
    holds = int(rows[0].pop("holds_fen"))
    bills: list[Bill] = [loaded(Bill, row) for row in rows if row["id"] is not None]
    return CreditUse(
        holds_fen=holds,
        unpaid_fen=sum(b.outstanding_fen for b in bills),
        overdue=any(b.status == BillStatus.OVERDUE for b in bills),
    )


_UNPAID = [status.value for status in UNPAID_BILLS]
# The holds of open encounters and the unpaid bills in one query.
_HOLDS = (
    "(SELECT COALESCE(SUM(hold_fen), 0) AS holds_fen "
    "FROM payments_encounters WHERE account_id = {} AND status = {}) h"
)
_UNPAID_MARKS = ", ".join(["{}"] * len(UNPAID_BILLS))
_BILLS = f"payments_bills b ON b.subject_id = {{}} AND b.status IN ({_UNPAID_MARKS})"
_USE_SQL = f"SELECT h.holds_fen, b.* FROM {_HOLDS} LEFT JOIN {_BILLS}"  # noqa: S608 (markers)


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
    if await CreditAccount.exists(subject_id=subject_id):
        raise AlreadyEnrolled("this resident already has a credit account")
    now = ctx.clock.now()
    # Asked before the account exists: a bureau that does not answer gives a provisional
    # limit (the review job asks again), never a failed enrolment.
    report = await inquire(ctx.runtime(CreditRuntime), subject_id, now)
    assessment = assess(report, ceiling_fen=rt.config.credit_limit_fen)
    try:
        account = await CreditAccount.create(
            id=new_id("cred"),
            subject_id=subject_id,
            limit_fen=assessment.limit_fen,
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
    await _record_score(ctx, account, assessment, now)
    return await summary_of(subject_id)


async def _record_score(
    ctx: AppContext, account: CreditAccount, assessment: Assessment, now: datetime
) -> CreditScore:
    config = ctx.runtime(CreditRuntime).config
    wait = config.pending_retry if assessment.pending else config.review_after
    row, _ = await CreditScore.update_or_create(
        account_id=account.id,
        defaults={
            "tier": assessment.tier,
            "score": assessment.score,
            "reasons": list(assessment.reasons),
            "pending": assessment.pending,
            "checked_at": now,
            "next_check_at": now + wait,
        },
    )
    return row


async def review_limit(ctx: AppContext, account_id: str) -> CreditScore:
    """Ask the bureau again and set the limit its score earns now (a provisional limit
    stays while the bureau still does not answer)."""
    account = await CreditAccount.get(id=account_id)
    now = ctx.clock.now()
    report = await inquire(ctx.runtime(CreditRuntime), account.subject_id, now)
    ceiling = ctx.runtime(PaymentsRuntime).config.credit_limit_fen
    assessment = assess(report, ceiling_fen=ceiling)
    previous = await CreditScore.get_or_none(account_id=account_id)
    if report is None and previous is not None and not previous.pending:
        # A bureau outage does not take away a limit a real score earned: keep it, retry.
        wait = ctx.runtime(CreditRuntime).config.pending_retry
        previous.next_check_at = now + wait
        await previous.save(update_fields=["next_check_at"])
        return previous
    await CreditAccount.filter(id=account_id).update(limit_fen=assessment.limit_fen, updated_at=now)
    return await _record_score(ctx, account, assessment, now)


async def review_due_limits(ctx: AppContext) -> int:
    """The `payments-credit-review` job: re-score accounts whose check is due (a
    provisional limit every few minutes, a real score every `SUISHEN_CREDIT_REVIEW_DAYS`),
    and accounts enrolled before scores existed."""
    now = ctx.clock.now()
    due = cast(
        list[str],
        await CreditScore.filter(next_check_at__lte=now)
        .order_by("next_check_at")
        .limit(100)
        .values_list("account_id", flat=True),
    )
    scored = CreditScore.all().values_list("account_id", flat=True)
    unscored = cast(
        list[str],
        await CreditAccount.filter(id__not_in=cast(list[str], await scored))
        .limit(100)
        .values_list("id", flat=True),
    )
    for account_id in [*due, *unscored]:
        await review_limit(ctx, account_id)
    return len(due) + len(unscored)


@dataclass(frozen=True)
class LimitExplained:
    """Why the limit is what it is: the score's tier and reasons, the account's standing."""

    summary: CreditSummary
    score: CreditScore | None
    reasons: list[str]
    grace_days: int
    overdue_bills: list[Bill]


async def explain_limit(ctx: AppContext, principal: Principal) -> LimitExplained:
    """The resident's limit with the tier, score and sentences saying why, and what the
    account's status does to it (suspended while a bill is overdue)."""
    summary = await credit_summary(principal)
    account = summary.account
    score = await CreditScore.get_or_none(account_id=account.id)
    reasons = list(score.reasons) if score else ["enrolled before credit scores; review pending"]
    overdue = [b for b in summary.unpaid_bills if b.status == BillStatus.OVERDUE]
    if overdue:
        reasons.append(
            f"suspended: {len(overdue)} bill(s) overdue; paying them reinstates the credit at once"
        )
    elif account.status == AccountStatus.SUSPENDED:
        reasons.append("suspended")
    grace = ctx.runtime(PaymentsRuntime).config.overdue_after.days
    return LimitExplained(summary, score, reasons, grace, overdue)


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
