"""DKIM signer (RFC 6376) for rsa-sha256 and ed25519-sha256 (RFC 8463), on ``cryptography``.

Why our own: dkimpy does RSA in pure Python and re-parses the PEM key on every call, which
caps it at ~160 RSA-2048 signatures/s per core; ``cryptography`` signs in C, about 20x
faster (perf-baselines §4, ``bench/dkim.py``). The module is pure: no DNS, no files, no
clock. ``cryptography`` releases the GIL while it signs, so callers can spread signing over
a thread pool and scale nearly linearly with cores; the canonicalization and hashing done
here (tens of µs for a 5 KB message) hold it.

Documented choices:

* Canonicalization is relaxed/relaxed; the whole body is signed (no ``l=``); ``i=`` is left
  to its default (``@`` + ``d=``); ``t=`` appears only when a timestamp is given; no ``x=``.
* ``h=`` lists, in :data:`DEFAULT_SIGNED_HEADERS` order (or the caller's ``headers``), each
  instance of those fields present in the message. Instances of a repeated field are signed
  bottom-up (RFC 6376 §5.4.2), as verifiers select them. ``From`` is required; it and the
  other fields of :data:`OVERSIGNED` (To, Cc, Reply-To, Subject, Date, Message-ID) are
  *oversigned* when present: listed once more than they occur, so a copy added later
  (above or below) breaks the signature. Names in ``h=`` are lowercase.
* One DKIM-Signature per key, each covering the message only (not the other signatures).
  RSA signatures go above Ed25519 ones (same-algorithm keys keep the caller's order): some
  verifiers evaluate only the topmost signature (dkimpy's ``dkim.verify`` does), and not all
  of them know ed25519-sha256 yet.
* Input is CRLF only: a bare LF raises ``ValueError`` (converting silently would sign bytes
  other than those relayed). The header block ends at the first empty line; a message
  without one is all header, with an empty body. A message not ending in CRLF gets one
  appended in the output, as SMTP needs anyway (RFC 5321 §4.1.1.4: the CRLF of the final
  CRLF.CRLF ends the last line): the bytes signed are the bytes delivered, and verifiers
  that read trailing white space on an unterminated last line differently cannot disagree.
* A header line that is neither a field nor a continuation raises ``ValueError``; so does a
  message without a From field.
* The DKIM-Signature header is folded to lines of at most 78 characters: between tags,
  after the colons of ``h=`` and inside ``b=`` (FWS is allowed there, §3.5). Only a d= or
  s= tag too long for a line of its own (over 75 characters) makes a longer line.
* For the header hash, the signature header with an empty ``b=`` is canonicalized relaxed
  and hashed without a trailing CRLF (§3.7). Ed25519 signs the SHA-256 digest of that hash
  input (RFC 8463 §3); RSA signs it with PKCS#1 v1.5 and SHA-256.
* :func:`public_record` gives ``p=`` as SubjectPublicKeyInfo DER for RSA (what every signer
  publishes) and as the raw 32-byte key for Ed25519 (RFC 8463 §4). An RSA-2048 record is
  longer than 255 octets: the DNS layer splits it into several TXT character-strings.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "DEFAULT_SIGNED_HEADERS",
    "DkimKey",
    "generate_ed25519",
    "generate_rsa",
    "load_private_pem",
    "private_pem",
    "public_record",
    "relaxed_body",
    "relaxed_headers",
    "sign",
]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
PrivateKey = rsa.RSAPrivateKey | Ed25519PrivateKey
_Unit = tuple[str, str]  # a piece of the DKIM-Signature value and the separator before it

#: Signed when present, in this order: the originator and recipient fields, the fields a
#: reader sees or threads by, the MIME fields that say how to read the body, and the list
#: fields of RFC 2369/2919/8058 (List-Unsubscribe-Post must be signed for one-click
#: unsubscribe) plus Feedback-ID (Gmail's feedback loop). Trace and X- fields are not signed.
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "Sender",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "List-Help",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "In-Reply-To",
    "References",
    "Feedback-ID",
)

#: Fields signed once more than they occur (when they occur): the ones a reader trusts
#: and a replay attack would add a second copy of. From is always present and oversigned.
OVERSIGNED = frozenset({"from", "to", "cc", "reply-to", "subject", "date", "message-id"})

_CRLF = b"\r\n"
_FOLD_AT = 78  # RFC 5322 2.1.1
_MIN_RSA_BITS = 1024  # RFC 8301 3.2: verifiers must reject smaller keys
_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 ftext
_WSP_RUN = re.compile(rb"[ \t]+")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"  # LDH, plus "_" seen in selectors
_LABELS = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()
# signing order, From (rank 0) first
_DEFAULT_RANKS = {h.lower().encode("ascii"): i for i, h in enumerate(DEFAULT_SIGNED_HEADERS)}


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A signing key and where its public half is published: ``<selector>._domainkey.<domain>``."""

    selector: str
    domain: str
    algorithm: Algorithm
    private_key: PrivateKey

    def __post_init__(self) -> None:
        for what, value in (("selector", self.selector), ("domain", self.domain)):
            if len(value) > 253 or not _LABELS.fullmatch(value):
                raise ValueError(f"not a valid DKIM {what} (ASCII labels): {value!r}")
        if self.algorithm == "rsa-sha256":
            if not isinstance(self.private_key, rsa.RSAPrivateKey):
                raise ValueError("rsa-sha256 needs an RSA private key")
            if self.private_key.key_size < _MIN_RSA_BITS:
                raise ValueError(f"RSA key too small: {self.private_key.key_size} bits")
        elif self.algorithm == "ed25519-sha256":
            if not isinstance(self.private_key, Ed25519PrivateKey):
                raise ValueError("ed25519-sha256 needs an Ed25519 private key")
        else:
            raise ValueError(f"unknown DKIM algorithm: {self.algorithm!r}")


