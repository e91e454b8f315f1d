"""A real coturn (Debian ``coturn``: ``turnserver``) for the tests, with the configuration
shipped in deploy/coturn/turnserver.conf (``use-auth-secret`` with a shared secret, TLS,
private peer ranges denied except the SFU's address), on the test's own addresses and ports
and with a self-signed test certificate."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from benches.server_process import free_port, terminate

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "classroom.test"
#: the coturn configuration operators are given (docs/operations.md)
SHIPPED_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "coturn" / "turnserver.conf"


def self_signed(folder: str, ip: str) -> tuple[str, str]:
    """A test certificate for ``ip`` (and the name turn.classroom.test): (cert, key) paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turn.classroom.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("turn.classroom.test"),
                x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class Coturn:
    """``turnserver`` on ``ip``: plain TURN on ``port`` (UDP and TCP) and TURN over TLS on
    ``tls_port``; peers in private ranges denied except ``allowed_peers``."""

    def __init__(self, ip: str, secret: str, *, tls_port: int | None = None,
                 allowed_peers: tuple[str, ...] = ()) -> None:
        if not os.path.exists(TURNSERVER):
            raise RuntimeError("no turnserver: apt-get install coturn (scripts/setup.sh "
                               "--test installs it)")
        self.ip = ip
        self.secret = secret
        self.port = free_port(ip)
        self.tls_port = tls_port or free_port(ip)
        self.allowed_peers = allowed_peers
        self.folder = tempfile.mkdtemp(prefix="sfu-coturn-")
        self.cert, self.key = self_signed(self.folder, ip)
        self.log_path = os.path.join(self.folder, "turn.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        """The shipped deploy/coturn/turnserver.conf, with this test's addresses, ports,
        certificate, secret and the SFU's address as the allowed peer."""
        mine = {"listening-port", "tls-listening-port", "cert", "pkey", "min-port",
                "max-port", "realm"}
        lines = [line for line in SHIPPED_CONFIG.read_text().splitlines()
                 if line.strip() and not line.startswith("#")
                 and line.split("=", 1)[0] not in mine]
        lines += [
            f"listening-ip={self.ip}", f"relay-ip={self.ip}",
            f"listening-port={self.port}", f"tls-listening-port={self.tls_port}",
            "min-port=49160", "max-port=49400", f"realm={REALM}",
            f"static-auth-secret={self.secret}", f"cert={self.cert}", f"pkey={self.key}",
            f"pidfile={os.path.join(self.folder, 'turn.pid')}",
            f"log-file={self.log_path}", "simple-log", "verbose",
        ]
        lines += [f"allowed-peer-ip={p}" for p in self.allowed_peers]
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Coturn:
        path = os.path.join(self.folder, "turnserver.conf")
        with open(path, "w") as f:
            f.write(self.config())
        self.proc = subprocess.Popen([TURNSERVER, "-c", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection((self.ip, self.tls_port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = self.log()
                    self.close()
                    raise RuntimeError("coturn did not start:\n" + log[-3000:]) from None
                time.sleep(0.05)
        return self

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
