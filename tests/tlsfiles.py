"""Throwaway TLS files for tests: a private CA (trustme) and a server certificate.

The certificate is for 127.0.0.1 and localhost; the CA, the server's chain and its key
are written as PEM files, for servers that load them from disk (``postroom serve
--tls-cert/--tls-key``, the submission listeners' settings).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path  # the server certificate's chain
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def make_tls(directory: Path) -> Tls:
    """Write a new CA and a server certificate signed by it into ``directory``."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = Tls(directory / "ca.pem", directory / "chain.pem", directory / "key.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    cert.private_key_pem.write_to_path(str(files.key))
    with files.cert.open("wb") as chain:
        for blob in cert.cert_chain_pems:
            chain.write(blob.bytes())
    return files
