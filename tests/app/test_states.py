"""The generic state machine every domain builds its tables with: moves the table lists, moves
it refuses, final states, and the checks a table passes when the machine is built."""

from __future__ import annotations

from enum import StrEnum

import pytest

from app.states import IllegalTransition, Machine


class Door(StrEnum):
    SHUT = "shut"
    OPEN = "open"
    LOCKED = "locked"
    GONE = "gone"


DOOR = Machine(
    "door",
    Door,
    {
        Door.SHUT: frozenset({Door.OPEN, Door.LOCKED, Door.GONE}),
        Door.OPEN: frozenset({Door.SHUT, Door.OPEN}),
        Door.LOCKED: frozenset({Door.SHUT}),
        Door.GONE: frozenset(),
    },
)


def test_the_moves_the_table_lists_are_allowed_and_no_others() -> None:
    allowed = {(a, b) for a in Door for b in Door if DOOR.can_move(a, b)}
    assert allowed == {(a, b) for a, targets in DOOR.transitions.items() for b in targets}
    assert DOOR.can_move(Door.OPEN, Door.OPEN)  # a state may list itself
    assert not DOOR.can_move(Door.LOCKED, Door.OPEN)
    assert DOOR.advance(Door.SHUT, Door.LOCKED) is Door.LOCKED


def test_an_illegal_move_raises_naming_the_machine_and_both_states() -> None:
    with pytest.raises(IllegalTransition) as raised:
        DOOR.advance(Door.LOCKED, Door.OPEN)
    assert str(raised.value) == "door: locked -> open is not allowed"
    with pytest.raises(IllegalTransition):
        DOOR.advance(Door.GONE, Door.SHUT)


def test_a_stored_string_is_read_as_its_state() -> None:
    assert DOOR.advance("shut", "open") is Door.OPEN
    assert DOOR.can_move("locked", Door.SHUT)
    with pytest.raises(ValueError):
        DOOR.can_move("ajar", Door.SHUT)


def test_terminal_states_are_those_with_no_move_out() -> None:
    assert DOOR.terminal == frozenset({Door.GONE})
    assert all(not DOOR.can_move(Door.GONE, other) for other in Door)


def test_the_table_is_frozen_when_the_machine_is_built() -> None:
    table = {state: frozenset[Door]() for state in Door}
    machine = Machine("frozen", Door, table)
    table[Door.SHUT] = frozenset({Door.OPEN})
    assert not machine.can_move(Door.SHUT, Door.OPEN)
    with pytest.raises(TypeError):
        machine.transitions[Door.SHUT] = frozenset({Door.OPEN})  # type: ignore[index]


class Other(StrEnum):
    SHUT = "shut"


def _door_table(**rows: frozenset[object]) -> dict[object, frozenset[object]]:
    table: dict[object, frozenset[object]] = {state: frozenset() for state in Door}
    for name, row in rows.items():
        table[Door[name]] = row
    return table


@pytest.mark.parametrize(
    "table",
    [
        # a state of another enum, equal by value to a member
        {Other.SHUT: frozenset(), **_door_table()},
        # a target of another enum
        _door_table(SHUT=frozenset({Other.SHUT})),
        # a target given as a bare string
        _door_table(SHUT=frozenset({"open"})),
    ],
)
def test_a_table_naming_a_foreign_state_is_refused(table: dict[object, frozenset[object]]) -> None:
    with pytest.raises(ValueError, match=r"^door: .* not a member of Door$"):
        Machine[Door]("door", Door, table)  # type: ignore[arg-type]


def test_a_table_missing_a_member_is_refused() -> None:
    table = {Door.SHUT: frozenset({Door.OPEN}), Door.OPEN: frozenset(), Door.LOCKED: frozenset()}
    with pytest.raises(ValueError, match=r"^door: no row for gone$"):
        Machine("door", Door, table)
