"""The medical-insurance split of one encounter: what the scheme pays, what the resident pays.

Pure and I/O-free; every amount is integer fen and every rounding goes to the fen as
described in `split_encounter` (and docs/payments.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

InsuranceClass = Literal["A", "B", "C"]
INSURANCE_CLASSES: tuple[InsuranceClass, ...] = ("A", "B", "C")
BASIS_POINTS = 10_000


@dataclass(frozen=True)
class Scheme:
    """A scheme's rules for one kind of care (the default is the outpatient one).

    Ratios are basis points (7000 = 70 %) so no float ever touches money.
    """

    name: str = "outpatient"
    ratio_bp: int = 7_000
    class_b_self_share_bp: int = 1_000
    annual_deductible_fen: int = 20_000
    annual_cap_fen: int = 2_000_000

    def __post_init__(self) -> None:
        for name in ("ratio_bp", "class_b_self_share_bp"):
            value = getattr(self, name)
            if not 0 <= value <= BASIS_POINTS:
                raise ValueError(f"{name} must be within 0..{BASIS_POINTS}, got {value}")
        if self.annual_deductible_fen < 0 or self.annual_cap_fen < 0:
            raise ValueError("deductible and cap cannot be negative")


@dataclass(frozen=True)
class InsuranceProfile:
    """A resident's standing in the scheme for the current year."""

    insured: bool
    scheme: Scheme
    deductible_met_fen: int = 0  # eligible spending already counted against the deductible
    paid_this_year_fen: int = 0  # what the scheme has already paid (counts toward the cap)


@dataclass(frozen=True)
class Line:
    amount_fen: int
    insurance_class: InsuranceClass


@dataclass(frozen=True)
class LineSplit:
    amount_fen: int
    eligible_fen: int
    insurance_fen: int
    self_pay_fen: int


@dataclass(frozen=True)
class Split:
    total_fen: int
    eligible_fen: int
    deductible_applied_fen: int
    insurance_fen: int
    self_pay_fen: int
    lines: tuple[LineSplit, ...]


