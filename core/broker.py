"""A private Mosquitto for the demo, the tests and the benchmarks.

The configuration is the one a production broker needs for at-least-once ingest
(see docs/broker.md): no cap on queued QoS 1 messages for an absent subscriber, a
large in-flight window, and persistence in a folder the broker can write. With
:class:`BrokerAccess` it refuses anonymous clients and applies a password file and an
ACL; with :class:`TlsFiles` it adds a TLS listener, as the production broker does.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# The settings that make Mosquitto safe for acknowledge-after-commit ingest.
# A finite but huge queue rather than 0 ("unlimited"): several 2.0.x releases mishandle 0.
AT_LEAST_ONCE_SETTINGS = """\
max_queued_messages 100000000
max_queued_bytes 0
max_inflight_messages 20000
max_inflight_bytes 0
upgrade_outgoing_qos false
persistent_client_expiration 14d
"""


@dataclass(frozen=True, slots=True)
class BrokerAccess:
    """No anonymous clients: accounts from ``password_file``, rights from ``acl_file``."""

    password_file: Path
    acl_file: Path

    def config_lines(self) -> list[str]:
        return [
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
        ]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The server certificate and key of a TLS listener."""

    certfile: Path
    keyfile: Path

    def listener_lines(self, port: int) -> list[str]:
        return [
            f"listener {port} 127.0.0.1",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


@dataclass
class MosquittoProcess:
    """A running private broker; ``stop()`` ends it, ``restart()`` keeps its persistence."""

    port: int
    data_dir: Path
    extra_config: str = ""
    persistence: bool = True
    access: BrokerAccess | None = None
    tls: TlsFiles | None = None
    tls_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def url_for(self, user: str, password: str, *, tls: bool = False) -> str:
        """The URL of an account, on the TLS listener with ``tls``."""
        if tls and self.tls_port is None:
            raise RuntimeError("the broker has no TLS listener")
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{user}:{password}@127.0.0.1:{port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the broker is not running")
        return self.process.pid

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            # The options below apply to every listener (as in deploy/mosquitto).
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls is not None:
            if self.tls_port is None:
                self.tls_port = free_port()
            lines += self.tls.listener_lines(self.tls_port)
        lines += self.access.config_lines() if self.access else ["allow_anonymous true"]
        lines += [
            AT_LEAST_ONCE_SETTINGS,
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            # Stay root: the broker must be able to write its persistence folder.
            lines.append("user root")
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config)

    def start(self, *, timeout_s: float = 10.0) -> MosquittoProcess:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError("mosquitto binary not found on PATH")
        self.write_config()
        with (self.data_dir / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(self.config_path)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        for port in (self.port, self.tls_port):
            if port is not None:
                wait_for_port("127.0.0.1", port, timeout_s=timeout_s, process=self.process)
        return self

    def stop(self, *, timeout_s: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: mosquitto saves its persistence file
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def wait_for_port(
    host: str, port: int, *, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host}:{port} not listening after {timeout_s}s") from None
            time.sleep(0.05)


def start_mosquitto(
    data_dir: Path,
    *,
    port: int | None = None,
    extra_config: str = "",
    access: BrokerAccess | None = None,
    tls: TlsFiles | None = None,
) -> MosquittoProcess:
    """Start a private broker on ``port`` (a free one by default).

    With ``access``: no anonymous clients, that password file and ACL. With ``tls``: a
    TLS listener on a free port as well (``tls_port``).
    """
    broker = MosquittoProcess(
        port=port or free_port(),
        data_dir=data_dir,
        extra_config=extra_config,
        access=access,
        tls=tls,
    )
    return broker.start()
