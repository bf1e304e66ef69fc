"""Insurance profiles at enrolment: the sandbox bureau's test personas, refused elsewhere.

A resident never declares their own standing in production: the bureau reports it when
the hospital reads the visit. The sandbox bureau keeps test personas so the whole path
can be exercised (docs/payments.md lists them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.context import AppContext
from payments.config import PaymentsRuntime
from payments.errors import InsuranceDeclarationRefused
from payments.schemas import InsuranceIn

PersonaSetter = Callable[[str, InsuranceIn], Awaitable[None]]


async def check_declaration(ctx: AppContext) -> PersonaSetter:
    """How to record a declared persona; 422 insurance_declaration_refused outside the
    sandbox bureau."""
    sandbox = ctx.runtime(PaymentsRuntime).sandbox_bureau
    if sandbox is None:
        raise InsuranceDeclarationRefused(
            "insurance standing comes from the medical-insurance bureau, not the resident"
        )

    async def record(subject_id: str, declared: InsuranceIn) -> None:
        persona = declared.persona or ("employee" if declared.insured else "uninsured")
        await sandbox.enrol_persona(
            subject_id,
            persona,
            ctx.clock.now(),
            current_account_fen=declared.current_account_fen,
            accumulated_account_fen=declared.accumulated_account_fen,
            deductible_used_fen=declared.deductible_met_fen,
            fund_used_fen=declared.fund_used_fen,
        )

    return record
