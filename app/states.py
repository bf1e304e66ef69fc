"""One generic state machine that every domain's `states.py` builds its tables with (pure).

A `Machine` is a `StrEnum` of states and, for each state, the frozenset of states it may move
to. It is checked when built: every state the table names is a member of the enum, and every
member has its row (a final state's row is empty). A change of state asks `can_move()`, or
goes through `advance()`, which answers the new state or raises `IllegalTransition`: a move
the table does not list is a bug, never a client's error.

The current state may be given as the stored string (a model's CharField); it is read back
as the enum member, and a string that names no state raises `ValueError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(Exception):
    """A change of state its machine does not allow."""


@dataclass(frozen=True)
class Machine(Generic[S]):
    """One state machine: its states and, for each, the states it may move to."""

    name: str
    states: type[S]
    transitions: Mapping[S, frozenset[S]]
    terminal: frozenset[S] = field(init=False)

    def __post_init__(self) -> None:
        # Not a set: a foreign state equal by value to a member would hide behind it.
        named = [*self.transitions, *(s for row in self.transitions.values() for s in row)]
        foreign = sorted({repr(s) for s in named if not isinstance(s, self.states)})
        if foreign:
            raise ValueError(
                f"{self.name}: {', '.join(foreign)} not a member of {self.states.__name__}"
            )
        missing = [s.value for s in self.states if s not in self.transitions]
        if missing:
            raise ValueError(f"{self.name}: no row for {', '.join(missing)}")
        table = MappingProxyType({s: frozenset(self.transitions[s]) for s in self.states})
        object.__setattr__(self, "transitions", table)
        object.__setattr__(self, "terminal", frozenset(s for s in self.states if not table[s]))

    def can_move(self, current: S | str, target: S | str) -> bool:
        """Whether the table allows moving from `current` to `target`."""
        return self.states(target) in self.transitions[self.states(current)]

    def advance(self, current: S | str, target: S | str) -> S:
        """`target` as a member, if the table allows the move; else `IllegalTransition`."""
        if not self.can_move(current, target):
            raise IllegalTransition(
                f"{self.name}: {self.states(current).value} -> {self.states(target).value}"
                " is not allowed"
            )
        return self.states(target)
