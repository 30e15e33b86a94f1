"""Settings base: every service's `Settings` subclasses `BaseServiceSettings` (plus the
`RedisSettings`/`PostgresSettings` mixins it needs), reads `CONVEYOR_*` variables, and is built
once by a cached `get_settings()` that `create_app(settings)` receives.

Where a value comes from, first match wins: keyword arguments; `CONVEYOR_<NAME>`;
`CONVEYOR_<NAME>_FILE` (secret fields only: the file's content, e.g. a mounted Kubernetes
Secret); a file named `CONVEYOR_<NAME>` in `CONVEYOR_SECRETS_DIR`; the default."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal, Self, get_args
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from conveyor_common import limits

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "dev-internal-token", "secret"})
DEV_INTERNAL_TOKEN = "dev-internal-token"

INTERNAL_TOKEN_HEADER = "X-Conveyor-Internal-Token"
TENANT_HEADER = "X-Conveyor-Tenant"
SCOPES_HEADER = "X-Conveyor-Scopes"

SECRETS_DIR_ENV = "CONVEYOR_SECRETS_DIR"
SECRET_FILE_SUFFIX = "_FILE"


# Every settings class carries the same config: pydantic merges `model_config` across bases in
# order, so a mixin left with BaseSettings' defaults would reset `env_prefix` to "" in
# `class Settings(BaseServiceSettings, RedisSettings)` and every CONVEYOR_* variable would be
# silently ignored.
SETTINGS_CONFIG = SettingsConfigDict(
    env_prefix="CONVEYOR_", env_file=None, extra="ignore", secrets_dir=None
)


def _is_secret_field(field: FieldInfo) -> bool:
    return field.annotation is SecretStr or SecretStr in get_args(field.annotation)


class SecretFilesSource(PydanticBaseSettingsSource):
    """`CONVEYOR_<NAME>_FILE=/path` for every secret field: the value is the file's content
    (surrounding whitespace stripped), the convention of Docker and Kubernetes secrets."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # noqa: ARG002
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix") or "")
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            if not _is_secret_field(field):
                continue
            variable = f"{prefix}{name}".upper()
            path = environ.get(variable + SECRET_FILE_SUFFIX)
            if not path:
                continue
            # Two sources for one secret is a deployment mistake; picking one silently would
            # hide which secret is in force.
            if variable in environ:
                raise SettingsError(
                    f"both {variable} and {variable}{SECRET_FILE_SUFFIX} are set; set only one"
                )
            try:
                values[name] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(
                    f"{variable}{SECRET_FILE_SUFFIX}: cannot read {path} ({exc.strerror})"
                ) from None
        return values


def _secrets_dir_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    """pydantic-settings' `secrets_dir` source, pointed at `CONVEYOR_SECRETS_DIR`. A directory
    that is set but missing (a Secret volume that was not mounted) is an error, not a warning."""
    raw = os.environ.get(SECRETS_DIR_ENV, "").strip()
    if not raw:
        return SecretsSettingsSource(settings_cls, secrets_dir=None)
    path = Path(raw)
    if not path.is_dir():
        raise SettingsError(f"{SECRETS_DIR_ENV}={raw} is not a directory")
    return SecretsSettingsSource(settings_cls, secrets_dir=path)


class ConveyorSettings(BaseSettings):
    """The shared base of every settings class and mixin: one config, one order of sources."""

    model_config = SETTINGS_CONFIG

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        # Replaced by the same source pointed at CONVEYOR_SECRETS_DIR.
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            SecretFilesSource(settings_cls),
            dotenv_settings,
            _secrets_dir_source(settings_cls),
        )


def _is_placeholder(value: str) -> bool:
    return value.strip().lower() in PLACEHOLDER_SECRETS


def _url_password(value: str) -> str | None:
    """The password inside a URL/DSN (`redis://:pw@host`), or None when there is none."""
    if "://" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return None if password is None else unquote(password)


