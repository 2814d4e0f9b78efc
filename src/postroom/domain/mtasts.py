"""MTA-STS (RFC 8461) records and policies: parsing and MX matching, pure.

- :func:`parse_txt` reads the ``_mta-sts.<domain>`` TXT answer (§3.1): records not
  starting with ``v=STSv1;`` are discarded; exactly one must remain and match the grammar
  (``v=STSv1; id=<1-32 alphanumerics>`` plus extensions); its ``id`` is returned.
- :func:`parse_policy` reads the policy body (§3.2) strictly: lines end in LF or CRLF;
  each is ``name: value`` with a case-sensitive name; ``version`` must be ``STSv1``,
  ``mode`` one of ``enforce``/``testing``/``none``, ``max_age`` 1–10 digits and at most
  31557600 (a year), ``mx`` (repeatable, required unless the mode is ``none``) a domain
  or ``*.`` + domain. Unknown fields are ignored when well-formed; a malformed line
  refuses the policy. For a repeated ``version``/``mode``/``max_age`` the first wins.
  The one leniency: empty lines are skipped (they carry nothing and are a common
  editing slip; refusing them would only downgrade the domain to opportunistic TLS).
- :meth:`Policy.allows_mx` matches an MX host name against the patterns (§4.1): exact,
  case-insensitive, trailing dot ignored; ``*.example.com`` matches exactly one
  left-most label, so ``mx1.example.com`` but neither ``example.com`` nor
  ``a.b.example.com``.

Fetching, caching and how delivery applies a policy are in :mod:`postroom.mta.mtasts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_AGE_LIMIT = 31_557_600  # RFC 8461 §3.2: "MUST be less than or equal to 31557600"

_TXT_PREFIX = re.compile(r"v=STSv1[ \t]*;")
_STS_SEP = re.compile(r"[ \t]*;[ \t]*")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}")
_TXT_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
# RFC 5321 Domain: sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str].
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_MX_PATTERN = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*", re.IGNORECASE)
# Extension values: no control characters, no leading or trailing white space.
_POLICY_EXT_VALUE = re.compile(
    r"[^\x00-\x1f\x7f \t](?:[^\x00-\x08\x0a-\x1f\x7f]*[^\x00-\x1f\x7f \t])?"
)


class PolicyError(ValueError):
    """The policy body is not a valid RFC 8461 policy."""


class Mode(StrEnum):
    """What a policy asks of senders (RFC 8461 §5)."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True)
class Policy:
    """A parsed policy, with the TXT ``id`` it was fetched under."""

    id: str
    mode: Mode
    mx: tuple[str, ...]  # lower-case patterns, "*." prefix kept
    max_age: int  # seconds

    def allows_mx(self, hostname: str) -> bool:
        """True when MX host ``hostname`` matches one of the policy's ``mx`` patterns."""
        host = hostname.rstrip(".").lower()
        return any(mx_matches(pattern, host) for pattern in self.mx)


def mx_matches(pattern: str, hostname: str) -> bool:
    """RFC 8461 §4.1 matching: exact, or ``*.`` standing for one whole left-most label."""
    pattern, host = pattern.rstrip(".").lower(), hostname.rstrip(".").lower()
    if not host or "*" in host:
        return False
    if not pattern.startswith("*."):
        return host == pattern
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == pattern[2:]


def parse_txt(records: list[str]) -> str | None:
    """The policy id of a ``_mta-sts`` TXT answer, or None when it announces no policy."""
    candidates = [record for record in records if _TXT_PREFIX.match(record)]
    if len(candidates) != 1:
        return None
    fields = _STS_SEP.split(candidates[0].rstrip(" \t"))[1:]
    if fields and fields[-1] == "":
        fields.pop()  # an optional trailing ";"
    policy_id: str | None = None
    for name, eq, value in (field.partition("=") for field in fields):
        if name == "id" and policy_id is None and _ID.fullmatch(value):
            policy_id = value
        elif not (eq and _EXT_NAME.fullmatch(name) and _TXT_EXT_VALUE.fullmatch(value)):
            return None
    return policy_id


def parse_policy(body: str, policy_id: str) -> Policy:
    """Parse a policy body (see the module docstring); raises :class:`PolicyError`."""
    fields: dict[str, str] = {}
    mx: list[str] = []
    for number, line in enumerate(body.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line:
            continue
        name, colon, value = line.partition(":")
        value = value.lstrip(" \t").rstrip(" \t")
        if not (colon and _EXT_NAME.fullmatch(name)):
            raise PolicyError(f"line {number}: not a 'name: value' field")
        if name == "mx":
            if not _MX_PATTERN.fullmatch(value):
                raise PolicyError(f"line {number}: invalid mx pattern {value!r}")
            mx.append(value.lower())
        elif name in ("version", "mode", "max_age"):
            fields.setdefault(name, value)
        elif not _POLICY_EXT_VALUE.fullmatch(value):
            raise PolicyError(f"line {number}: invalid value of {name!r}")
    return _policy(fields, mx, policy_id)


def _policy(fields: dict[str, str], mx: list[str], policy_id: str) -> Policy:
    if fields.get("version") != "STSv1":
        raise PolicyError(f"version must be STSv1, got {fields.get('version')!r}")
    try:
        mode = Mode(fields.get("mode", ""))
    except ValueError:
        raise PolicyError(f"invalid mode {fields.get('mode')!r}") from None
    max_age = fields.get("max_age", "")
    if not _MAX_AGE.fullmatch(max_age) or int(max_age) > MAX_AGE_LIMIT:
        raise PolicyError(f"invalid max_age {max_age!r}")
    if not mx and mode is not Mode.NONE:
        raise PolicyError("no mx pattern")
    return Policy(policy_id, mode, tuple(dict.fromkeys(mx)), int(max_age))
