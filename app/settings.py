"""Settings read from the environment (12-factor) and validated once at start."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

APP_ENVS = ("dev", "test", "production")
SMS_BACKENDS = ("console", "sandbox")
PAYMENT_PROVIDERS = ("sandbox",)
LOG_FORMATS = ("json", "text")
N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """The environment describes a configuration suishen refuses to run with."""


@dataclass(frozen=True)
class Settings:
    app_env: str = "dev"
    database_url: str = "sqlite://var/suishen.db"
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (SUISHEN_REDIS_CLUSTER=1): the client
    # discovers the others, and multi-key scripts keep their keys in one hash slot.
    redis_cluster: bool = False
    var_dir: Path = Path("var")
    key_dir: Path = Path("var/keys")
    sms_backend: str = "console"
    payment_provider: str = "sandbox"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    log_format: str = "text"
    log_level: str = "INFO"
    kv_prefix: str = "suishen"
    max_body_bytes: int = 64 * 1024
    public_base_url: str = "http://127.0.0.1:8000"
    token_issuer: str = "suishen"  # noqa: S105 (an issuer name, not a secret)
    token_audience: str = "suishen-api"  # noqa: S105
    # Run the worker loop (outbox, retries, purge) inside the server process:
    # right for the embedded one-process setup, off when `suishen worker` runs apart.
    embedded_worker: bool = True
    # PostgreSQL: a new connection must be made within DB_CONNECT_TIMEOUT_S, a statement
    # is cancelled after DB_STATEMENT_TIMEOUT_S; past them a request answers 503.
    db_connect_timeout_s: float = 3.0
    db_statement_timeout_s: float = 5.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        app_env = env.get("APP_ENV", "dev")
        var_dir = Path(env.get("VAR_DIR") or "var")
        settings = cls(
            app_env=app_env,
            # The default SQLite file lives in VAR_DIR with the keys and demo credentials.
            database_url=env.get("DATABASE_URL") or f"sqlite://{var_dir}/suishen.db",
            redis_url=env.get("REDIS_URL") or None,
            redis_cluster=_flag(env, "SUISHEN_REDIS_CLUSTER"),
            var_dir=var_dir,
            key_dir=Path(env.get("KEY_DIR") or var_dir / "keys"),
            sms_backend=env.get("SMS_BACKEND", "console"),
            payment_provider=env.get("PAYMENT_PROVIDER", "sandbox"),
            host=env.get("HOST", cls.host),
            port=_int(env, "PORT", cls.port),
            workers=_int(env, "WORKERS", cls.workers),
            log_format=env.get("LOG_FORMAT", "json" if app_env == "production" else "text"),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            kv_prefix=env.get("KV_PREFIX", cls.kv_prefix),
            public_base_url=env.get("PUBLIC_BASE_URL", cls.public_base_url),
            embedded_worker=env.get("EMBEDDED_WORKER", "1") not in ("0", "false", "no"),
            db_connect_timeout_s=_float(env, "DB_CONNECT_TIMEOUT_S", cls.db_connect_timeout_s),
            db_statement_timeout_s=_float(
                env, "DB_STATEMENT_TIMEOUT_S", cls.db_statement_timeout_s
            ),
            extra={k: v for k, v in env.items() if k.startswith("SUISHEN_")},
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        problems: list[str] = []
        if self.app_env not in APP_ENVS:
            problems.append(f"APP_ENV must be one of {', '.join(APP_ENVS)}, got {self.app_env!r}")
        if not self.database_url.startswith(("sqlite://", "postgres://", "postgresql://")):
            problems.append("DATABASE_URL must start with sqlite://, postgres:// or postgresql://")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            problems.append("REDIS_URL must start with redis://, rediss:// or unix://")
        if self.redis_cluster and (
            self.redis_url is None
            or not self.redis_url.startswith(("redis://", "rediss://"))
            or urlsplit(self.redis_url).path.strip("/") not in ("", "0")
        ):
            problems.append(
                "SUISHEN_REDIS_CLUSTER=1 needs a REDIS_URL naming a cluster node "
                "(redis:// or rediss://, database 0)"
            )
        if self.sms_backend not in SMS_BACKENDS:
            problems.append(f"SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}")
        if self.payment_provider not in PAYMENT_PROVIDERS:
            problems.append(f"PAYMENT_PROVIDER must be one of {', '.join(PAYMENT_PROVIDERS)}")
        if not 0 < self.port < 65536:
            problems.append("PORT must be between 1 and 65535")
        if self.workers < 1:
            problems.append("WORKERS must be at least 1")
        for name, value in (
            ("DB_CONNECT_TIMEOUT_S", self.db_connect_timeout_s),
            ("DB_STATEMENT_TIMEOUT_S", self.db_statement_timeout_s),
        ):
            if not 0 < value <= 600:
                problems.append(f"{name} must be a number of seconds above 0 and at most 600")
        if self.log_format not in LOG_FORMATS:
            problems.append(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        if self.workers > 1 and self.redis_url is None:
            problems.append(
                "WORKERS > 1 needs REDIS_URL: rate limits, replay guards and caches must be "
                "shared between processes, and the embedded store lives inside one process"
            )
        if self.is_production:
            problems.extend(self._production_problems())
        if problems:
            raise SettingsError("invalid configuration:\n  - " + "\n  - ".join(problems))

    def _production_problems(self) -> list[str]:
        problems = []
        if self.sms_backend == "console":
            problems.append("APP_ENV=production refuses SMS_BACKEND=console (prints OTPs)")
        if self.redis_url is None:
            problems.append("APP_ENV=production needs REDIS_URL (the embedded store is dev-only)")
        if self.is_sqlite:
            problems.append("APP_ENV=production needs a PostgreSQL DATABASE_URL, not SQLite")
        if self.payment_provider == "sandbox":
            problems.append("APP_ENV=production refuses PAYMENT_PROVIDER=sandbox")
        return problems


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "")
    if raw not in ("", "0", "1"):
        raise SettingsError(f"invalid configuration:\n  - {name} must be 0 or 1, got {raw!r}")
    return raw == "1"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def _number(
    env: Mapping[str, str], name: str, default: N, parse: Callable[[str], N], what: str
) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise SettingsError(f"invalid configuration:\n  - {name} must be {what}") from None


def int_knob(
    extra: Mapping[str, str],
    name: str,
    default: int,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """A domain's integer knob from `settings.extra` (unset or empty: `default`); a value
    that is not an integer or falls outside [low, high] stops the start with its name."""
    raw = extra.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{name} must be {bounds}")
    return value
