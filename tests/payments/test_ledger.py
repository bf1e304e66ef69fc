"""The ledger's pure rules: balanced transfers of integer fen, and the invariant checker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payments import ledger


def test_settlement_balances_and_names_its_accounts() -> None:
    t = ledger.settlement("k", subject_id="s1", hospital_id="h1", insurance_fen=70, self_pay_fen=30)
    amounts = {p.account: p.amount_fen for p in t.postings}
    assert amounts == {"hospital:h1": -100, "insurance_fund": 70, "resident:s1": 30}


def test_unbalanced_transfer_is_refused() -> None:
    with pytest.raises(ledger.UnbalancedTransfer):
        ledger.transfer("k", "x", {"a": 10, "b": -9})


def test_float_or_bool_amounts_are_refused() -> None:
    with pytest.raises(ledger.UnbalancedTransfer):
        ledger.transfer("k", "x", {"a": 1.5, "b": -1.5})  # type: ignore[dict-item]
    with pytest.raises(ledger.UnbalancedTransfer):
        ledger.transfer("k", "x", {"a": True, "b": -1})


def test_transfer_needs_a_key() -> None:
    with pytest.raises(ledger.UnbalancedTransfer):
        ledger.transfer("", "x", {"a": 1, "b": -1})


def test_zero_postings_are_dropped() -> None:
    t = ledger.settlement("k", subject_id="s", hospital_id="h", insurance_fen=0, self_pay_fen=5)
    assert len(t.postings) == 2


def test_invariant_checker_finds_an_unbalanced_transfer_and_a_wrong_balance() -> None:
    rows = [ledger.EntryRow("t1", "a", 5), ledger.EntryRow("t1", "b", -4)]
    problems = ledger.invariant_violations(rows, {"a": 5, "b": -5})
    assert any("t1" in p for p in problems)
    assert any(p.startswith("b:") for p in problems)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**7), st.integers(0, 10**7), st.sampled_from(["s1", "s2"])),
        max_size=30,
    )
)
def test_any_sequence_of_settlements_keeps_the_books_balanced(
    flows: list[tuple[int, int, str]],
) -> None:
    rows: list[ledger.EntryRow] = []
    for n, (insurance, self_pay, subject) in enumerate(flows):
        for t in (
            ledger.settlement(
                f"s{n}",
                subject_id=subject,
                hospital_id="h",
                insurance_fen=insurance,
                self_pay_fen=self_pay,
            ),
            ledger.collection(f"c{n}", subject_id=subject, amount_fen=self_pay),
        ):
            rows += [ledger.EntryRow(t.key, p.account, p.amount_fen) for p in t.postings]
    assert ledger.invariant_violations(rows) == []
