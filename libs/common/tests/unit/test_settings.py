"""Settings: placeholder secrets refused outside development, secrets read from files, and the
Redis helpers every service builds its clients with (ACL credentials, TLS)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from conveyor_common.settings import BaseServiceSettings, PostgresSettings, RedisSettings


class ServiceSettings(BaseServiceSettings, RedisSettings, PostgresSettings):
    """What a service's settings look like: the base plus the store mixins."""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CONVEYOR_"):
            monkeypatch.delenv(name)


# --- placeholder secrets -------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["test", "production"])
def test_default_internal_token_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="CONVEYOR_INTERNAL_TOKEN is unset or a placeholder"):
        ServiceSettings(environment=environment)


@pytest.mark.parametrize(
    "placeholder", ["", "change-me", "CHANGEME", " secret ", "dev-internal-token"]
)
def test_placeholder_values_are_refused(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        ServiceSettings(environment="production", internal_token=placeholder)


def test_development_accepts_the_placeholders() -> None:
    settings = ServiceSettings(environment="development")
    assert settings.internal_token.get_secret_value() == "dev-internal-token"


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("redis_url", "redis://:change-me@redis:6379/0"),
        ("redis_url", "redis://conveyor:@redis:6379/0"),
        ("database_url", "postgresql+asyncpg://app:changeme@db/app"),
    ],
)
def test_placeholder_passwords_inside_urls_are_refused(field: str, url: str) -> None:
    with pytest.raises(ValidationError, match=f"CONVEYOR_{field.upper()} carries"):
        ServiceSettings(environment="production", internal_token="a-real-token", **{field: url})


def test_placeholder_redis_password_is_refused() -> None:
    with pytest.raises(ValidationError, match="CONVEYOR_REDIS_PASSWORD"):
        ServiceSettings(
            environment="production", internal_token="a-real-token", redis_password="changeme"
        )


def test_real_secrets_are_accepted() -> None:
    settings = ServiceSettings(
        environment="production",
        internal_token="a-real-token",
        redis_url="redis://conveyor:s3cr3t-pw@redis:6379/0",
    )
    assert settings.internal_token.get_secret_value() == "a-real-token"


# --- secrets from files ----------------------------------------------------------------------


def test_secret_read_from_a_file_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("token-from-file\n")
    monkeypatch.setenv("CONVEYOR_INTERNAL_TOKEN_FILE", str(secret))
    monkeypatch.setenv("CONVEYOR_ENVIRONMENT", "production")

    settings = ServiceSettings()

    assert settings.internal_token.get_secret_value() == "token-from-file"


def test_file_variables_apply_to_secret_fields_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "level").write_text("DEBUG")
    monkeypatch.setenv("CONVEYOR_LOG_LEVEL_FILE", str(tmp_path / "level"))
    assert ServiceSettings(environment="development").log_level == "INFO"


def test_a_secret_set_twice_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("one")
    monkeypatch.setenv("CONVEYOR_INTERNAL_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("CONVEYOR_INTERNAL_TOKEN", "two")
    with pytest.raises(SettingsError, match="set only one"):
        ServiceSettings()


def test_an_unreadable_secret_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="CONVEYOR_REDIS_PASSWORD_FILE: cannot read"):
        ServiceSettings(environment="development")


def test_secrets_dir_like_a_kubernetes_secret_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "CONVEYOR_INTERNAL_TOKEN").write_text("token-from-volume\n")
    (tmp_path / "CONVEYOR_DATABASE_URL").write_text("postgresql+asyncpg://app:pw@db/app")
    monkeypatch.setenv("CONVEYOR_SECRETS_DIR", str(tmp_path))

    settings = ServiceSettings(environment="production")

    assert settings.internal_token.get_secret_value() == "token-from-volume"
    assert settings.database_url.get_secret_value() == "postgresql+asyncpg://app:pw@db/app"


