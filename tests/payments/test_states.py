"""The payments state machines: the moves the domain makes are the ones the tables allow,
and the API's documented statuses are exactly the enums' values."""

from __future__ import annotations

from enum import StrEnum
from typing import get_args

import pytest
from pydantic import BaseModel

from payments.schemas import BillOut, CreditOut, EncounterOut, SettlementOut
from payments.states import (
    ACCOUNT,
    BILL,
    COLLECTION,
    ENCOUNTER,
    OUTBOX,
    AccountStatus,
    BillStatus,
    CollectionStatus,
    EncounterStatus,
    IllegalTransition,
    Machine,
    OutboxStatus,
    SettlementStatus,
)


@pytest.mark.parametrize(
    ("schema", "states"),
    [
        (BillOut, BillStatus),
        (CreditOut, AccountStatus),
        (EncounterOut, EncounterStatus),
        (SettlementOut, SettlementStatus),
    ],
)
def test_response_statuses_are_the_enum_values(
    schema: type[BaseModel], states: type[StrEnum]
) -> None:
    assert set(get_args(schema.model_fields["status"].annotation)) == {s.value for s in states}


@pytest.mark.parametrize("machine", [ENCOUNTER, BILL, COLLECTION, ACCOUNT, OUTBOX])
def test_every_state_has_its_row_in_the_table(machine: Machine[StrEnum]) -> None:
    assert set(machine.transitions) == set(machine.states)


def test_a_paid_bill_and_a_settled_encounter_never_move_again() -> None:
    for status in BillStatus:
        assert not BILL.can_move(BillStatus.PAID, status)
    with pytest.raises(IllegalTransition):
        ENCOUNTER.advance("settled", EncounterStatus.OPEN)
    with pytest.raises(IllegalTransition):
        COLLECTION.advance("declined", CollectionStatus.SUCCEEDED)
    with pytest.raises(IllegalTransition):
        OUTBOX.advance("delivered", OutboxStatus.PENDING)


def test_a_bill_moves_as_the_docs_draw_it() -> None:
    pending, collecting = BillStatus.PAYMENT_PENDING, BillStatus.COLLECTING
    assert BILL.advance("collecting", pending) is pending
    assert BILL.advance("payment_pending", collecting) is collecting
    assert BILL.can_move("payment_pending", BillStatus.OVERDUE)
    assert BILL.can_move("overdue", collecting)
    assert not BILL.can_move("collecting", collecting)  # one provider call in flight at most
    assert not BILL.can_move("overdue", pending)
