"""The gate decision order and its rules, exhaustively over the policy and fact space."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from venues import policy as pol

NOW = datetime(2026, 5, 2, 10, 0, tzinfo=UTC)
EARLY = timedelta(minutes=30)


def facts(**overrides: object) -> pol.ScanFacts:
    base: dict[str, object] = {
        "now": NOW,
        "code_valid": True,
        "code_reason": "ok",
        "status": "green",
        "age": 30,
        "reservations": (),
        "inside": False,
        "exited_today": False,
        "occupancy": 0,
        "capacity": 10,
    }
    base.update(overrides)
    return pol.ScanFacts(**base)  # type: ignore[arg-type]


def window(start_min: int, end_min: int) -> pol.SlotWindow:
    return pol.SlotWindow(NOW + timedelta(minutes=start_min), NOW + timedelta(minutes=end_min))


def test_admits_when_nothing_stands_in_the_way() -> None:
    assert pol.decide_entry(pol.VenuePolicy(), facts(), EARLY) == pol.admit()


def test_invalid_code_denies_with_the_code_reason_before_anything_else() -> None:
    everything_wrong = facts(
        code_valid=False, code_reason="code_replayed", status="red", age=3, inside=True,
        occupancy=10,
    )  # fmt: skip
    strict = pol.VenuePolicy(reservation_required=True, min_age=18)
    assert pol.decide_entry(strict, everything_wrong, EARLY) == pol.deny("code_replayed")


@pytest.mark.parametrize("status", ["yellow", "red"])
def test_default_policy_admits_green_only(status: str) -> None:
    decision = pol.decide_entry(pol.VenuePolicy(), facts(status=status), EARLY)
    assert decision == pol.deny(pol.STATUS_NOT_ALLOWED)


def test_allowed_statuses_are_configurable() -> None:
    lenient = pol.VenuePolicy(allowed_statuses=frozenset({"green", "yellow"}))
    assert pol.decide_entry(lenient, facts(status="yellow"), EARLY).admitted
    assert not pol.decide_entry(lenient, facts(status="red"), EARLY).admitted


@pytest.mark.parametrize(("age", "admitted"), [(17, False), (18, True), (None, False)])
def test_minimum_age(age: int | None, admitted: bool) -> None:
    decision = pol.decide_entry(pol.VenuePolicy(min_age=18), facts(age=age), EARLY)
    assert decision.admitted is admitted
    if not admitted:
        assert decision.reason == pol.UNDER_MIN_AGE


@pytest.mark.parametrize(
    ("start", "end", "admitted"),
    [
        (30, 90, True),  # exactly 30 min before the slot
        (31, 90, False),  # 31 min before: too early
        (-60, 1, True),  # slot still running
        (-60, 0, False),  # slot ended now
        (-120, -60, False),
    ],
)
def test_reservation_valid_from_early_entry_until_slot_end(
    start: int, end: int, admitted: bool
) -> None:
    decision = pol.decide_entry(
        pol.VenuePolicy(reservation_required=True),
        facts(reservations=[window(start, end)]),
        EARLY,
    )
    assert decision.admitted is admitted
    if not admitted:
        assert decision.reason == pol.RESERVATION_REQUIRED


def test_reservation_not_needed_when_policy_does_not_require_it() -> None:
    assert pol.decide_entry(pol.VenuePolicy(), facts(reservations=[]), EARLY).admitted


def test_anti_passback_denies_someone_inside_unless_switched_off() -> None:
    assert pol.decide_entry(pol.VenuePolicy(), facts(inside=True), EARLY) == pol.deny(
        pol.ALREADY_INSIDE
    )
    lenient = pol.VenuePolicy(anti_passback=False)
    assert pol.decide_entry(lenient, facts(inside=True), EARLY).admitted


def test_reentry_after_exit_follows_the_policy() -> None:
    again = facts(exited_today=True)
    assert pol.decide_entry(pol.VenuePolicy(), again, EARLY).admitted
    assert pol.decide_entry(pol.VenuePolicy(reentry_allowed=False), again, EARLY) == pol.deny(
        pol.REENTRY_NOT_ALLOWED
    )


def test_capacity_is_the_last_check() -> None:
    assert pol.decide_entry(pol.VenuePolicy(), facts(occupancy=9), EARLY).admitted
    assert pol.decide_entry(pol.VenuePolicy(), facts(occupancy=10), EARLY) == pol.deny(
        pol.VENUE_FULL
    )


ORDER = [
    pol.STATUS_NOT_ALLOWED,
    pol.UNDER_MIN_AGE,
    pol.RESERVATION_REQUIRED,
    pol.ALREADY_INSIDE,
    pol.VENUE_FULL,
]


@pytest.mark.parametrize("failing", list(itertools.product([False, True], repeat=5)))
def test_first_failing_step_in_documented_order_is_the_reason(
    failing: tuple[bool, bool, bool, bool, bool],
) -> None:
    bad_status, young, no_booking, inside, full = failing
    strict = pol.VenuePolicy(reservation_required=True, min_age=18)
    decision = pol.decide_entry(
        strict,
        facts(
            status="red" if bad_status else "green",
            age=10 if young else 40,
            reservations=[] if no_booking else [window(-10, 50)],
            inside=inside,
            occupancy=10 if full else 3,
        ),
        EARLY,
    )
    expected = next((r for r, bad in zip(ORDER, failing, strict=True) if bad), None)
    if expected is None:
        assert decision == pol.admit()
    else:
        assert decision == pol.deny(expected)


def test_exit_needs_only_a_valid_code() -> None:
    assert pol.decide_exit(facts(status="red", inside=False, occupancy=0)).admitted
    assert pol.decide_exit(facts(code_valid=False, code_reason="code_expired")) == pol.deny(
        "code_expired"
    )


@pytest.mark.parametrize(
    ("born", "on", "years"),
    [
        (date(2008, 5, 2), date(2026, 5, 2), 18),
        (date(2008, 5, 3), date(2026, 5, 2), 17),
        (date(2008, 2, 29), date(2026, 2, 28), 17),
        (date(2008, 2, 29), date(2026, 3, 1), 18),
    ],
)
def test_age_counts_completed_years(born: date, on: date, years: int) -> None:
    assert pol.age_on(born, on) == years


def test_policy_flags_for_id_cards_and_printed_codes_default_and_round_trip() -> None:
    """A stored policy without the flags allows ID cards and keeps printed codes online-only;
    set flags survive the trip through JSON (what a bundle and the API carry)."""
    default = pol.VenuePolicy.from_json({})
    assert default.id_card_allowed is True and default.printed_codes_offline is False
    strict = pol.VenuePolicy(id_card_allowed=False, printed_codes_offline=True)
    again = pol.VenuePolicy.from_json(strict.as_json())
    assert again == strict


def test_a_party_takes_its_places_together_or_not_at_all() -> None:
    ok = pol.admit()
    fits = pol.settle_party([ok] * 3, [False] * 3, anti_passback=True, occupancy=7, capacity=10)
    assert fits.decisions == (ok,) * 3 and fits.places == 3
    full = pol.settle_party([ok] * 3, [False] * 3, anti_passback=True, occupancy=8, capacity=10)
    assert full.decisions == (pol.deny(pol.VENUE_FULL),) * 3 and full.places == 0


def test_companions_pass_only_with_their_holder_and_each_by_their_own_policy() -> None:
    ok, red = pol.admit(), pol.deny(pol.STATUS_NOT_ALLOWED)
    refused = pol.settle_party(
        [red, ok, ok], [False] * 3, anti_passback=True, occupancy=0, capacity=10
    )
    assert refused.decisions == (red, pol.deny(pol.HOLDER_REFUSED), pol.deny(pol.HOLDER_REFUSED))
    one_red = pol.settle_party(
        [ok, red, ok], [False] * 3, anti_passback=True, occupancy=0, capacity=10
    )
    assert one_red.decisions == (ok, red, ok) and one_red.counted == (True, False, True)
    # The holder inside under anti-passback is refused, and brings nobody.
    inside = pol.settle_party([ok, ok], [True, False], anti_passback=True, occupancy=1, capacity=10)
    assert inside.decisions == (pol.deny(pol.ALREADY_INSIDE), pol.deny(pol.HOLDER_REFUSED))
    # Without anti-passback someone inside passes uncounted, and needs no place.
    free = pol.settle_party([ok, ok], [True, False], anti_passback=False, occupancy=9, capacity=10)
    assert free.decisions == (ok, ok) and free.counted == (False, True)


def test_a_repeated_holder_brings_companions_without_taking_a_place() -> None:
    ok = pol.admit()
    settled = pol.settle_party(
        [ok, ok, ok],
        [True, True, False],
        anti_passback=True,
        occupancy=9,
        capacity=10,
        holder_fixed=True,
    )
    assert settled.decisions == (ok, pol.deny(pol.ALREADY_INSIDE), ok)
    assert settled.counted == (False, False, True)