class BaseServiceSettings(ConveyorSettings):
    environment: Literal["development", "test", "production"] = "production"
    log_level: str = "INFO"
    log_json: bool | None = Field(
        default=None, description="JSON log lines; defaults to on outside development."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    # The shared secret the gateway presents to job-service and result-service.
    internal_token: SecretStr = SecretStr(DEV_INTERNAL_TOKEN)
    # OpenTelemetry tracing (conveyor_common.tracing): None means on exactly when an OTLP
    # endpoint is configured (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT). The ratio, when set,
    # samples new traces at that rate and follows the caller's decision otherwise
    # (parentbased_traceidratio); unset, the standard OTEL_TRACES_SAMPLER variables apply.
    tracing_enabled: bool | None = None
    tracing_sample_ratio: float | None = Field(default=None, ge=0.0, le=1.0)

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.environment != "development"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        for name, value in self.secret_fields().items():
            secret = value.get_secret_value()
            if _is_placeholder(secret):
                raise ValueError(
                    f"CONVEYOR_{name.upper()} is unset or a placeholder; set a real secret "
                    f"outside development (environment={self.environment})"
                )
            password = _url_password(secret)
            if password is not None and _is_placeholder(password):
                raise ValueError(
                    f"CONVEYOR_{name.upper()} carries an empty or placeholder password; set a "
                    f"real one outside development (environment={self.environment})"
                )
        return self

    def secret_fields(self) -> dict[str, SecretStr]:
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }


RedisTlsVerify = Literal["required", "optional", "none"]
_SSL_CERT_REQS: dict[RedisTlsVerify, ssl.VerifyMode] = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


