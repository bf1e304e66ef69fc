"""The codes domain's knobs, read once from `settings.extra` (SUISHEN_CODES_* variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from app.settings import SettingsError, int_knob
from codes.codec import MAX_LIFETIME_S, STATUSES


@dataclass(frozen=True)
class CodesConfig:
    lifetime: timedelta = timedelta(seconds=60)  # SUISHEN_CODES_LIFETIME_S
    refresh_after: timedelta = timedelta(seconds=30)  # SUISHEN_CODES_REFRESH_AFTER_S
    skew: timedelta = timedelta(seconds=30)  # SUISHEN_CODES_SKEW_S
    default_status: str = "green"  # SUISHEN_CODES_DEFAULT_STATUS
    profile_cache: timedelta = timedelta(seconds=30)  # SUISHEN_CODES_PROFILE_CACHE_S

    @property
    def verification_window(self) -> timedelta:
        """How long a retired key keeps verifying: the longest a code it signed can live."""
        return self.lifetime + self.skew

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> CodesConfig:
        def seconds(name: str, default: timedelta, low: int, high: int) -> timedelta:
            value = int_knob(
                extra, f"SUISHEN_CODES_{name}", int(default.total_seconds()), low=low, high=high
            )
            return timedelta(seconds=value)

        default_status = extra.get("SUISHEN_CODES_DEFAULT_STATUS", cls.default_status)
        if default_status not in STATUSES:
            raise SettingsError(f"SUISHEN_CODES_DEFAULT_STATUS must be one of {STATUSES}")
        lifetime = seconds("LIFETIME_S", cls.lifetime, 5, MAX_LIFETIME_S)
        refresh = seconds("REFRESH_AFTER_S", cls.refresh_after, 1, MAX_LIFETIME_S)
        if refresh >= lifetime:
            raise SettingsError("SUISHEN_CODES_REFRESH_AFTER_S must be below the lifetime")
        return cls(
            lifetime=lifetime,
            refresh_after=refresh,
            skew=seconds("SKEW_S", cls.skew, 0, 600),
            default_status=default_status,
            profile_cache=seconds("PROFILE_CACHE_S", cls.profile_cache, 0, 3600),
        )
