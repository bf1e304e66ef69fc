"""Shanghai's employee outpatient split by segments, from a dated rule file.

Pure and I/O-free except `load_rules` (which reads the versioned JSON files in
`payments/rules/`). Every amount is integer fen, every ratio basis points. The order
(上海市职工基本医疗保险办法, art. 3; see docs/payments.md):

1. self-paid items: class C lines whole, class B lines their self-paid share (rounded up);
2. the current-year personal account (当年账户) pays what is covered, as far as it goes;
3. the self-pay segment (自负段) up to what is left of the deductible (起付标准): the
   accumulated account (历年账户) first, then cash;
4. the co-pay segment (共付段): the fund pays floor(rest x ratio[category][tier]) within
   what is left of its annual cap, the patient's share is paid from the accumulated
   account, then cash.

The parts add up to the total exactly; none is negative.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from payments.insurance import BASIS_POINTS, INSURANCE_CLASSES, InsuranceClass, allot

RULES_DIR = Path(__file__).parent / "rules"
TIERS = (1, 2, 3)
ASSUMED = "assumed"


class RuleError(ValueError):
    """The rule file is malformed, or a value names no source."""


class UnknownCategory(ValueError):
    """The insured category is not in the rule file."""


class UnknownTier(ValueError):
    """The hospital tier is not 1, 2 or 3."""


@dataclass(frozen=True)
class CategoryRule:
    label: str
    deductible_fen: int
    fund_ratio_bp: Mapping[int, int]


@dataclass(frozen=True)
class RuleSet:
    scheme: str
    version: str
    effective_from: date
    medical_year_start_month: int
    class_b_self_share_bp: int
    fund_annual_cap_fen: int
    categories: Mapping[str, CategoryRule]
    # Each value's path in the file -> its source key, or "assumed".
    provenance: Mapping[str, str]

    def medical_year(self, day: date) -> int:
        """The year the medical year containing `day` starts in (April-March in Shanghai)."""
        return day.year if day.month >= self.medical_year_start_month else day.year - 1

    def assumed(self) -> list[str]:
        return sorted(path for path, source in self.provenance.items() if source == ASSUMED)

    def category(self, name: str) -> CategoryRule:
        rule = self.categories.get(name)
        if rule is None:
            raise UnknownCategory(f"unknown insured category {name!r}")
        return rule


def _value(node: Any, path: str, sources: Mapping[str, str], provenance: dict[str, str]) -> Any:
    if not isinstance(node, dict) or "value" not in node or "source" not in node:
        raise RuleError(f"{path}: a value needs {{'value', 'source'}}")
    source = node["source"]
    if source != ASSUMED and source not in sources:
        raise RuleError(f"{path}: source {source!r} is neither 'assumed' nor in 'sources'")
    provenance[path] = source
    return node["value"]


def parse_rules(raw: Mapping[str, Any]) -> RuleSet:
    sources: Mapping[str, str] = raw.get("sources", {})
    prov: dict[str, str] = {}
    categories: dict[str, CategoryRule] = {}
    for name, node in raw["categories"].items():
        base = f"categories.{name}"
        ratios = {
            int(tier): int(_value(v, f"{base}.fund_ratio_bp.{tier}", sources, prov))
            for tier, v in node["fund_ratio_bp"].items()
        }
        if sorted(ratios) != list(TIERS) or not all(
            0 <= r <= BASIS_POINTS for r in ratios.values()
        ):
            raise RuleError(f"{base}: fund_ratio_bp needs tiers 1, 2, 3 within 0..10000")
        categories[name] = CategoryRule(
            label=node.get("label", name),
            deductible_fen=int(
                _value(node["deductible_fen"], f"{base}.deductible_fen", sources, prov)
            ),
            fund_ratio_bp=ratios,
        )
    _value(raw["order"], "order", sources, prov)
    rules = RuleSet(
        scheme=raw["scheme"],
        version=raw["version"],
        effective_from=date.fromisoformat(raw["effective_from"]),
        medical_year_start_month=int(
            _value(raw["medical_year_start_month"], "medical_year_start_month", sources, prov)
        ),
        class_b_self_share_bp=int(
            _value(raw["class_b_self_share_bp"], "class_b_self_share_bp", sources, prov)
        ),
        fund_annual_cap_fen=int(
            _value(raw["fund_annual_cap_fen"], "fund_annual_cap_fen", sources, prov)
        ),
        categories=categories,
        provenance=prov,
    )
    if not 0 <= rules.class_b_self_share_bp <= BASIS_POINTS or rules.fund_annual_cap_fen < 0:
        raise RuleError("class_b_self_share_bp within 0..10000, fund_annual_cap_fen >= 0")
    return rules


@cache
def load_rules(directory: Path = RULES_DIR) -> tuple[RuleSet, ...]:
    """Every rule file of the directory, oldest effective date first."""
    found = [
        parse_rules(json.loads(p.read_text("utf-8"))) for p in sorted(directory.glob("*.json"))
    ]
    if not found:
        raise RuleError(f"no rule file in {directory}")
    return tuple(sorted(found, key=lambda r: r.effective_from))


def rules_for(day: date, directory: Path = RULES_DIR) -> RuleSet:
    """The rules in force on `day`: the latest whose effective date is not after it."""
    candidates = [r for r in load_rules(directory) if r.effective_from <= day]
    return candidates[-1] if candidates else load_rules(directory)[0]


@dataclass(frozen=True)
class Standing:
    """The insured person's standing in the medical year, as the bureau reports it."""

    category: str
    current_account_fen: int = 0
    accumulated_account_fen: int = 0
    deductible_used_fen: int = 0
    fund_used_fen: int = 0
    insured: bool = True