# --- keys -------------------------------------------------------------------------------------


def generate_rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
    """A new RSA key (e = 65537); at least 1024 bits, 2048 recommended (RFC 8301)."""
    if bits < _MIN_RSA_BITS:
        raise ValueError(f"RSA keys for DKIM need at least {_MIN_RSA_BITS} bits")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (encryption at rest belongs to the key store)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_pem(data: bytes) -> PrivateKey:
    """Load an unencrypted PEM private key; anything but RSA or Ed25519 raises ValueError."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography's answer to an encrypted key without password
        raise ValueError(str(exc)) from exc
    if not isinstance(key, rsa.RSAPrivateKey | Ed25519PrivateKey):
        raise ValueError(f"not an RSA or Ed25519 key: {type(key).__name__}")
    return key


def public_record(key: PrivateKey | rsa.RSAPublicKey | Ed25519PublicKey) -> str:
    """The DNS TXT value publishing ``key``'s public half (``v=DKIM1; k=...; p=...``)."""
    public = key.public_key() if isinstance(key, PrivateKey) else key
    if isinstance(public, rsa.RSAPublicKey):
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"


# --- canonicalization (RFC 6376 §3.4.2, §3.4.4) -----------------------------------------------


def relaxed_headers(block: bytes) -> bytes:
    """Relaxed canonical form of a header block (fields ending in CRLF), field by field."""
    return b"".join(_relaxed_field(name, value) for name, value in _parse_fields(block))


def relaxed_body(body: bytes) -> bytes:
    """Relaxed canonical body: WSP runs become one SP, none at line ends, no empty lines at
    the end; a non-empty body ends in CRLF and an empty one stays empty."""
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    if b" \r\n" in body:  # runs are single spaces now
        body = body.replace(b" \r\n", _CRLF)
    end = len(body)
    while body.endswith(_CRLF, 0, end):
        end -= 2
    return body[:end] + _CRLF if end else b""


def _relaxed_field(name: bytes, value: bytes) -> bytes:
    return _canonical(name.rstrip(b" \t").lower(), value)


def _canonical(lower_name: bytes, value: bytes) -> bytes:
    value = value.replace(_CRLF, b"")  # unfold
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return b"%s:%s\r\n" % (lower_name, value.strip(b" \t"))


def _parse_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """Split CRLF-terminated header lines into (name, value) with folds kept in the value."""
    fields: list[tuple[bytes, bytes]] = []
    lines = block.split(_CRLF)
    if lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise ValueError("the header block starts with a continuation line")
            name, value = fields[-1]
            fields[-1] = (name, value + _CRLF + line)
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name.rstrip(b" \t")):
            raise ValueError(f"not a header field: {line[:80]!r}")
        fields.append((name, value))
    return fields


# --- signing ----------------------------------------------------------------------------------