def eligible_amount(amount_fen: int, insurance_class: InsuranceClass, scheme: Scheme) -> int:
    """The part of one line the scheme considers at all.

    Class B's self-paid share is rounded *up* to the fen (the resident's share never
    shrinks by rounding), so the eligible part is the amount minus that share.
    """
    if insurance_class == "A":
        return amount_fen
    if insurance_class == "B":
        self_share = -(-amount_fen * scheme.class_b_self_share_bp // BASIS_POINTS)
        return amount_fen - self_share
    return 0


def split_encounter(lines: Sequence[Line], profile: InsuranceProfile) -> Split:
    """Split an encounter's lines between the scheme and the resident.

    1. eligible = sum of each line's eligible part (class A all, B after its self share, C none)
    2. the eligible amount first fills what is left of the annual deductible
    3. insurance = floor(rest x ratio) to the fen (the fraction of a fen stays self-paid),
       then limited to what is left of the annual cap
    4. self-pay = total - insurance, so the two always add up to the total exactly
    5. the insurance amount is allotted to lines in proportion to their eligible parts by
       the largest-remainder method (ties to the earlier line), so lines add up too.
    """
    for line in lines:
        if line.amount_fen < 0:
            raise ValueError("a line amount cannot be negative")
        if line.insurance_class not in INSURANCE_CLASSES:
            raise ValueError(f"unknown insurance class {line.insurance_class!r}")
    scheme = profile.scheme
    total = sum(line.amount_fen for line in lines)
    eligibles = [eligible_amount(line.amount_fen, line.insurance_class, scheme) for line in lines]
    eligible = sum(eligibles)
    if not profile.insured:
        insurance = deductible_applied = 0
    else:
        remaining_deductible = max(0, scheme.annual_deductible_fen - profile.deductible_met_fen)
        deductible_applied = min(eligible, remaining_deductible)
        covered = (eligible - deductible_applied) * scheme.ratio_bp // BASIS_POINTS
        remaining_cap = max(0, scheme.annual_cap_fen - profile.paid_this_year_fen)
        insurance = min(covered, remaining_cap)
    shares = allot(insurance, eligibles)
    return Split(
        total_fen=total,
        eligible_fen=eligible,
        deductible_applied_fen=deductible_applied,
        insurance_fen=insurance,
        self_pay_fen=total - insurance,
        lines=tuple(
            LineSplit(
                amount_fen=line.amount_fen,
                eligible_fen=e,
                insurance_fen=share,
                self_pay_fen=line.amount_fen - share,
            )
            for line, e, share in zip(lines, eligibles, shares, strict=True)
        ),
    )


def allot(amount_fen: int, weights: Sequence[int]) -> list[int]:
    """Divide `amount_fen` in proportion to `weights` (largest remainder, ties to the first).

    With amount <= sum(weights) no part exceeds its weight, which keeps every line's
    insurance share within its eligible part.
    """
    weight_total = sum(weights)
    if amount_fen == 0 or weight_total == 0:
        if amount_fen:
            raise ValueError("cannot allot a non-zero amount over zero weights")
        return [0] * len(weights)
    floors = [amount_fen * w // weight_total for w in weights]
    remainders = [amount_fen * w % weight_total for w in weights]
    leftover = amount_fen - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return floors


def proportional_part(
    part_fen: int, whole_fen: int, refunded_before_fen: int, amount_fen: int
) -> int:
    """The share of `part_fen` belonging to refunding `amount_fen` more out of `whole_fen`,
    when `refunded_before_fen` was refunded already.

    Computed cumulatively (floor of the running total) so successive partial refunds of a
    line add up to exactly `part_fen` once the whole line is refunded: no fen drifts.
    """
    if whole_fen <= 0:
        return 0
    after = (refunded_before_fen + amount_fen) * part_fen // whole_fen
    before = refunded_before_fen * part_fen // whole_fen
    return after - before


@dataclass(frozen=True)
class BureauParts:
    """The bureau's part of a bill (or of a refund) by payer, in fen."""

    fund_fen: int = 0  # 统筹基金
    accumulated_fen: int = 0  # 历年账户 (both segments)
    current_account_fen: int = 0  # 当年账户

    @property
    def total_fen(self) -> int:
        return self.fund_fen + self.accumulated_fen + self.current_account_fen

    def __sub__(self, other: BureauParts) -> BureauParts:
        return BureauParts(
            self.fund_fen - other.fund_fen,
            self.accumulated_fen - other.accumulated_fen,
            self.current_account_fen - other.current_account_fen,
        )

    def __add__(self, other: BureauParts) -> BureauParts:
        return BureauParts(
            self.fund_fen + other.fund_fen,
            self.accumulated_fen + other.accumulated_fen,
            self.current_account_fen + other.current_account_fen,
        )


def _taken_back(paid: BureauParts, refunded_fen: int) -> BureauParts:
    """Cumulative: which payers `refunded_fen` of the bureau's part is taken back from."""
    left, taken = refunded_fen, []
    for part in (paid.fund_fen, paid.accumulated_fen, paid.current_account_fen):
        take = min(part, left)
        taken.append(take)
        left -= take
    if left > 0 or refunded_fen < 0:
        raise ValueError(f"{refunded_fen} fen is not within the bureau's part {paid}")
    return BureauParts(*taken)


def refund_payers(paid: BureauParts, refunded_before_fen: int, amount_fen: int) -> BureauParts:
    """Split `amount_fen` of a bill's bureau part, refunded after `refunded_before_fen` was
    already, by payer: in the reverse order of the segments' waterfall (the refunded care
    comes off the top): the fund first, then the accumulated account, then the current-year
    account. Computed on the cumulative sums, so it is exact to the fen, no payer ever gets
    back more than it paid nor a negative part, and refunding the whole part gives each
    payer back exactly what it paid, whatever the partial refunds in between."""
    before = _taken_back(paid, refunded_before_fen)
    return _taken_back(paid, refunded_before_fen + amount_fen) - before
