"""Pure rules: phone normalisation, resident ID validation (GB 11643), names, masking."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auth.identity import (
    age_group,
    check_digit,
    mask_id_number,
    mask_name,
    mask_phone,
    normalise_name,
    normalise_phone,
    parse_id_number,
)

TODAY = date(2026, 1, 15)


@pytest.mark.parametrize(
    "raw",
    ["13812345678", "+86 138 1234 5678", "008613812345678", "+8613812345678",
     "86-138-1234-5678", " 138 1234 5678 "],
)  # fmt: skip
def test_mainland_mobile_spellings_normalise_to_one_form(raw: str) -> None:
    assert normalise_phone(raw) == "+8613812345678"


@pytest.mark.parametrize(
    "raw",
    ["", "1381234567", "138123456789", "12812345678", "+85213812345678", "+1 415 555 0100",
     "abcdefghijk", "23812345678", "0013812345678"],
)  # fmt: skip
def test_non_mainland_numbers_are_refused(raw: str) -> None:
    assert normalise_phone(raw) is None


def test_known_id_number_with_x_check_digit_is_accepted() -> None:
    # The GB 11643 worked example: check digit X.
    parsed = parse_id_number("11010519491231002X", TODAY)
    assert parsed is not None
    assert parsed.birth_date == date(1949, 12, 31)
    assert parse_id_number("11010519491231002x", TODAY) is not None


def test_wrong_check_digit_is_refused() -> None:
    assert parse_id_number("110105194912310021", TODAY) is None
    assert parse_id_number("11010519491231002A", TODAY) is None


@pytest.mark.parametrize(
    "raw",
    [
        "990105194912310020",  # no such province
        "310000199001010000",  # province code alone is not an issuing region
        "310101199002300000",  # 30 February
        "310101203001010000",  # born in the future
        "310101189901010000",  # before 1900
        "31010119900101000",  # 17 characters
        "3101011990010100000",  # 19 characters
    ],
)
def test_implausible_id_numbers_are_refused(raw: str) -> None:
    fixed = raw[:17] + check_digit(raw[:17]) if len(raw) == 18 and raw[:17].isdigit() else raw
    assert parse_id_number(fixed, TODAY) is None


@given(
    st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(["310101", "110105", "440305", "650102"]),
)
def test_every_correctly_checked_number_parses_and_one_changed_digit_fails(
    born: date, seq: int, region: str
) -> None:
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    number = first17 + check_digit(first17)
    assert parse_id_number(number, TODAY) is not None
    wrong = "0" if number[-1] != "0" else "1"
    assert parse_id_number(number[:17] + wrong, TODAY) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("张三明", "张三明"), (" 王五 ", "王五"), ("阿卜杜•热合曼", "阿卜杜·热合曼"),
     ("John Smith", "John Smith"), ("Zoë O'Neil", "Zoë O'Neil")],
)  # fmt: skip
def test_plausible_names_are_accepted(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["张", "", "张三1", "<script>", "·张三", "张三·", "Robert'); DROP", "张" * 31, "张 三"]
)
def test_implausible_names_are_refused(raw: str) -> None:
    assert normalise_name(raw) is None


def test_masks_show_only_the_edges() -> None:
    assert mask_name("张三明") == "张*明"
    assert mask_name("王五") == "王*"
    assert mask_name("欧阳娜娜") == "欧**娜"
    assert mask_id_number("310101199001011234") == "3101**********1234"
    assert mask_phone("+8613812345678") == "138****5678"


@pytest.mark.parametrize(
    ("born", "group"),
    [(date(2010, 1, 16), "child"), (date(2008, 1, 15), "adult"), (date(1966, 1, 16), "adult"),
     (date(1966, 1, 15), "senior")],
)  # fmt: skip
def test_age_group_turns_on_the_birthday(born: date, group: str) -> None:
    assert age_group(born, TODAY) == group
