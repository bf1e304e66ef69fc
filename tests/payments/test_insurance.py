"""The insurance split: worked examples, and properties over random encounters."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from payments.insurance import (
    InsuranceProfile,
    Line,
    Scheme,
    allot,
    eligible_amount,
    proportional_part,
    split_encounter,
)

SCHEME = Scheme(ratio_bp=7000, class_b_self_share_bp=1000, annual_deductible_fen=0)


def insured(scheme: Scheme = SCHEME, **kwargs: int) -> InsuranceProfile:
    return InsuranceProfile(insured=True, scheme=scheme, **kwargs)


def test_class_a_is_fully_eligible_and_paid_at_the_ratio() -> None:
    split = split_encounter([Line(10_000, "A")], insured())
    assert (split.insurance_fen, split.self_pay_fen) == (7_000, 3_000)


def test_class_b_is_eligible_after_its_self_paid_share() -> None:
    split = split_encounter([Line(10_000, "B")], insured())
    assert split.eligible_fen == 9_000
    assert (split.insurance_fen, split.self_pay_fen) == (6_300, 3_700)


def test_class_c_is_self_paid() -> None:
    split = split_encounter([Line(10_000, "C")], insured())
    assert (split.insurance_fen, split.self_pay_fen) == (0, 10_000)


def test_uninsured_resident_pays_everything() -> None:
    split = split_encounter([Line(10_000, "A")], InsuranceProfile(insured=False, scheme=SCHEME))
    assert (split.insurance_fen, split.self_pay_fen) == (0, 10_000)


def test_remaining_deductible_is_filled_before_the_scheme_pays() -> None:
    scheme = Scheme(annual_deductible_fen=20_000)
    split = split_encounter([Line(30_000, "A")], insured(scheme, deductible_met_fen=15_000))
    assert split.deductible_applied_fen == 5_000
    assert split.insurance_fen == 17_500  # 70 % of the 25,000 above the deductible


def test_annual_cap_limits_what_the_scheme_pays() -> None:
    scheme = Scheme(annual_deductible_fen=0, annual_cap_fen=100_000)
    split = split_encounter([Line(100_000, "A")], insured(scheme, paid_this_year_fen=95_000))
    assert split.insurance_fen == 5_000
    assert split.self_pay_fen == 95_000


def test_fractions_of_a_fen_stay_with_the_resident() -> None:
    # 70 % of 1 fen is 0.7 fen: the scheme pays whole fen only, rounded down.
    split = split_encounter([Line(1, "A")], insured())
    assert (split.insurance_fen, split.self_pay_fen) == (0, 1)
    # class B's 10 % share of 15 fen is 1.5 fen, rounded up for the resident: 13 eligible.
    assert eligible_amount(15, "B", SCHEME) == 13


def test_insurance_is_allotted_to_lines_so_lines_add_up() -> None:
    split = split_encounter(
        [Line(333, "A"), Line(333, "A"), Line(334, "B"), Line(50, "C")], insured()
    )
    assert sum(line.insurance_fen for line in split.lines) == split.insurance_fen
    assert sum(line.self_pay_fen for line in split.lines) == split.self_pay_fen
    assert split.lines[3].insurance_fen == 0


def test_refund_parts_add_up_to_the_whole_line() -> None:
    parts = [proportional_part(701, 1000, before, 100) for before in range(0, 1000, 100)]
    assert sum(parts) == 701


lines_strategy = st.lists(
    st.builds(
        Line,
        amount_fen=st.integers(min_value=0, max_value=5_000_000),
        insurance_class=st.sampled_from(["A", "B", "C"]),
    ),
    max_size=30,
)
schemes = st.builds(
    Scheme,
    ratio_bp=st.integers(0, 10_000),
    class_b_self_share_bp=st.integers(0, 10_000),
    annual_deductible_fen=st.integers(0, 1_000_000),
    annual_cap_fen=st.integers(0, 50_000_000),
)
profiles = st.builds(
    InsuranceProfile,
    insured=st.booleans(),
    scheme=schemes,
    deductible_met_fen=st.integers(0, 2_000_000),
    paid_this_year_fen=st.integers(0, 60_000_000),
)


@given(lines_strategy, profiles)
def test_insurance_plus_self_pay_is_the_total_and_neither_is_negative(
    lines: list[Line], profile: InsuranceProfile
) -> None:
    split = split_encounter(lines, profile)
    assert (
        split.insurance_fen + split.self_pay_fen
        == split.total_fen
        == sum(line.amount_fen for line in lines)
    )
    assert split.insurance_fen >= 0 and split.self_pay_fen >= 0
    for line, part in zip(lines, split.lines, strict=True):
        assert 0 <= part.insurance_fen <= part.eligible_fen <= line.amount_fen
        assert part.insurance_fen + part.self_pay_fen == line.amount_fen


@given(lines_strategy, profiles, st.integers(0, 5_000_000), st.sampled_from(["A", "B", "C"]))
def test_more_eligible_spending_never_lowers_the_insurance_share(
    lines: list[Line], profile: InsuranceProfile, extra: int, klass: str
) -> None:
    before = split_encounter(lines, profile)
    after = split_encounter([*lines, Line(extra, klass)], profile)  # type: ignore[arg-type]
    assert after.insurance_fen >= before.insurance_fen


@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_allot_divides_exactly_without_passing_any_weight(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        amount = 0
    amount = min(amount, sum(weights))
    parts = allot(amount, weights)
    assert sum(parts) == amount
    assert all(0 <= p <= w for p, w in zip(parts, weights, strict=True))


@given(st.integers(0, 10**6), st.integers(1, 10**6), st.lists(st.integers(1, 1000), max_size=50))
def test_successive_refund_parts_never_exceed_the_part(
    part: int, whole: int, amounts: list[int]
) -> None:
    part = min(part, whole)
    refunded = taken = 0
    for amount in amounts:
        if refunded + amount > whole:
            break
        taken += proportional_part(part, whole, refunded, amount)
        refunded += amount
    assert 0 <= taken <= part
    if refunded == whole:
        assert taken == part
