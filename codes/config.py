"""The codes domain's knobs (SUISHEN_CODES_* variables, read once from `settings.extra`)
and its runtime: the config with the token secret and the per-process caches, built in
`wiring.startup` and read with `ctx.runtime(CodesRuntime)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.context import AppContext
from app.keyring import SigningKey
from app.settings import SettingsError, int_knob
from auth.api import SubjectProfile
from codes import codec, pseudonym, verifier
from codes.codec import MAX_LIFETIME_S
from codes.states import STATUS_OF, Status

# The signing keyring codes use (`ctx.keys.signing[PURPOSE]`).
PURPOSE = "codes"
# Past this many entries a per-process cache starts again from empty.
CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class CodesConfig:
    lifetime: timedelta = timedelta(seconds=60)  # SUISHEN_CODES_LIFETIME_S
    refresh_after: timedelta = timedelta(seconds=30)  # SUISHEN_CODES_REFRESH_AFTER_S
    skew: timedelta = timedelta(seconds=30)  # SUISHEN_CODES_SKEW_S
    default_status: Status = Status.GREEN  # SUISHEN_CODES_DEFAULT_STATUS
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

        default_status = STATUS_OF.get(
            extra.get("SUISHEN_CODES_DEFAULT_STATUS", cls.default_status)
        )
        if default_status is None:
            names = tuple(s.value for s in Status)
            raise SettingsError(f"SUISHEN_CODES_DEFAULT_STATUS must be one of {names}")
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


@dataclass
class CodesRuntime:
    """The config, the secret tokens are sealed with, and caches of what never changes."""

    config: CodesConfig
    token_secret: bytes
    # Handles never change once made, so these caches never go stale.
    handles: dict[str, bytes] = field(default_factory=dict)
    subjects: dict[bytes, str] = field(default_factory=dict)
    profiles: dict[str, tuple[datetime, SubjectProfile | None]] = field(default_factory=dict)
    # (day, subject) <-> that day's pseudonym: saves the Feistel rounds on repeat visits.
    pseudonyms: dict[tuple[int, str], bytes] = field(default_factory=dict)
    holders: dict[tuple[int, bytes], str] = field(default_factory=dict)
    # Trusted key sets, rebuilt when the keyring's signature (kids, retirements) changes.
    trusted: dict[bytes, verifier.TrustedKey] = field(default_factory=dict)
    trusted_sig: tuple[tuple[str, datetime | None], ...] = ()
    all_keys: dict[bytes, verifier.TrustedKey] = field(default_factory=dict)
    all_sig: tuple[str, ...] = ()
    _key_ids: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, ctx: AppContext) -> CodesRuntime:
        # The token key is derived from the PII secret (HKDF with its own label), so codes
        # need no secret of their own and rotate with the deployment's PII key.
        secret = pseudonym.token_secret(ctx.keys.secrets.get("pii"))
        return cls(CodesConfig.from_extra(ctx.settings.extra), secret)

    def key_id(self, key: SigningKey) -> bytes:
        found = self._key_ids.get(key.kid)
        if found is None:
            found = self._key_ids[key.kid] = codec.key_id_of(key.public_key)
        return found

    def remember(self, subject_id: str, handle: bytes) -> None:
        if len(self.handles) > CACHE_LIMIT:
            self.handles.clear()
            self.subjects.clear()
        self.handles[subject_id] = handle
        self.subjects[handle] = subject_id

    def remember_pseudonym(self, day: int, subject_id: str, pseudo: bytes) -> None:
        if len(self.pseudonyms) > CACHE_LIMIT:
            self.pseudonyms.clear()
            self.holders.clear()
        self.pseudonyms[(day, subject_id)] = pseudo
        self.holders[(day, pseudo)] = subject_id
