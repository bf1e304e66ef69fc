"""The payment provider interface and the built-in `sandbox` provider.

Every money-moving call carries an idempotency key: calling again with the same key
returns the first outcome and never moves money twice, which is what makes retrying
after a timeout (or after a crash) safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tortoise.exceptions import IntegrityError

from payments.models import SandboxOperation
from payments.store import inserted

SANDBOX_METHODS = {
    "pm_sandbox_ok": "succeeded",
    "pm_sandbox_declined": "card_declined",
    "pm_sandbox_insufficient": "insufficient_funds",
    "pm_sandbox_timeout": "succeeded",  # ...after the first attempt of each key timed out
}


class ProviderTimeout(Exception):
    """The provider did not answer in time; the outcome is unknown until asked again."""


class PaymentMethodRejected(Exception):
    """The provider refuses to bind this payment method."""


@dataclass(frozen=True)
class ProviderResult:
    succeeded: bool
    reason: str | None = None  # why it failed: card_declined, insufficient_funds, ...


class PaymentProvider(Protocol):
    name: str

    async def bind(self, payment_method: str) -> None:
        """Check that the method can be charged later; raise PaymentMethodRejected if not."""

    async def collect(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        """Take money from the method; idempotent by `key`. May raise ProviderTimeout."""

    async def payout(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        """Return money to the method; idempotent by `key`. May raise ProviderTimeout."""


class SandboxProvider:
    """Behaves like a card processor's test mode, keeping its books in its own table.

    `pm_sandbox_timeout` books the money on the first attempt of a key but answers with a
    timeout, exactly the case where a careless retry would collect twice.
    """

    name = "sandbox"

    async def bind(self, payment_method: str) -> None:
        if payment_method not in SANDBOX_METHODS:
            raise PaymentMethodRejected(
                f"unknown sandbox payment method; use one of {', '.join(sorted(SANDBOX_METHODS))}"
            )

    async def collect(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        return await self._operate("collect", key, payment_method, amount_fen, now)

    async def payout(
        self, *, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        return await self._operate("payout", key, payment_method, amount_fen, now)

    async def _operate(
        self, kind: str, key: str, payment_method: str, amount_fen: int, now: datetime
    ) -> ProviderResult:
        if amount_fen <= 0:
            raise ValueError("the sandbox moves positive amounts only")
        outcome = SANDBOX_METHODS.get(payment_method, "invalid_payment_method")
        if kind == "payout" and outcome in ("card_declined", "insufficient_funds"):
            outcome = "succeeded"  # returning money to a card does not need funds on it
        try:
            await inserted(
                SandboxOperation,
                {
                    "key": key,
                    "kind": kind,
                    "payment_method": payment_method,
                    "amount_fen": amount_fen,
                    "outcome": outcome,
                    "attempts": 1,
                    "created_at": now,
                },
            )
        except IntegrityError:
            existing = await SandboxOperation.get(key=key)
            if (existing.kind, existing.amount_fen) != (kind, amount_fen):
                raise ValueError(f"idempotency key {key} reused for another operation") from None
            await SandboxOperation.filter(key=key).update(attempts=existing.attempts + 1)
            return _result(existing.outcome)
        if payment_method == "pm_sandbox_timeout":
            raise ProviderTimeout(f"sandbox timed out on the first attempt of {key}")
        return _result(outcome)


def _result(outcome: str) -> ProviderResult:
    return ProviderResult(True) if outcome == "succeeded" else ProviderResult(False, outcome)


def create_provider(name: str) -> PaymentProvider:
    if name == "sandbox":
        return SandboxProvider()
    raise ValueError(f"unknown payment provider {name!r}")
