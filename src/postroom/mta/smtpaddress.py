"""The common case of an SMTP command's address, read without the email header parser.

aiosmtpd reads the ``<address>`` of every ``MAIL FROM`` and ``RCPT TO`` with the stdlib's
RFC 5322 header parser (``email._header_value_parser.get_angle_addr``), and defines a
``Protocol`` class on each call: together a sixth of the submission listener's GIL time
under load (docs/benchmarks.md, F13). Nearly every client sends the plain form, a
dot-atom local part at a host name in angle brackets, which a regular expression reads
exactly; anything else (quoted local parts, address literals, comments, source routes,
no brackets) returns ``None`` and goes to aiosmtpd's parser, so what is accepted and
what it means do not change (tests/unit/test_smtpaddress.py checks the two agree).
"""

from __future__ import annotations

import re

# RFC 5322 atext, dot-atom local part; RFC 1035 labels (letters, digits, inner hyphens).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*)@({_LABEL}(?:\.{_LABEL})*)>")


def plain_address(arg: str) -> tuple[str, str, str] | None:
    """``(address, local part, rest)`` for ``<local@host>`` followed by nothing or by
    whitespace and parameters; ``None`` for any other form."""
    match = _PLAIN.match(arg)
    if match is None:
        return None
    tail = arg[match.end() :]
    rest = tail.lstrip(" \t")
    if rest and (len(rest) == len(tail) or rest[0] == "("):
        # Text glued to the '>' or a comment: the header parser's reading decides.
        return None
    local, host = match.group(1), match.group(2)
    return f"{local}@{host}", local, rest
