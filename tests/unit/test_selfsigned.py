"""The SMTP listeners' self-signed certificate: made once, private, reused, renewed."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from postroom.cli import selfsigned

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_made_private_and_usable_by_a_tls_server(tmp_path: Path) -> None:
    pem = selfsigned.ensure(tmp_path / "data", "mail.postroom.test", NOW)
    assert pem.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem, pem)  # key and certificate in the one file
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "mail.postroom.test"]
    assert certificate.not_valid_after_utc - NOW > timedelta(days=3000)
    assert [p.name for p in (tmp_path / "data").iterdir()] == [selfsigned.PEM_FILE]


def test_reused_until_it_nears_its_end(tmp_path: Path) -> None:
    pem = selfsigned.ensure(tmp_path, "localhost", NOW)
    made = pem.read_bytes()
    assert selfsigned.ensure(tmp_path, "localhost", NOW + timedelta(days=3000)).read_bytes() == made
    late = NOW + timedelta(days=selfsigned.VALID_DAYS - 10)
    assert selfsigned.ensure(tmp_path, "localhost", late).read_bytes() != made


def test_an_unreadable_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / selfsigned.PEM_FILE).write_text("not a certificate")
    pem = selfsigned.ensure(tmp_path, "bad name!", NOW)
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