def sign(
    message: bytes,
    keys: Sequence[DkimKey],
    *,
    timestamp: int | None = None,
    headers: Sequence[str] | None = None,
) -> bytes:
    """Return ``message`` with one DKIM-Signature field per key prepended (RSA ones first).

    ``headers`` replaces :data:`DEFAULT_SIGNED_HEADERS`: the names to sign when present
    (any case); From is signed and oversigned whether listed or not. ``timestamp`` (Unix
    seconds) becomes ``t=``. Raises ``ValueError`` for no keys, a bare LF, a malformed
    header block or a missing From. Thread-safe; ``cryptography`` releases the GIL for the
    signing itself (most of an RSA call), so a thread pool multiplies throughput.
    """
    if not keys:
        raise ValueError("no DKIM key to sign with")
    if timestamp is not None and timestamp < 0:
        raise ValueError(f"negative timestamp: {timestamp}")
    if message.count(b"\n") != message.count(_CRLF):
        raise ValueError("the message has a bare LF: DKIM signing needs CRLF line endings")
    if not message.endswith(_CRLF):
        message += _CRLF
    if message.startswith(_CRLF):
        head, body = b"", message[2:]
    else:
        split = message.find(b"\r\n\r\n")
        head, body = (message, b"") if split < 0 else (message[: split + 2], message[split + 4 :])

    ranks = _DEFAULT_RANKS if headers is None else _ranks(headers)
    h_names, signed = _select(_parse_fields(head), ranks)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode("ascii")
    tags = _common_tags(h_names, body_hash, timestamp)
    ordered = sorted(keys, key=lambda k: k.algorithm != "rsa-sha256")  # stable: RSA first
    return b"".join(_signature(key, tags, signed) for key in ordered) + message


def _ranks(headers: Sequence[str]) -> dict[bytes, int]:
    ranks = {b"from": 0}
    for header in headers:
        name = header.strip().lower()
        if not name.isascii() or not _FIELD_NAME.fullmatch(name.encode("ascii")):
            raise ValueError(f"not a header name: {header!r}")
        ranks.setdefault(name.encode("ascii"), len(ranks))
    return ranks


def _select(fields: list[tuple[bytes, bytes]], ranks: dict[bytes, int]) -> tuple[list[str], bytes]:
    """The ``h=`` names and the canonical fields they select: names in rank order, the
    instances of each bottom-up (as verifiers select them), and From once more."""
    picked: list[tuple[int, int, bytes, bytes]] = []
    for i, (name, value) in enumerate(fields):
        lower = name.rstrip(b" \t").lower()
        rank = ranks.get(lower)
        if rank is not None:
            picked.append((rank, -i, lower, value))
    picked.sort()  # (rank, -position) is unique: the sort never compares the rest
    if not picked or picked[0][0] != 0:
        raise ValueError("the message has no From field, which DKIM must sign")
    h_names = [lower.decode("ascii") for _, _, lower, _ in picked]
    # Oversigned: one more name after each present field of OVERSIGNED selects nothing
    # now, so an instance added later (a second Subject or To prepended by a replayer)
    # breaks the signature instead of being shown to the reader.
    for signed in sorted(OVERSIGNED & set(h_names), key=h_names.index, reverse=True):
        last = len(h_names) - 1 - h_names[::-1].index(signed)
        h_names.insert(last + 1, signed)
    return h_names, b"".join(_canonical(lower, value) for _, _, lower, value in picked)


def _common_tags(h_names: list[str], body_hash: str, timestamp: int | None) -> list[_Unit]:
    """The fold units after ``s=``: each tag whole, ``h=`` cut after each of its colons."""
    units: list[_Unit] = [] if timestamp is None else [(" ", f"t={timestamp};")]
    last = len(h_names) - 1
    for i, name in enumerate(h_names):
        # the names after the first continue the tag value: no space, but FWS may go there
        text = ("h=" if i == 0 else "") + name + (";" if i == last else ":")
        units.append((" " if i == 0 else "", text))
    units.append((" ", f"bh={body_hash};"))
    return units


def _signature(key: DkimKey, tags: list[_Unit], signed: bytes) -> bytes:
    units: list[_Unit] = [
        (" ", "v=1;"),
        (" ", f"a={key.algorithm};"),
        (" ", "c=relaxed/relaxed;"),
        (" ", f"d={key.domain};"),
        (" ", f"s={key.selector};"),
        *tags,
        (" ", "b="),
    ]
    lines: list[str] = []
    line = "DKIM-Signature:"
    for sep, unit in units:
        # fold before a unit that would pass column 78, never right after the field name
        if line != "DKIM-Signature:" and len(line) + len(sep) + len(unit) > _FOLD_AT:
            lines.append(line)
            line, sep = "", " "
        line += sep + unit
    lines.append(line)
    prefix = "\r\n".join(lines)
    # the hash input ends with this field, b= empty, relaxed, without its CRLF (RFC 6376 3.7)
    data = signed + _relaxed_field(*_parse_fields(prefix.encode("ascii"))[0])[:-2]
    b64 = base64.b64encode(_raw_signature(key, data)).decode("ascii")
    room = max(_FOLD_AT - len(line), 0)
    step = _FOLD_AT - 1  # continuation lines start with a space
    chunks = [b64[:room], *(b64[i : i + step] for i in range(room, len(b64), step))]
    return (prefix + "\r\n ".join(chunks) + "\r\n").encode("ascii")


def _raw_signature(key: DkimKey, data: bytes) -> bytes:
    private = key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        return private.sign(data, _PKCS1V15, _SHA256)
    return private.sign(hashlib.sha256(data).digest())
