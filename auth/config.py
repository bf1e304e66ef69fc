"""The auth domain's configuration (limits read from SUISHEN_* settings) and its runtime:
the config plus the long-lived objects (the revocation marks' cache among them), built
once in `wiring.startup`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from app.context import AppContext
from app.settings import int_knob
from auth import tokens
from auth.pii import PiiCipher
from auth.sms import ConsoleSms, SandboxSms, SmsBackend


@dataclass(frozen=True)
class AuthConfig:
    """Limits, from SUISHEN_* settings with these defaults."""

    otp_per_phone_minute: int = 1
    otp_per_phone_hour: int = 10
    otp_per_ip_hour: int = 30
    client_failures_per_client: int = 10
    client_failures_per_ip: int = 50
    # Kiosks: how long a resident's delegated token lives, identifications a kiosk may
    # attempt a minute, failed identifications of one ID number an hour (any kiosk).
    kiosk_session: timedelta = timedelta(minutes=5)
    kiosk_identify_per_minute: int = 10
    kiosk_failures_per_id_hour: int = 5
    # Addresses the per-IP limits do not count (loopback outside production by default:
    # in development and tests every request comes from 127.0.0.1).
    rate_limit_exempt_ips: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, extra: dict[str, str], *, production: bool) -> AuthConfig:
        def number(name: str, default: int) -> int:
            return int_knob(extra, name, default, low=0)

        exempt_raw = extra.get("SUISHEN_RATE_LIMIT_EXEMPT_IPS")
        if exempt_raw is not None:
            exempt = frozenset(ip.strip() for ip in exempt_raw.split(",") if ip.strip())
        else:
            exempt = frozenset() if production else frozenset({"127.0.0.1", "::1"})
        return cls(
            otp_per_phone_minute=number("SUISHEN_OTP_PER_PHONE_MINUTE", 1),
            otp_per_phone_hour=number("SUISHEN_OTP_PER_PHONE_HOUR", 10),
            otp_per_ip_hour=number("SUISHEN_OTP_PER_IP_HOUR", 30),
            client_failures_per_client=number("SUISHEN_CLIENT_FAILURES_PER_CLIENT", 10),
            client_failures_per_ip=number("SUISHEN_CLIENT_FAILURES_PER_IP", 50),
            kiosk_session=timedelta(
                seconds=int_knob(extra, "SUISHEN_KIOSK_SESSION_S", 300, low=30, high=900)
            ),
            kiosk_identify_per_minute=number("SUISHEN_KIOSK_IDENTIFY_PER_MINUTE", 10),
            kiosk_failures_per_id_hour=number("SUISHEN_KIOSK_FAILURES_PER_ID_HOUR", 5),
            rate_limit_exempt_ips=exempt,
        )

    def counted_ip(self, ip: str | None) -> str | None:
        """`ip` if the per-address limits count requests from it, else None."""
        return ip if ip is not None and ip not in self.rate_limit_exempt_ips else None


# How long a process keeps a revocation mark it read (or found absent). What keeps the
# cache right is the invalidation every writer publishes, not this bound; the bound
# limits what a message lost while the subscription still looked healthy could cost
# (a revoked token accepted a few seconds more) and the memory kept (the tokens seen in
# the last few seconds). A few seconds still spare the read for a gate scanning codes
# every second and an app refreshing its code.
MARK_CACHE_S = 5.0


class MarkCache:
    """Revocation marks this process read lately, keyed by their key-value key; the
    value is the mark, b"" for none (a mark is never empty).

    Used only while the invalidation subscription is `live`: every change to the
    subscription (confirmed, lost) forgets everything, since messages may have been
    missed in between. `epoch` moves with every invalidation, so a read that began
    before one does not keep what it found."""

    def __init__(
        self, ttl_s: float = MARK_CACHE_S, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._now = now
        # Kept in insertion order, which is expiry order: the sweep stops at the first
        # entry still valid.
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.live = False
        self.epoch = 0
        self.subscriptions = 0  # times the subscription was confirmed

    def cached(self, key: str) -> bytes | None:
        """The mark kept for `key` (b"" for none), or None when nothing is kept."""
        if not self.live:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._now():
            del self._entries[key]
            return None
        return found[1]

    def keep(self, key: str, mark: bytes | None, epoch: int) -> None:
        """Keep what a read that began at `epoch` found, unless anything was invalidated
        since (or the subscription is down)."""
        if not self.live or epoch != self.epoch:
            return
        now = self._now()
        self._entries[key] = (now + self.ttl_s, mark or b"")
        self._entries.move_to_end(key)
        while self._entries:
            first = next(iter(self._entries.values()))
            if first[0] > now:
                break
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        """`key`'s mark changed: forget it, and whatever a read under way finds."""
        self.epoch += 1
        self._entries.pop(key, None)

    def set_live(self, live: bool) -> None:
        self.epoch += 1
        self._entries.clear()
        self.live = live
        if live:
            self.subscriptions += 1

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class AuthRuntime:
    """What the auth domain keeps for the life of the app (`ctx.runtime(AuthRuntime)`)."""

    sms: SmsBackend
    cipher: PiiCipher
    otp_key: bytes
    config: AuthConfig
    verifier: tokens.Verifier
    marks: MarkCache = field(default_factory=MarkCache)
    # The task that keeps `marks` invalidated (`store.follow_marks`), until `close`.
    marks_follower: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, ctx: AppContext) -> AuthRuntime:
        settings = ctx.settings
        sms: SmsBackend = (
            SandboxSms()
            if settings.sms_backend == "sandbox"
            else ConsoleSms(print_codes=settings.app_env == "dev")
        )
        return cls(
            sms=sms,
            cipher=PiiCipher(ctx.keys.secrets.get("pii"), ctx.keys.secrets.get("blind_index")),
            otp_key=ctx.keys.secrets.get("otp"),
            config=AuthConfig.from_settings(
                dict(settings.extra), production=settings.is_production
            ),
            verifier=tokens.Verifier(
                ctx.keys.signing["tokens"],
                issuer=settings.token_issuer,
                audience=settings.token_audience,
            ),
        )

    async def close(self) -> None:
        if self.marks_follower is not None:
            self.marks_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.marks_follower
            self.marks_follower = None
