"""The SMTP listeners' self-signed certificate for the embedded default.

Submission offers AUTH only after TLS, so without a certificate a first ``postroom serve``
could not take a single message over SMTP. As Debian's Postfix does with its "snakeoil"
certificate, ``serve`` makes one on first start when none is configured: for localhost,
127.0.0.1 and ::1 (and the submission host name), key and certificate in one PEM file of
the data directory, mode 0600, reused by later starts and remade only when it nears its
end. Clients must not verify it (swaks does not unless told to); a real deployment gives
``--tls-cert/--tls-key`` or ``submission.tls_cert``.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

PEM_FILE = "smtp-selfsigned.pem"
VALID_DAYS = 3650
# Remade when fewer days than this remain, so a long-running install never serves an
# expired certificate after a restart.
RENEW_DAYS = 30
_ADDRESSES = ("127.0.0.1", "::1")


def ensure(data_dir: Path, hostname: str, now: datetime | None = None) -> Path:
    """The PEM file (key and certificate) in ``data_dir``, made or renewed when needed."""
    now = now or datetime.now(UTC)
    path = data_dir / PEM_FILE
    if path.exists() and not _expiring(path, now):
        return path
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(path, generate(hostname, now))
    return path


def generate(hostname: str, now: datetime) -> bytes:
    """A new RSA-2048 key and its self-signed certificate, as one PEM (key first)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if hostname and hostname != "localhost" and _is_dns_name(hostname):
        names.append(x509.DNSName(hostname))
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _ADDRESSES]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + certificate.public_bytes(serialization.Encoding.PEM)


def _expiring(path: Path, now: datetime) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return True  # unreadable: make a new one rather than fail every start
    return certificate.not_valid_after_utc - now < timedelta(days=RENEW_DAYS)


def _write_private(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` with mode 0600, replacing it in one step."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _is_dns_name(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63 and label.isascii() and label.replace("-", "").isalnum()
        for label in labels
    )
