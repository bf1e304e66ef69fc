"""The credit bureau behind credit limits: the provider interface, the `sandbox` bureau, and
the pure tier table that turns a score into a limit with the reasons a resident is shown.

`SUISHEN_CREDIT_BUREAU=sandbox` (the only one so far, refused in production) answers every
subject with a good score (760) unless a test persona says otherwise; personas model what
a real bureau does: no file for the person, a frozen file, a timeout, being down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from app.settings import Settings, SettingsError, int_knob

BUREAUS = ("sandbox",)
SCORE_MIN, SCORE_MAX = 350, 950  # the bureau's scale


class BureauTimeout(Exception):
    """The bureau did not answer in time; ask again later."""


class BureauUnavailable(Exception):
    """The bureau is down or refused the connection; ask again later."""


@dataclass(frozen=True)
class CreditReport:
    """What the bureau says about a person: a score (None: no credit file at all), the
    bureau's own reason codes behind it, whether the person froze their file."""

    score: int | None
    factors: tuple[str, ...] = ()
    frozen: bool = False


class CreditBureau(Protocol):
    name: str

    async def inquire(self, subject_id: str, *, now: datetime) -> CreditReport:
        """The person's current report; may raise BureauTimeout or BureauUnavailable."""


Failure = Literal["timeout", "unavailable"]


@dataclass(frozen=True)
class Persona:
    """A sandbox person: their report, or the failure the bureau answers them with."""

    score: int | None = 760
    factors: tuple[str, ...] = ()
    frozen: bool = False
    failure: Failure | None = None


@dataclass
class SandboxCreditBureau:
    """A bureau's test mode: a good score for everyone, personas for the other cases.

    Personas live in the process (like the SMS sandbox's outbox): tests and a demo set them
    with `set_persona`; `inquiries` counts the calls, so a test sees when we asked.
    """

    name: str = "sandbox"
    personas: dict[str, Persona] = field(default_factory=dict)
    inquiries: int = 0

    def set_persona(self, subject_id: str, persona: Persona) -> None:
        self.personas[subject_id] = persona

    async def inquire(self, subject_id: str, *, now: datetime) -> CreditReport:
        self.inquiries += 1
        await asyncio.sleep(0)  # a network call yields, and so does its stand-in
        persona = self.personas.get(subject_id, Persona())
        if persona.failure == "timeout":
            raise BureauTimeout("sandbox bureau timed out")
        if persona.failure == "unavailable":
            raise BureauUnavailable("sandbox bureau is down")
        return CreditReport(persona.score, persona.factors, persona.frozen)


def create_bureau(name: str) -> CreditBureau:
    if name == "sandbox":
        return SandboxCreditBureau()
    raise SettingsError(f"SUISHEN_CREDIT_BUREAU must be one of {', '.join(BUREAUS)}")


# -- the tier table (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    name: str
    min_score: int
    limit_fen: int


# Platform policy (not a public figure): the higher the score, the longer the line.
TIERS: tuple[Tier, ...] = (
    Tier("A", 750, 300_000),
    Tier("B", 700, 200_000),
    Tier("C", 650, 100_000),
    Tier("D", 600, 50_000),
    Tier("E", SCORE_MIN, 0),
)
# No credit file at all (a student, someone new to credit): a small starter line.
STARTER = Tier("starter", 0, 20_000)
# The bureau did not answer: a provisional line until it does, never more than the starter.
PROVISIONAL = Tier("provisional", 0, 20_000)
FROZEN = Tier("frozen", 0, 0)


@dataclass(frozen=True)
class Assessment:
    """The limit and why: the tier, the score it came from, sentences for the resident."""

    tier: str
    score: int | None
    limit_fen: int
    reasons: tuple[str, ...]
    pending: bool  # the bureau did not answer; the limit is provisional


def _yuan(fen: int) -> str:
    return f"{fen // 100:,} yuan"


def tier_of(score: int) -> Tier:
    for tier in TIERS:
        if score >= tier.min_score:
            return tier
    return TIERS[-1]


def assess(report: CreditReport | None, *, ceiling_fen: int) -> Assessment:
    """The limit a report earns (None: the bureau did not answer), capped by the platform
    ceiling, with the reasons in the order they apply."""
    if report is None:
        tier, score, pending = PROVISIONAL, None, True
        reasons = [
            "the credit bureau did not answer; a provisional limit applies until it does",
        ]
    elif report.frozen:
        tier, score, pending = FROZEN, report.score, False
        reasons = ["your credit file is frozen at the bureau; unfreeze it to get a limit"]
    elif report.score is None:
        tier, score, pending = STARTER, None, False
        reasons = ["the bureau has no credit history for you; a starter limit applies"]
    else:
        score, pending = max(SCORE_MIN, min(SCORE_MAX, report.score)), False
        tier = tier_of(score)
        floor = f"{tier.min_score} and above"
        if tier.limit_fen == 0:
            reasons = [f"score {score} is below {TIERS[-2].min_score}: no credit line"]
        else:
            reasons = [f"score {score} is in tier {tier.name} ({floor}): {_yuan(tier.limit_fen)}"]
        reasons += [f"bureau factor: {factor}" for factor in report.factors]
    limit = min(tier.limit_fen, ceiling_fen)
    if limit < tier.limit_fen:
        reasons.append(f"capped at the platform ceiling of {_yuan(ceiling_fen)}")
    return Assessment(tier.name, score, limit, tuple(reasons), pending)


# -- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditConfig:
    bureau: str = "sandbox"
    # How long a bureau call may take before we treat it as a timeout.
    bureau_timeout_s: float = 3.0
    # A score is re-checked after this long, a provisional one after `pending_retry`.
    review_after: timedelta = timedelta(days=30)
    pending_retry: timedelta = timedelta(minutes=10)

    @classmethod
    def from_extra(cls, extra: Mapping[str, str], *, production: bool) -> CreditConfig:
        bureau = extra.get("SUISHEN_CREDIT_BUREAU", "sandbox")
        if bureau not in BUREAUS:
            raise SettingsError(f"SUISHEN_CREDIT_BUREAU must be one of {', '.join(BUREAUS)}")
        if production and bureau == "sandbox":
            raise SettingsError("APP_ENV=production refuses SUISHEN_CREDIT_BUREAU=sandbox")
        return cls(
            bureau=bureau,
            review_after=timedelta(
                days=int_knob(extra, "SUISHEN_CREDIT_REVIEW_DAYS", 30, low=1, high=365)
            ),
            pending_retry=timedelta(
                minutes=int_knob(extra, "SUISHEN_CREDIT_PENDING_RETRY_MINUTES", 10, low=1)
            ),
        )


@dataclass
class CreditRuntime:
    """The bureau and its knobs, provided once per app (`credit_runtime(ctx)`)."""

    config: CreditConfig
    bureau: CreditBureau

    @classmethod
    def from_settings(cls, settings: Settings) -> CreditRuntime:
        config = CreditConfig.from_extra(settings.extra, production=settings.is_production)
        return cls(config=config, bureau=create_bureau(config.bureau))


async def inquire(runtime: CreditRuntime, subject_id: str, now: datetime) -> CreditReport | None:
    """The report, or None when the bureau timed out or is down (the caller goes provisional)."""
    try:
        return await asyncio.wait_for(
            runtime.bureau.inquire(subject_id, now=now), runtime.config.bureau_timeout_s
        )
    except (TimeoutError, BureauTimeout, BureauUnavailable):
        return None