def test_environment_wins_over_the_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "CONVEYOR_INTERNAL_TOKEN").write_text("from-volume")
    monkeypatch.setenv("CONVEYOR_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("CONVEYOR_INTERNAL_TOKEN", "from-env")
    assert ServiceSettings().internal_token.get_secret_value() == "from-env"


def test_a_missing_secrets_dir_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SECRETS_DIR", str(tmp_path / "not-mounted"))
    with pytest.raises(SettingsError, match="is not a directory"):
        ServiceSettings(environment="development")


def test_secrets_never_show_in_repr() -> None:
    settings = ServiceSettings(
        environment="production",
        internal_token="canary-token-1",
        redis_password="canary-password-2",
        redis_url="redis://u:canary-url-3@h/0",
    )
    text = repr(settings) + str(settings.model_dump())
    for canary in ("canary-token-1", "canary-password-2", "canary-url-3"):
        assert canary not in text


# --- Redis: ACL credentials --------------------------------------------------------------------


def test_dsn_is_the_url_without_separate_credentials() -> None:
    settings = RedisSettings(redis_url="redis://h:6380/2")
    assert settings.redis_dsn() == "redis://h:6380/2"


def test_username_and_password_are_folded_into_the_dsn_escaped() -> None:
    settings = RedisSettings(
        redis_url="redis://old:old-pw@h:6380/2", redis_username="conveyor", redis_password="p@ss:/w"
    )
    assert settings.redis_dsn() == "redis://conveyor:p%40ss%3A%2Fw@h:6380/2"


def test_password_alone_keeps_the_url_user() -> None:
    settings = RedisSettings(redis_url="redis://app@h/0", redis_password="pw")
    assert settings.redis_dsn() == "redis://app:pw@h/0"


def test_empty_credentials_mean_unset() -> None:
    settings = RedisSettings(redis_url="redis://h/0", redis_username="", redis_password="")
    assert settings.redis_username is None
    assert settings.redis_password is None
    assert settings.redis_dsn() == "redis://h/0"


def test_credentials_with_a_unix_socket_belong_in_the_url() -> None:
    with pytest.raises(ValidationError, match="unix socket"):
        RedisSettings(redis_url="unix:///run/redis.sock", redis_password="pw")


def test_other_schemes_are_refused() -> None:
    with pytest.raises(ValidationError, match="must start with redis://"):
        RedisSettings(redis_url="http://h:6379")


def test_client_kwargs_carry_name_and_timeouts_and_nothing_for_plain_redis() -> None:
    settings = RedisSettings(redis_url="redis://h/0", redis_socket_timeout=3.0)
    kwargs = settings.redis_client_kwargs(client_name="conveyor-x", health_check_interval=30)
    assert kwargs == {
        "client_name": "conveyor-x",
        "socket_timeout": 3.0,
        "socket_connect_timeout": 2.0,
        "health_check_interval": 30,
    }
    assert settings.celery_redis_ssl() is None


# --- Redis: TLS -----------------------------------------------------------------------------


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN PLACEHOLDER-----\n")
    return files


def test_tls_kwargs_for_redis_py(pem_files: dict[str, Path]) -> None:
    settings = RedisSettings(
        redis_url="rediss://h:6380/0",
        redis_tls_ca_file=pem_files["ca"],
        redis_tls_cert_file=pem_files["cert"],
        redis_tls_key_file=pem_files["key"],
    )
    assert settings.redis_tls
    assert settings.redis_client_kwargs(client_name="n") == {
        "client_name": "n",
        "socket_timeout": 5.0,
        "socket_connect_timeout": 2.0,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(pem_files["ca"]),
        "ssl_certfile": str(pem_files["cert"]),
        "ssl_keyfile": str(pem_files["key"]),
    }


def test_tls_options_for_celery_use_ssl_constants(pem_files: dict[str, Path]) -> None:
    settings = RedisSettings(redis_url="rediss://h:6380/0", redis_tls_ca_file=pem_files["ca"])
    assert settings.celery_redis_ssl() == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(pem_files["ca"]),
    }


def test_tls_without_verification_turns_hostname_checks_off() -> None:
    settings = RedisSettings(redis_url="rediss://h/0", redis_tls_verify="none")
    options = settings.celery_redis_ssl()
    assert options == {"ssl_cert_reqs": ssl.CERT_NONE, "ssl_check_hostname": False}


def test_tls_files_with_a_plain_url_are_refused(pem_files: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="is not rediss://"):
        RedisSettings(redis_url="redis://h/0", redis_tls_ca_file=pem_files["ca"])


def test_client_certificate_needs_its_key(pem_files: dict[str, Path]) -> None:
    with pytest.raises(ValidationError, match="go together"):
        RedisSettings(redis_url="rediss://h/0", redis_tls_cert_file=pem_files["cert"])


def test_missing_tls_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="is not a readable file"):
        RedisSettings(redis_url="rediss://h/0", redis_tls_ca_file=tmp_path / "nope.pem")


def test_tls_settings_from_the_environment(
    pem_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_REDIS_URL", "rediss://redis.internal:6380/0")
    monkeypatch.setenv("CONVEYOR_REDIS_USERNAME", "gateway")
    monkeypatch.setenv("CONVEYOR_REDIS_PASSWORD", "pw")
    monkeypatch.setenv("CONVEYOR_REDIS_TLS_CA_FILE", str(pem_files["ca"]))
    monkeypatch.setenv("CONVEYOR_REDIS_TLS_VERIFY", "optional")

    settings = RedisSettings()

    assert settings.redis_dsn() == "rediss://gateway:pw@redis.internal:6380/0"
    assert settings.redis_ssl_kwargs()["ssl_cert_reqs"] == "optional"
    assert isinstance(settings.redis_password, SecretStr)
