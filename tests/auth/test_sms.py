"""SMS backends: the console one never lets a code reach the logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from auth.sms import ConsoleSms, SandboxSms

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


async def test_console_prints_the_code_in_dev_and_logs_only_a_masked_phone(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="suishen.auth.sms")
    await ConsoleSms(print_codes=True).send_otp("+8613812345678", "482913", ttl_s=300, now=NOW)
    printed = capsys.readouterr().out
    assert "482913" in printed and "*******5678" in printed
    assert "1381234" not in printed  # the full number never reaches the terminal
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "138****5678" in logged and "482913" not in logged and "13812345678" not in logged


async def test_console_outside_dev_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    await ConsoleSms(print_codes=False).send_otp("+8613812345678", "482913", ttl_s=300, now=NOW)
    assert "482913" not in capsys.readouterr().out


async def test_sandbox_keeps_messages_and_finds_the_latest_code() -> None:
    sms = SandboxSms()
    await sms.send_otp("+8613812345678", "111111", ttl_s=300, now=NOW)
    await sms.send_otp("+8613812345678", "222222", ttl_s=300, now=NOW)
    assert sms.last_code("13812345678") == "222222"
    assert sms.last_code("+8613900000000") is None
    assert "5 分钟" in sms.messages[0].text
