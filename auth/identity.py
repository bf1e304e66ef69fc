"""Pure rules about people: mobile numbers, PRC resident ID numbers (GB 11643), names,
and how each is masked for display. No I/O."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

# GB 11643-1999: 17 digits weighted 2^(17-i) mod 11, check digit from ISO 7064 MOD 11-2.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# Province-level codes (GB/T 2260), plus 71/81/82 (Taiwan, Hong Kong, Macau) and 83,
# which residence permits for Hong Kong, Macau and Taiwan residents carry.
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36",
        "37", "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62",
        "63", "64", "65", "71", "81", "82", "83",
    }
)  # fmt: skip
_ID_SHAPE = re.compile(r"^\d{17}[\dX]$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_PHONE_NOISE = re.compile(r"[\s\-()]")
# CJK unified ideographs (basic, extension A, compatibility) with the middle dot that
# joins transliterated names (阿卜杜·热合曼); or Latin letters for foreigners' names.
_CJK_NAME = re.compile(
    r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+(·[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)*$"
)
_LATIN_NAME = re.compile(r"^[A-Za-z\u00c0-\u024f]+([ '\-.·][A-Za-z\u00c0-\u024f]+)*$")
# Look-alike dots people type instead of U+00B7.
_DOTS = str.maketrans({"•": "·", "・": "·", "．": "·", "\u2027": "·"})


def normalise_phone(raw: str) -> str | None:
    """`+86` E.164 form of a mainland mobile number, or None when it is not one.

    Accepts `13812345678`, `+86 138 1234 5678`, `008613812345678`, `86-138-1234-5678`.
    """
    digits = _PHONE_NOISE.sub("", raw.strip())
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if not _MOBILE.match(digits):
        return None
    return f"+86{digits}"


def mask_phone(phone: str) -> str:
    local = phone[-11:]
    return f"{local[:3]}****{local[-4:]}"


def check_digit(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


@dataclass(frozen=True)
class IdNumber:
    """A validated 18-character resident ID number (upper-case X)."""

    value: str
    birth_date: date

    @property
    def region(self) -> str:
        return self.value[:6]


def parse_id_number(raw: str, today: date) -> IdNumber | None:
    """The ID number if it has a plausible region, a real birth date not after `today`
    (and not before 1900) and the right check digit; else None."""
    value = raw.strip().upper()
    if not _ID_SHAPE.match(value):
        return None
    if value[:2] not in PROVINCES or value[2:6] == "0000":
        return None
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
    if born > today or born.year < 1900:
        return None
    if check_digit(value[:17]) != value[17]:
        return None
    return IdNumber(value, born)


def mask_id_number(value: str) -> str:
    """`3101**********1234`: region's first four and the last four, nothing in between."""
    return f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"


def normalise_name(raw: str) -> str | None:
    """The name in NFC with look-alike dots unified, or None when it is not plausible:
    2-30 characters, CJK (with middle dots), or Latin letters for foreigners' names."""
    name = unicodedata.normalize("NFC", raw.strip()).translate(_DOTS)
    name = re.sub(r"\s+", " ", name)
    if not 2 <= len(name) <= 30:
        return None
    if _CJK_NAME.match(name) or _LATIN_NAME.match(name):
        return name
    return None


def mask_name(name: str) -> str:
    """`张*明`, `张*` for two characters, `J********h` for Latin names."""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


AGE_GROUPS = ("child", "adult", "senior")


def age_on(birth: date, today: date) -> int:
    years = today.year - birth.year
    if (today.month, today.day) < (birth.month, birth.day):
        years -= 1
    return years


def age_group(birth: date, today: date) -> str:
    """`child` under 18, `senior` from 60, `adult` between (what gates and policies use)."""
    age = age_on(birth, today)
    if age < 18:
        return "child"
    if age >= 60:
        return "senior"
    return "adult"
