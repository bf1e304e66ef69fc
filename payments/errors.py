"""Problems the payments domain raises (besides app.errors' generic ones).

PaymentsProblem
 ├── CreditUnavailable        402 credit_unavailable      not enrolled, suspended, no credit left
 ├── CreditLimitExceeded      402 credit_limit_exceeded   a charge needs more credit than remains
 ├── PaymentDeclined          402 payment_declined        the provider refused a payment (`reason`)
 ├── NotEnrolled              404 not_enrolled            the resident has no credit account
 ├── AlreadyEnrolled          409 already_enrolled        one credit account per resident
 ├── EncounterClosed          409 encounter_closed        charges only go to open encounters
 ├── PaymentInProgress        409 payment_in_progress     a collection for this bill is in flight
 ├── RefundExceedsCharge      409 refund_exceeds_charge   refunds would pass what was charged
 ├── CodeRejected             422 code_rejected           the scanned code did not verify (`reason`)
 ├── PaymentMethodInvalid     422 payment_method_invalid  the provider refuses to bind the method
 ├── AmountImplausible        422 amount_implausible      a line or an encounter beyond its ceiling
 ├── InsuranceRulesMissing    422 insurance_rules_missing unknown insured category or hospital tier
 ├── VoucherRejected          422 insurance_voucher_rejected  the bureau refused the e-voucher
 ├── InsuranceDeclarationRefused 422 insurance_declaration_refused  profiles come from the bureau
 ├── ProviderUnavailable      503 provider_unavailable    the provider timed out; nothing was lost
 └── BureauUnavailable        503 insurance_bureau_unavailable  close recorded; refund not booked

Invoices and family credit (appended):
PaymentsProblem
 └── BillNotSettled           409 bill_not_settled        an invoice asked for before settlement
"""

from __future__ import annotations

from app.errors import Problem


class PaymentsProblem(Problem):
    """Base of the payments domain's problems."""


class CreditUnavailable(PaymentsProblem):
    """The resident cannot open an encounter on credit."""

    status, code, title = 402, "credit_unavailable", "Credit unavailable"


class CreditLimitExceeded(PaymentsProblem):
    """The charge would need a hold beyond the resident's available credit."""

    status, code, title = 402, "credit_limit_exceeded", "Credit limit exceeded"


class PaymentDeclined(PaymentsProblem):
    """The provider declined the manual payment."""

    status, code, title = 402, "payment_declined", "Payment declined"


class NotEnrolled(PaymentsProblem):
    """The resident has not enrolled for credit."""

    status, code, title = 404, "not_enrolled", "No credit account"


class AlreadyEnrolled(PaymentsProblem):
    """The resident already has a credit account."""

    status, code, title = 409, "already_enrolled", "Already enrolled"


class EncounterClosed(PaymentsProblem):
    """The encounter is settled; it takes no more charges."""

    status, code, title = 409, "encounter_closed", "Encounter is closed"


class PaymentInProgress(PaymentsProblem):
    """A provider call for this bill is in flight; try again shortly."""

    status, code, title = 409, "payment_in_progress", "Payment in progress"


class RefundExceedsCharge(PaymentsProblem):
    """The refund would make the total refunded exceed the charge."""

    status, code, title = 409, "refund_exceeds_charge", "Refund exceeds the charge"


class CodeRejected(PaymentsProblem):
    """The patient's code did not verify; `reason` says why."""

    status, code, title = 422, "code_rejected", "Code rejected"


class PaymentMethodInvalid(PaymentsProblem):
    """The payment method cannot be bound."""

    status, code, title = 422, "payment_method_invalid", "Payment method invalid"


class ProviderUnavailable(PaymentsProblem):
    """The payment provider did not answer; the operation is recorded and will be resumed."""

    status, code, title = 503, "provider_unavailable", "Payment provider unavailable"


class AmountImplausible(PaymentsProblem):
    """A line or the encounter would pass its documented ceiling."""

    status, code, title = 422, "amount_implausible", "Amount beyond any plausible bill"


class InsuranceRulesMissing(PaymentsProblem):
    """The rule file has no entry for the insured category or the hospital tier."""

    status, code, title = 422, "insurance_rules_missing", "No insurance rule applies"


class VoucherRejected(PaymentsProblem):
    """The bureau did not accept the e-voucher the hospital read (`reason`)."""

    status, code, title = 422, "insurance_voucher_rejected", "E-voucher rejected"


class InsuranceDeclarationRefused(PaymentsProblem):
    """Residents do not declare insurance profiles: the bureau reports them."""

    status, code, title = 422, "insurance_declaration_refused", "Insurance comes from the bureau"


class BureauUnavailable(PaymentsProblem):
    """The bureau timed out or is down: a close's settlement is recorded and the worker
    finishes it; a refund after settlement is not booked (retry it with its refund_id)."""

    status, code, title = 503, "insurance_bureau_unavailable", "Insurance bureau unavailable"


class BillNotSettled(PaymentsProblem):
    """An invoice was asked for an encounter or bill not settled yet (`encounter_status`)."""

    status, code, title = 409, "bill_not_settled", "Bill not settled"
