"""E-mail address syntax: a cheap, strict check of the addr-spec every way in accepts.

Why not ``email-validator``: it costs about 18.7 µs per address (measured baseline), and a
batch may carry 500 requests x 3 fields x 1000 addresses. This check is a compiled regex
(about 1 µs) and does no DNS. It is deliberately stricter than RFC 5321/6531:

* the local part must be a dot-atom (atext and single inner dots); quoted-string local parts
  (``"a b"@example.com``) are refused — real senders and recipients do not use them, and
  they complicate every later step (SMTP, logs, suppressions);
* non-ASCII characters (RFC 6531, SMTPUTF8) are allowed in both parts, but only letters,
  marks and digits: no non-ASCII spaces, symbols, controls or invisible format characters;
* the domain is a host name of at least two labels (``localhost`` and other single-label
  names are refused, as are domain literals ``[192.0.2.1]``), each label 1–63 characters
  of letters, digits and inner hyphens, the last label not all digits (no dotted quads);
  non-ASCII labels are allowed (they are IDNA-encoded on delivery) if their A-label fits
  in 63 octets;
* at most 64 octets of local part and 254 octets in all (UTF-8).
"""

from __future__ import annotations

import re
import unicodedata

MAX_ADDRESS_OCTETS = 254
MAX_LOCAL_OCTETS = 64
MAX_LABEL_OCTETS = 63

# atext of RFC 5322 §3.2.3; the hyphen is last so it needs no escaping.
_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_LDH = r"A-Za-z0-9"


def _compile(extra: str) -> re.Pattern[str]:
    """The addr-spec pattern, with ``extra`` characters added to atext and to labels."""
    # ``extra`` goes first in each class so that the literal hyphens stay last.
    atom = f"[{extra}{_ATEXT}]+"
    let_dig = f"[{extra}{_LDH}]"
    label = f"{let_dig}(?:[{extra}{_LDH}-]{{0,61}}{let_dig})?"
    # The final label may not be all digits: "a@192.0.2.1" is not a host name.
    local = rf"(?P<local>{atom}(?:\.{atom})*)"
    domain = rf"(?P<domain>(?:{label}\.)+(?![0-9]+\Z){label})"
    return re.compile(f"{local}@{domain}")


# Two patterns: the ASCII one answers nearly every call; the non-ASCII one admits any
# non-ASCII code point, which is then narrowed by _non_ascii_ok (re has no \p{L}).
_ASCII_ADDR = _compile("")
_UNICODE_ADDR = _compile("\u0080-\U0010ffff")

# Letters, marks (needed by many scripts) and digits.
_ALLOWED_CATEGORIES = frozenset("LMN")


def is_valid_email(addr: str) -> bool:
    """True if ``addr`` is an addr-spec Postroom accepts (see the module docstring)."""
    if len(addr) > MAX_ADDRESS_OCTETS:
        return False
    if addr.isascii():
        match = _ASCII_ADDR.fullmatch(addr)
        return match is not None and len(match["local"]) <= MAX_LOCAL_OCTETS
    return _is_valid_unicode(addr)


def _is_valid_unicode(addr: str) -> bool:
    """The SMTPUTF8 path: octet lengths, character classes and A-label lengths."""
    # Characters first: a lone surrogate would make the encode() below raise.
    match = _UNICODE_ADDR.fullmatch(addr)
    if match is None or not _non_ascii_ok(addr) or len(addr.encode()) > MAX_ADDRESS_OCTETS:
        return False
    if len(match["local"].encode()) > MAX_LOCAL_OCTETS:
        return False
    return all(_label_fits(label) for label in match["domain"].split("."))


def _non_ascii_ok(text: str) -> bool:
    """Every non-ASCII character is a letter, mark or digit."""
    return all(ch.isascii() or unicodedata.category(ch)[0] in _ALLOWED_CATEGORIES for ch in text)


def _label_fits(label: str) -> bool:
    """A non-ASCII label becomes ``xn--`` + punycode on the wire; that must fit 63 octets."""
    if label.isascii():
        return True
    return len(label.encode("punycode")) + 4 <= MAX_LABEL_OCTETS


def split_address(addr: str) -> tuple[str, str]:
    """Split an addr-spec into (local part, domain); the domain is lower-cased.

    The split is at the last ``@`` (valid addresses have exactly one). Raises
    ``ValueError`` when there is no ``@`` at all.
    """
    local, at, domain = addr.rpartition("@")
    if not at:
        raise ValueError(f"not an e-mail address: {addr!r}")
    return local, domain.lower()
