"""Settings are validated at start: clear messages, production refuses dev defaults,
several workers need Redis; the CLI exits non-zero with the message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.clock import SystemClock
from app.keyring import KeyringError, Keys
from app.main import prepare_keys
from app.settings import Settings, SettingsError
from tests.conftest import REPO

PRODUCTION_READY = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgres://suishen@db.internal:5432/suishen",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "SMS_BACKEND": "sandbox",
}


def problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return str(caught.value)


def test_empty_environment_gives_the_dev_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.app_env == "dev"
    assert settings.database_url == "sqlite://var/suishen.db"
    assert settings.redis_url is None
    assert settings.key_dir == Path("var/keys")
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.log_format == "text"
    assert settings.sms_backend == "console"
    assert settings.embedded_worker is True


def test_var_dir_moves_the_database_and_keys_with_it() -> None:
    settings = Settings.from_env({"VAR_DIR": "/srv/suishen"})
    assert settings.database_url == "sqlite:///srv/suishen/suishen.db"
    assert settings.key_dir == Path("/srv/suishen/keys")


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "APP_ENV": "test",
            "DATABASE_URL": "postgresql://u@h/db",
            "REDIS_URL": "redis://h:6379/2",
            "VAR_DIR": "/v",
            "KEY_DIR": "/k",
            "SMS_BACKEND": "sandbox",
            "PAYMENT_PROVIDER": "sandbox",
            "HOST": "10.0.0.5",
            "PORT": "9000",
            "WORKERS": "4",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "debug",
            "KV_PREFIX": "city",
            "PUBLIC_BASE_URL": "https://api.example.cn",
            "EMBEDDED_WORKER": "0",
            "SUISHEN_OTP_TTL_S": "120",
            "UNRELATED": "x",
        }
    )
    assert settings.database_url == "postgresql://u@h/db"
    assert settings.redis_url == "redis://h:6379/2"
    assert (settings.var_dir, settings.key_dir) == (Path("/v"), Path("/k"))
    assert (settings.host, settings.port, settings.workers) == ("10.0.0.5", 9000, 4)
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    assert settings.kv_prefix == "city"
    assert settings.public_base_url == "https://api.example.cn"
    assert settings.embedded_worker is False
    assert dict(settings.extra) == {"SUISHEN_OTP_TTL_S": "120"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ENV": "staging"}, "APP_ENV must be one of dev, test, production, got 'staging'"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with sqlite://, postgres://"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL must start with redis://, rediss:// or unix://"),
        ({"SMS_BACKEND": "carrier-pigeon"}, "SMS_BACKEND must be one of console, sandbox"),
        ({"PAYMENT_PROVIDER": "cash"}, "PAYMENT_PROVIDER must be one of sandbox"),
        ({"PORT": "eighty"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be between 1 and 65535"),
        ({"WORKERS": "0"}, "WORKERS must be at least 1"),
        ({"WORKERS": "many"}, "WORKERS must be an integer"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of json, text"),
        ({"SUISHEN_REDIS_CLUSTER": "yes"}, "SUISHEN_REDIS_CLUSTER must be 0 or 1, got 'yes'"),
        ({"SUISHEN_REDIS_CLUSTER": "1"}, "SUISHEN_REDIS_CLUSTER=1 needs a REDIS_URL naming"),
        (
            {"SUISHEN_REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7001/3"},
            "SUISHEN_REDIS_CLUSTER=1 needs a REDIS_URL naming a cluster node",
        ),
    ],
)
def test_bad_value_names_the_variable_and_what_it_accepts(
    env: dict[str, str], message: str
) -> None:
    assert message in problems(env)


def test_all_problems_are_reported_at_once() -> None:
    text = problems({"APP_ENV": "staging", "LOG_FORMAT": "xml", "WORKERS": "0"})
    assert text.startswith("invalid configuration:")
    assert "APP_ENV" in text and "LOG_FORMAT" in text and "WORKERS" in text


def test_several_workers_without_redis_are_refused_with_the_reason() -> None:
    text = problems({"WORKERS": "2"})
    assert "WORKERS > 1 needs REDIS_URL" in text
    assert "shared between processes" in text
    assert Settings.from_env({"WORKERS": "2", "REDIS_URL": "redis://h:6379/0"}).workers == 2


def test_redis_cluster_is_off_unless_set_to_1_with_a_node_url() -> None:
    assert Settings.from_env({"REDIS_URL": "redis://h:7001/0"}).redis_cluster is False
    on = Settings.from_env({"SUISHEN_REDIS_CLUSTER": "1", "REDIS_URL": "redis://h:7001"})
    assert on.redis_cluster is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SMS_BACKEND": "console"}, "APP_ENV=production refuses SMS_BACKEND=console"),
        ({"REDIS_URL": ""}, "APP_ENV=production needs REDIS_URL"),
        ({"DATABASE_URL": "sqlite://var/suishen.db"}, "needs a PostgreSQL DATABASE_URL"),
        ({}, "APP_ENV=production refuses PAYMENT_PROVIDER=sandbox"),
    ],
)
def test_production_refuses_each_dev_default(change: dict[str, str], message: str) -> None:
    assert message in problems({**PRODUCTION_READY, **change})


def test_production_with_only_the_sandbox_provider_left_names_just_that() -> None:
    # No real payment provider exists yet, so this is as close to starting as it gets.
    text = problems(PRODUCTION_READY)
    assert text.count("\n  - ") == 1


# -- keys ---------------------------------------------------------------------------------


def test_dev_generates_missing_keys(tmp_path: Path) -> None:
    keys = prepare_keys(Settings(app_env="dev", key_dir=tmp_path / "keys"), SystemClock())
    assert keys.signing["tokens"].active().origin == "generated"
    assert len(keys.secrets.get("pii")) == 32


def test_production_refuses_keys_generated_on_a_dev_start(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    Keys(key_dir, SystemClock()).ensure_all(generated=True)
    with pytest.raises(KeyringError) as caught:
        prepare_keys(Settings(app_env="production", key_dir=key_dir), SystemClock())
    text = str(caught.value)
    assert "the tokens signing key was generated on a dev start" in text
    assert "secret 'pii' was generated on a dev start" in text


def test_production_refuses_missing_keys_without_creating_them(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    with pytest.raises(KeyringError, match="no codes signing key"):
        prepare_keys(Settings(app_env="production", key_dir=key_dir), SystemClock())
    assert not (key_dir / "codes").exists()


def test_production_accepts_operator_keys(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    Keys(key_dir, SystemClock()).ensure_all(generated=False)  # `suishen keys init`
    keys = prepare_keys(Settings(app_env="production", key_dir=key_dir), SystemClock())
    assert keys.signing["codes"].active().origin == "operator"


# -- through the CLI ----------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SUISHEN_", "TEST_"))}
    for name in ("APP_ENV", "DATABASE_URL", "REDIS_URL", "WORKERS", "PORT", "SMS_BACKEND"):
        base.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env={**base, "VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_in_production_on_dev_defaults_exits_with_the_reasons(tmp_path: Path) -> None:
    done = run_cli("serve", env={"APP_ENV": "production"}, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "suishen: invalid configuration:" in done.stderr
    assert "refuses SMS_BACKEND=console" in done.stderr
    assert "needs REDIS_URL" in done.stderr
    assert "not SQLite" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_workers_flag_and_no_redis_exits_with_the_reason(tmp_path: Path) -> None:
    done = run_cli("serve", "--workers", "3", env={}, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "WORKERS > 1 needs REDIS_URL" in done.stderr
    assert not (tmp_path / "var").exists()  # refused before touching anything


def test_serve_with_a_bad_port_exits_with_the_reason(tmp_path: Path) -> None:
    done = run_cli("serve", env={"PORT": "http"}, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "PORT must be an integer" in done.stderr


def test_domain_knobs_take_defaults_and_refuse_bad_values_by_name() -> None:
    from app.settings import int_knob

    assert int_knob({}, "SUISHEN_X", 7) == 7
    assert int_knob({"SUISHEN_X": ""}, "SUISHEN_X", 7) == 7
    assert int_knob({"SUISHEN_X": "12"}, "SUISHEN_X", 7, low=0, high=20) == 12
    with pytest.raises(SettingsError, match="SUISHEN_X must be an integer"):
        int_knob({"SUISHEN_X": "lots"}, "SUISHEN_X", 7)
    with pytest.raises(SettingsError, match="SUISHEN_X must be between 0 and 20"):
        int_knob({"SUISHEN_X": "21"}, "SUISHEN_X", 7, low=0, high=20)
    with pytest.raises(SettingsError, match="SUISHEN_X must be at least 0"):
        int_knob({"SUISHEN_X": "-1"}, "SUISHEN_X", 7, low=0)
