"""SMS backends that deliver one-time codes. A real gateway implements `SmsBackend`
(one method) and is chosen by the SMS_BACKEND setting."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from auth.identity import mask_phone

log = logging.getLogger("suishen.auth.sms")


class SmsBackend(Protocol):
    name: str

    async def send_otp(self, phone: str, code: str, *, ttl_s: int, now: datetime) -> None: ...


def otp_text(code: str, ttl_s: int) -> str:
    return f"【随申办】验证码 {code}，{ttl_s // 60} 分钟内有效。请勿告诉他人。"


class ConsoleSms:
    """Development: logs that a code went out (never the code) and, outside production,
    prints the code itself to stdout, bypassing the logs."""

    name = "console"

    def __init__(self, *, print_codes: bool) -> None:
        self.print_codes = print_codes

    async def send_otp(self, phone: str, code: str, *, ttl_s: int, now: datetime) -> None:
        log.info("OTP sent to %s via console", mask_phone(phone))
        if self.print_codes:
            # The developer needs the code, not the number: a terminal is often shared
            # (screen sharing, CI logs), so only the last four digits say whose it was.
            shown = "*" * 7 + phone[-4:]
            print(f"[sms console] {shown}: {otp_text(code, ttl_s)}", file=sys.stdout, flush=True)


@dataclass(frozen=True)
class SentMessage:
    phone: str
    code: str
    text: str
    sent_at: datetime


@dataclass
class SandboxSms:
    """Tests: keeps every message in memory so a test can read the code it was sent."""

    name = "sandbox"
    messages: list[SentMessage] = field(default_factory=list)

    async def send_otp(self, phone: str, code: str, *, ttl_s: int, now: datetime) -> None:
        self.messages.append(SentMessage(phone, code, otp_text(code, ttl_s), now))

    def last_code(self, phone: str) -> str | None:
        """The latest code sent to `phone` (any accepted spelling of it)."""
        for message in reversed(self.messages):
            if message.phone == phone or message.phone.endswith(phone[-11:]):
                return message.code
        return None
