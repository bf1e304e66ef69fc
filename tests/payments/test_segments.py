"""The Shanghai employee outpatient split by segments: worked examples computed by hand from
the rule file (payments/rules/shanghai_employee_outpatient_2025.json) as oracles, the rule
file's own checks, and properties over random encounters and standings."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments.segments import (
    Line,
    RuleError,
    Standing,
    UnknownCategory,
    UnknownTier,
    apply,
    load_rules,
    parse_rules,
    rules_for,
    split,
)

RULES = rules_for(date(2025, 6, 1))


def test_worked_example_employee_under_45_at_a_tier_3_hospital() -> None:
    """By hand from the file: employee, deductible 1,500 yuan, tier-3 ratio 50 %, class B
    self share 10 %. Lines: A 2,000.00, B 1,000.00, C 300.00 yuan; 当年账户 500.00 yuan,
    历年账户 800.00 yuan, 1,000.00 yuan of the deductible already used.

    self-paid items = C 30,000 + ceil(100,000 x 10 %) 10,000        = 40,000
    covered = 200,000 + 90,000                                       = 290,000
    current account pays 50,000; rest                                 = 240,000
    self segment = min(240,000, 150,000 - 100,000)                    = 50,000
      from the accumulated account 50,000 (80,000 -> 30,000), cash 0
    co-pay = 190,000: fund floor(190,000 x 50 %) = 95,000, patient 95,000
      from the accumulated account 30,000, cash 65,000
    """
    lines = [Line(200_000, "A"), Line(100_000, "B"), Line(30_000, "C")]
    standing = Standing(
        "employee",
        current_account_fen=50_000,
        accumulated_account_fen=80_000,
        deductible_used_fen=100_000,
    )
    result = split(lines, standing, 3, RULES)
    assert result.parts() == {
        "self_paid_items_fen": 40_000,
        "current_account_fen": 50_000,
        "self_segment_accumulated_fen": 50_000,
        "self_segment_cash_fen": 0,
        "fund_fen": 95_000,
        "copay_accumulated_fen": 30_000,
        "copay_cash_fen": 65_000,
    }
    assert result.total_fen == 330_000 and result.cash_fen == 105_000
    assert result.insurance_fen == 225_000
    # The bureau's 225,000 go to the lines by their covered parts (200,000 : 90,000).
    assert [s.insurance_fen for s in result.lines] == [155_172, 69_828, 0]
    assert [s.self_pay_fen for s in result.lines] == [44_828, 30_172, 30_000]


def test_worked_example_retired_at_a_community_hospital_with_an_odd_fen() -> None:
    """retired (2001+): deductible 700 yuan, tier-1 ratio 85 %. One class A line of
    1,234.57 yuan, deductible met, accounts empty: fund = floor(123,457 x 0.85) =
    floor(104,938.45) = 104,938; the fraction of a fen stays with the patient (18,519)."""
    standing = Standing("retired", deductible_used_fen=70_000)
    result = split([Line(123_457, "A")], standing, 1, RULES)
    assert (result.fund_fen, result.copay_cash_fen) == (104_938, 18_519)
    assert result.self_segment_cash_fen == 0 and result.current_account_fen == 0


def test_worked_example_first_visit_of_the_year_fills_the_deductible_in_cash() -> None:
    """employee_45, nothing used, no accounts, tier 2 (70 %): 2,000.00 yuan class A =
    1,500.00 self segment in cash, then 500.00 co-pay: fund 350.00, patient 150.00."""
    result = split([Line(200_000, "A")], Standing("employee_45"), 2, RULES)
    assert result.self_segment_cash_fen == 150_000
    assert (result.fund_fen, result.copay_cash_fen) == (35_000, 15_000)


def test_the_fund_stops_at_its_annual_cap() -> None:
    """600,000 yuan a year (assumed): with 599,900.00 used, 100.00 yuan remain for the fund."""
    standing = Standing("employee_45", deductible_used_fen=150_000, fund_used_fen=59_990_000)
    result = split([Line(100_000, "A")], standing, 2, RULES)
    assert result.fund_fen == 10_000 and result.copay_cash_fen == 90_000


def test_not_insured_pays_everything_as_self_paid() -> None:
    result = split([Line(5_000, "A"), Line(3_000, "B")], Standing("", insured=False), 3, RULES)
    assert result.self_paid_items_fen == 8_000 == result.cash_fen
    assert result.insurance_fen == 0


def test_unknown_tier_and_category_are_refused() -> None:
    with pytest.raises(UnknownTier):
        split([Line(100, "A")], Standing("employee"), 4, RULES)
    with pytest.raises(UnknownCategory):
        split([Line(100, "A")], Standing("farmer"), 3, RULES)


def test_the_medical_year_runs_april_to_march() -> None:
    assert RULES.medical_year(date(2026, 3, 31)) == 2025
    assert RULES.medical_year(date(2026, 4, 1)) == 2026


def test_every_value_names_a_source_or_says_assumed() -> None:
    [rules] = load_rules()
    assert rules.effective_from == date(2025, 4, 1)
    assert rules.provenance["order"] == "order8"
    assert "categories.employee.deductible_fen" in rules.assumed()
    raw = json.loads(next(Path("payments/rules").glob("*.json")).read_text("utf-8"))
    raw["fund_annual_cap_fen"] = {"value": 1, "source": "a blog"}
    with pytest.raises(RuleError):
        parse_rules(raw)
    raw["fund_annual_cap_fen"] = 1
    with pytest.raises(RuleError):
        parse_rules(raw)


def test_rules_are_chosen_by_effective_date(tmp_path: Path) -> None:
    raw = json.loads(next(Path("payments/rules").glob("*.json")).read_text("utf-8"))
    (tmp_path / "a.json").write_text(json.dumps(raw), "utf-8")
    raw["version"], raw["effective_from"] = "2026.04-1", "2026-04-01"
    (tmp_path / "b.json").write_text(json.dumps(raw), "utf-8")
    assert rules_for(date(2026, 3, 31), tmp_path).version == RULES.version
    assert rules_for(date(2026, 4, 1), tmp_path).version == "2026.04-1"


amounts = st.integers(min_value=0, max_value=5_000_000)
line = st.builds(Line, amounts, st.sampled_from(["A", "B", "C"]))
standing = st.builds(
    Standing,
    st.sampled_from(sorted(RULES.categories)),
    current_account_fen=st.integers(0, 1_000_000),
    accumulated_account_fen=st.integers(0, 5_000_000),
    deductible_used_fen=st.integers(0, 300_000),
    fund_used_fen=st.integers(0, 70_000_000),
)


@given(st.lists(line, max_size=12), standing, st.sampled_from([1, 2, 3]))
def test_parts_add_up_none_negative_caps_and_balances_kept(
    lines: list[Line], who: Standing, tier: int
) -> None:
    result = split(lines, who, tier, RULES)
    assert sum(result.parts().values()) == result.total_fen == sum(x.amount_fen for x in lines)
    assert all(v >= 0 for v in result.parts().values())
    assert result.insurance_fen + result.cash_fen == result.total_fen
    # No account pays more than it holds, the fund never passes its cap, nor the deductible.
    assert result.current_account_fen <= who.current_account_fen
    assert result.accumulated_fen <= who.accumulated_account_fen
    assert who.fund_used_fen + result.fund_fen <= max(RULES.fund_annual_cap_fen, who.fund_used_fen)
    deductible = RULES.categories[who.category].deductible_fen
    assert result.deductible_applied_fen <= max(0, deductible - who.deductible_used_fen)
    # Lines add up too, each line's bureau share within the line.
    assert sum(s.insurance_fen for s in result.lines) == result.insurance_fen
    assert all(0 <= s.insurance_fen <= s.amount_fen for s in result.lines)
    after = apply(who, result)
    assert after.current_account_fen >= 0 and after.accumulated_account_fen >= 0


@given(st.lists(line, min_size=1, max_size=6), standing, st.sampled_from([1, 2, 3]), amounts)
def test_more_spending_never_lowers_what_the_bureau_pays(
    lines: list[Line], who: Standing, tier: int, extra: int
) -> None:
    base = split(lines, who, tier, RULES)
    more = split([*lines, Line(extra, "A")], who, tier, RULES)
    assert more.insurance_fen >= base.insurance_fen