class RedisSettings(ConveyorSettings):
    """How to reach Redis, including ACL credentials and TLS. Build every client through
    `redis_dsn()` + `redis_client_kwargs()` and every Celery app with `celery_redis_ssl()`, so
    a locked-down Redis works for every service at once."""

    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Prefix of every key, stream and queue in Redis (see redis_keys.RedisKeys).
    redis_namespace: str = "conveyor"
    redis_socket_timeout: float = 5.0
    redis_connect_timeout: float = 2.0
    # ACL user and password (Redis 6+). When set they replace any given in the URL, so the URL
    # can live in a ConfigMap and the password in a Secret.
    redis_username: str | None = None
    redis_password: SecretStr | None = None
    # TLS, with a `rediss://` URL: the CA that signed the server's certificate (else the
    # system's), and a client certificate and key when the server asks for one.
    redis_tls_ca_file: Path | None = None
    redis_tls_cert_file: Path | None = None
    redis_tls_key_file: Path | None = None
    redis_tls_verify: RedisTlsVerify = "required"
    redis_tls_check_hostname: bool = True

    @field_validator("redis_username", "redis_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Templated manifests render an absent secret as an empty string.
        if value == "" or (isinstance(value, SecretStr) and value.get_secret_value() == ""):
            return None
        return value

    @model_validator(mode="after")
    def _check_redis_security(self) -> Self:
        scheme = self.redis_scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("CONVEYOR_REDIS_URL must start with redis://, rediss:// or unix://")
        files = {
            "CONVEYOR_REDIS_TLS_CA_FILE": self.redis_tls_ca_file,
            "CONVEYOR_REDIS_TLS_CERT_FILE": self.redis_tls_cert_file,
            "CONVEYOR_REDIS_TLS_KEY_FILE": self.redis_tls_key_file,
        }
        given = {name: path for name, path in files.items() if path is not None}
        if given and scheme != "rediss":
            # Certificates with a plain URL would look like TLS and be cleartext.
            raise ValueError(
                f"{', '.join(given)} set but CONVEYOR_REDIS_URL is not rediss://; use rediss:// "
                "for TLS"
            )
        if (self.redis_tls_cert_file is None) != (self.redis_tls_key_file is None):
            raise ValueError(
                "CONVEYOR_REDIS_TLS_CERT_FILE and CONVEYOR_REDIS_TLS_KEY_FILE go together"
            )
        for name, path in given.items():
            if not path.is_file():
                raise ValueError(f"{name}={path} is not a readable file")
        if scheme == "unix" and (self.redis_username or self.redis_password):
            raise ValueError(
                "CONVEYOR_REDIS_USERNAME/PASSWORD apply to redis:// and rediss:// URLs; for a "
                "unix socket put them in the URL"
            )
        return self

    @property
    def redis_scheme(self) -> str:
        return urlsplit(self.redis_url.get_secret_value()).scheme.lower()

    @property
    def redis_tls(self) -> bool:
        return self.redis_scheme == "rediss"

    def redis_dsn(self) -> str:
        """The Redis URL with `CONVEYOR_REDIS_USERNAME`/`PASSWORD` folded in. Secret: pass it
        to a client, never to a log."""
        url = self.redis_url.get_secret_value()
        if self.redis_username is None and self.redis_password is None:
            return url
        parts = urlsplit(url)
        username = (
            self.redis_username
            if self.redis_username is not None
            else unquote(parts.username or "")
        )
        password = (
            self.redis_password.get_secret_value()
            if self.redis_password is not None
            else unquote(parts.password or "")
        )
        userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
        hostport = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{hostport}"))

    def redis_ssl_kwargs(self) -> dict[str, Any]:
        """redis-py's `ssl_*` keyword arguments (sync and asyncio alike); empty unless TLS."""
        if not self.redis_tls:
            return {}
        kwargs: dict[str, Any] = {
            "ssl_cert_reqs": self.redis_tls_verify,
            # Hostname checks need verification; ssl refuses the combination otherwise.
            "ssl_check_hostname": self.redis_tls_check_hostname and self.redis_tls_verify != "none",
        }
        if self.redis_tls_ca_file is not None:
            kwargs["ssl_ca_certs"] = str(self.redis_tls_ca_file)
        if self.redis_tls_cert_file is not None and self.redis_tls_key_file is not None:
            kwargs["ssl_certfile"] = str(self.redis_tls_cert_file)
            kwargs["ssl_keyfile"] = str(self.redis_tls_key_file)
        return kwargs

    def redis_client_kwargs(self, *, client_name: str, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for `redis.Redis.from_url(settings.redis_dsn(), **kwargs)` and
        `redis.asyncio.Redis.from_url(...)`: connection name, timeouts and TLS; `overrides`
        (retries, health checks, other timeouts) are added last."""
        return {
            "client_name": client_name,
            "socket_timeout": self.redis_socket_timeout,
            "socket_connect_timeout": self.redis_connect_timeout,
            **self.redis_ssl_kwargs(),
            **overrides,
        }

    def celery_redis_ssl(self) -> dict[str, Any] | None:
        """Celery's `broker_use_ssl` / `redis_backend_use_ssl`, or None without TLS (kombu and
        Celery's Redis backend take the same keys, with `ssl_cert_reqs` as an `ssl` constant)."""
        kwargs = self.redis_ssl_kwargs()
        if not kwargs:
            return None
        kwargs["ssl_cert_reqs"] = _SSL_CERT_REQS[self.redis_tls_verify]
        return kwargs


class PostgresSettings(ConveyorSettings):
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///.conveyor/conveyor.db")
    database_pool_size: int = 10


class CelerySettings(ConveyorSettings):
    result_ttl_seconds: int = 86_400
    max_timeout_seconds: int = limits.MAX_TIMEOUT_SECONDS
    # Added to the longest time limit to give the broker's visibility timeout (celery_app.py).
    # Only tests shrink it, to make "longer than the visibility timeout" take seconds.
    visibility_margin_seconds: int = Field(default=600, ge=1)

    @property
    def visibility_timeout_seconds(self) -> int:
        from conveyor_common.celery_app import visibility_timeout

        return visibility_timeout(self.max_timeout_seconds, self.visibility_margin_seconds)
