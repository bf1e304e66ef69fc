"""The auth domain's configuration (limits read from SUISHEN_* settings) and its runtime:
the config plus the long-lived objects, built once in `wiring.startup`."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class AuthRuntime:
    """What the auth domain keeps for the life of the app (`ctx.runtime(AuthRuntime)`)."""

    sms: SmsBackend
    cipher: PiiCipher
    otp_key: bytes
    config: AuthConfig
    verifier: tokens.Verifier

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