@dataclass(frozen=True)
class Line:
    amount_fen: int
    insurance_class: InsuranceClass


@dataclass(frozen=True)
class LineShare:
    amount_fen: int
    insurance_fen: int  # paid by the bureau (personal accounts and fund)
    self_pay_fen: int  # paid in cash


@dataclass(frozen=True)
class Segments:
    """One field per segment and payer; they add up to `total_fen`."""

    total_fen: int
    self_paid_items_fen: int  # class C whole, class B's share; everything if not insured
    current_account_fen: int  # 当年账户
    self_segment_accumulated_fen: int  # 自负段, 历年账户
    self_segment_cash_fen: int  # 自负段, cash
    fund_fen: int  # 共付段, 统筹基金
    copay_accumulated_fen: int  # 共付段 patient share, 历年账户
    copay_cash_fen: int  # 共付段 patient share, cash
    rule_version: str
    lines: tuple[LineShare, ...] = ()

    @property
    def accumulated_fen(self) -> int:
        return self.self_segment_accumulated_fen + self.copay_accumulated_fen

    @property
    def insurance_fen(self) -> int:
        """What the bureau pays: both personal accounts and the fund."""
        return self.current_account_fen + self.accumulated_fen + self.fund_fen

    @property
    def cash_fen(self) -> int:
        return self.self_paid_items_fen + self.self_segment_cash_fen + self.copay_cash_fen

    @property
    def deductible_applied_fen(self) -> int:
        return self.self_segment_accumulated_fen + self.self_segment_cash_fen

    def parts(self) -> dict[str, int]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name.endswith("_fen") and f.name != "total_fen"
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Segments:
        lines = tuple(LineShare(**line) for line in raw.get("lines", ()))
        return cls(**{**raw, "lines": lines})


def self_paid_share(amount_fen: int, insurance_class: InsuranceClass, rules: RuleSet) -> int:
    """The part of a line no scheme pays: class C all of it, class B its share rounded up."""
    if insurance_class == "C":
        return amount_fen
    if insurance_class == "B":
        return -(-amount_fen * rules.class_b_self_share_bp // BASIS_POINTS)
    return 0


def split(lines: Sequence[Line], standing: Standing, tier: int, rules: RuleSet) -> Segments:
    """Split an encounter's lines by segment and payer (see the module docstring)."""
    if tier not in TIERS:
        raise UnknownTier(f"unknown hospital tier {tier!r}; use 1, 2 or 3")
    for line in lines:
        if line.amount_fen < 0:
            raise ValueError("a line amount cannot be negative")
        if line.insurance_class not in INSURANCE_CLASSES:
            raise ValueError(f"unknown insurance class {line.insurance_class!r}")
    total = sum(line.amount_fen for line in lines)
    if not standing.insured:
        shares = [LineShare(line.amount_fen, 0, line.amount_fen) for line in lines]
        return Segments(total, total, 0, 0, 0, 0, 0, 0, rules.version, tuple(shares))
    rule = rules.category(standing.category)
    items_self = [self_paid_share(line.amount_fen, line.insurance_class, rules) for line in lines]
    covered_by_line = [line.amount_fen - s for line, s in zip(lines, items_self, strict=True)]
    covered = sum(covered_by_line)
    current = min(covered, max(0, standing.current_account_fen))
    rest = covered - current
    accumulated = max(0, standing.accumulated_account_fen)
    self_segment = min(rest, max(0, rule.deductible_fen - standing.deductible_used_fen))
    self_acc = min(self_segment, accumulated)
    copay = rest - self_segment
    fund = min(
        copay * rule.fund_ratio_bp[tier] // BASIS_POINTS,
        max(0, rules.fund_annual_cap_fen - standing.fund_used_fen),
    )
    patient = copay - fund
    copay_acc = min(patient, accumulated - self_acc)
    bureau = current + self_acc + fund + copay_acc
    # The bureau's part goes to the lines by their covered parts (never beyond one).
    line_bureau = allot(bureau, covered_by_line)
    shares = [
        LineShare(line.amount_fen, b, line.amount_fen - b)
        for line, b in zip(lines, line_bureau, strict=True)
    ]
    return Segments(
        total_fen=total,
        self_paid_items_fen=sum(items_self),
        current_account_fen=current,
        self_segment_accumulated_fen=self_acc,
        self_segment_cash_fen=self_segment - self_acc,
        fund_fen=fund,
        copay_accumulated_fen=copay_acc,
        copay_cash_fen=patient - copay_acc,
        rule_version=rules.version,
        lines=tuple(shares),
    )


def apply(standing: Standing, segments: Segments) -> Standing:
    """The standing after a settlement: accounts drawn, deductible and fund use counted."""
    return Standing(
        category=standing.category,
        current_account_fen=standing.current_account_fen - segments.current_account_fen,
        accumulated_account_fen=standing.accumulated_account_fen - segments.accumulated_fen,
        deductible_used_fen=standing.deductible_used_fen + segments.deductible_applied_fen,
        fund_used_fen=standing.fund_used_fen + segments.fund_fen,
        insured=standing.insured,
    )
