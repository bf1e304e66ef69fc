"""The payments domain's configuration and runtime: its knobs, read once from `settings.extra`
(SUISHEN_* variables), and the long-lived objects `wiring.startup` provides to the context.

Every default is the one the issue and docs/payments.md name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from app.settings import Settings, SettingsError, int_knob
from payments.bureau import InsuranceBureau, SandboxBureau, create_bureau
from payments.insurance import Scheme
from payments.provider import PaymentProvider, create_provider

BUREAUS = ("sandbox",)


@dataclass(frozen=True)
class PaymentsConfig:
    credit_limit_fen: int = 300_000
    initial_hold_fen: int = 50_000
    auto_close_after: timedelta = timedelta(hours=24)
    retry_schedule: tuple[timedelta, ...] = (
        timedelta(hours=1),
        timedelta(hours=6),
        timedelta(hours=24),
    )
    overdue_after: timedelta = timedelta(days=10)  # the grace period before overdue
    # How long a collection the provider did not answer waits before the worker asks again.
    resume_after: timedelta = timedelta(seconds=60)
    provider_attempts: int = 2  # calls per collection before leaving it to the worker
    webhook_backoff: timedelta = timedelta(seconds=10)
    webhook_give_up_after: timedelta = timedelta(hours=24)
    webhook_timeout_s: float = 5.0
    # The hospitals' local zone: "today's encounters" are those opened on this local day.
    utc_offset_hours: int = 8
    # The first generic scheme; only its name is still stored on credit accounts. The split
    # now comes from the bureau and payments/rules/ (payments/segments.py).
    scheme: Scheme = field(default_factory=Scheme)
    # Ceilings beyond any plausible outpatient bill (422 amount_implausible above them).
    line_ceiling_fen: int = 10_000_000  # 100,000 yuan
    encounter_ceiling_fen: int = 50_000_000  # 500,000 yuan
    bureau: str = "sandbox"
    # A settlement the bureau did not answer (timeout, down) is asked again after this.
    bureau_retry_after: timedelta = timedelta(seconds=30)

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> PaymentsConfig:
        def num(name: str, default: int) -> int:
            return int_knob(extra, f"SUISHEN_{name}", default, low=0)

        retry_raw = extra.get("SUISHEN_COLLECTION_RETRY_HOURS", "1,6,24")
        try:
            retries = tuple(timedelta(hours=float(h)) for h in retry_raw.split(",") if h.strip())
        except ValueError:
            raise SettingsError("SUISHEN_COLLECTION_RETRY_HOURS is a list like 1,6,24") from None
        return cls(
            credit_limit_fen=num("CREDIT_LIMIT_FEN", cls.credit_limit_fen),
            initial_hold_fen=num("INITIAL_HOLD_FEN", cls.initial_hold_fen),
            auto_close_after=timedelta(hours=num("ENCOUNTER_AUTO_CLOSE_HOURS", 24)),
            retry_schedule=retries,
            overdue_after=timedelta(days=num("BILL_OVERDUE_DAYS", 10)),
            resume_after=timedelta(seconds=num("COLLECTION_RESUME_SECONDS", 60)),
            provider_attempts=max(1, num("PROVIDER_ATTEMPTS", cls.provider_attempts)),
            webhook_backoff=timedelta(seconds=num("WEBHOOK_BACKOFF_SECONDS", 10)),
            webhook_give_up_after=timedelta(hours=num("WEBHOOK_GIVE_UP_HOURS", 24)),
            utc_offset_hours=int_knob(
                extra, "SUISHEN_PAYMENTS_UTC_OFFSET_HOURS", cls.utc_offset_hours, low=-12, high=14
            ),
            line_ceiling_fen=num("LINE_CEILING_FEN", cls.line_ceiling_fen),
            encounter_ceiling_fen=num("ENCOUNTER_CEILING_FEN", cls.encounter_ceiling_fen),
            bureau=_choice(extra, "SUISHEN_INSURANCE_BUREAU", BUREAUS),
            bureau_retry_after=timedelta(seconds=num("BUREAU_RETRY_SECONDS", 30)),
        )


def _choice(extra: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = extra.get(name, allowed[0])
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
    return value


@dataclass
class PaymentsRuntime:
    """The domain's config and payment provider, read with `ctx.runtime(PaymentsRuntime)`.

    Not frozen: tests swap the provider or the config of a running app.
    """

    config: PaymentsConfig
    provider: PaymentProvider
    bureau: InsuranceBureau

    @classmethod
    def from_settings(cls, settings: Settings, bureau_key: bytes) -> PaymentsRuntime:
        config = PaymentsConfig.from_extra(settings.extra)
        if settings.is_production and config.bureau == "sandbox":
            raise SettingsError("APP_ENV=production refuses SUISHEN_INSURANCE_BUREAU=sandbox")
        bureau = create_bureau(config.bureau, bureau_key)
        if isinstance(bureau, SandboxBureau):
            bureau.down = settings.extra.get("SUISHEN_BUREAU_SANDBOX_DOWN", "") == "1"
        return cls(
            config=config, provider=create_provider(settings.payment_provider), bureau=bureau
        )

    @property
    def sandbox_bureau(self) -> SandboxBureau | None:
        """The sandbox bureau, which keeps test personas; None in production."""
        return self.bureau if isinstance(self.bureau, SandboxBureau) else None
