"""Classify SMTP replies into delivery outcomes and bounce categories (pure functions).

The same classifier serves the synchronous path (a reply read on our own SMTP session)
and, later, the asynchronous one (the ``Diagnostic-Code: smtp; 550 5.1.1 ...`` field of an
RFC 3464 DSN), so the input is only ``(code, text)``.

Two independent questions are answered:

- **Outcome** comes from the basic reply code alone (RFC 5321 §4.2.1): ``2yz`` delivered,
  ``4yz`` soft bounce (transient, retry), ``5yz`` hard bounce (permanent). When the
  enhanced code's class disagrees with the basic code, the basic code wins: it is the one
  every MTA acts on, and RFC 3463 §2 requires the two to agree anyway. Anything else
  (``1yz``, ``3yz`` where a final reply was due, garbage) is treated as transient.
- **Category** comes from the RFC 3463 enhanced status code when there is one
  (``class.subject.detail``, registry in RFC 5248 / IANA), refined by keywords where
  operators overload a generic code, and from keywords plus the basic code when there is
  none. Categories drive policy elsewhere: only ``bad_mailbox`` and ``bad_domain`` are
  properties of the *recipient*; ``spam_block``, ``policy`` and ``authentication`` are
  almost always about the *sender* and must never suppress a recipient.

Deliberate choices:

- ``X.1.10`` is ``bad_mailbox``: RFC 7505 registered it as "Recipient address has null
  MX", but Exchange Online sends ``550 5.1.10 RESOLVER.ADR.RecipientNotFound`` for unknown
  users, which is by far the more common sighting. Only a text mentioning a null MX makes
  it ``bad_domain``.
- ``X.2.2`` mailbox full is ``mailbox_full`` even on a ``552``: the outcome stays a hard
  bounce, but the category lets policy treat it like a soft one (suppress only after
  repeated occurrences), which is what large senders do.
- ``X.6.x`` (content/media, e.g. RFC 6531 ``X.6.7`` non-ASCII address not permitted) is
  ``protocol``: it means the two ends lack a common capability.
- Local failures (connection refused, timeouts, dropped connections) are classified as a
  ``451`` per RFC 5321 §3.8 by :func:`classify_failure`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"
    SOFT_BOUNCE = "soft_bounce"
    HARD_BOUNCE = "hard_bounce"


class BounceCategory(StrEnum):
    BAD_MAILBOX = "bad_mailbox"
    BAD_DOMAIN = "bad_domain"
    MAILBOX_FULL = "mailbox_full"
    SPAM_BLOCK = "spam_block"
    POLICY = "policy"
    AUTHENTICATION = "authentication"
    DNS = "dns"
    NETWORK = "network"
    PROTOCOL = "protocol"
    OTHER = "other"


# Only these say something about the address itself; every other category is about the
# message, the sender or the path, and never suppresses a recipient.
RECIPIENT_CATEGORIES = frozenset({BounceCategory.BAD_MAILBOX, BounceCategory.BAD_DOMAIN})


@dataclass(frozen=True)
class Classification:
    outcome: Outcome
    category: BounceCategory | None
    code: int
    enhanced: str | None
    text: str

    @property
    def is_permanent(self) -> bool:
        return self.outcome is Outcome.HARD_BOUNCE

    @property
    def recipient_fault(self) -> bool:
        """The failure is a property of the recipient address (suppress it when permanent)."""
        return self.category in RECIPIENT_CATEGORIES

    def __str__(self) -> str:
        return f"{self.code} {self.text}" if self.text else str(self.code)


# "5.1.1", "#5.1.1" (Exchange), optionally after "smtp;" (DSN Diagnostic-Code) and after
# the basic code itself ("550-5.1.1" / "550 5.1.1" when a raw reply line is passed).
# RFC 3463 §2: subject is 1-3 digits, detail 1-3 digits.
_ENHANCED = re.compile(
    r"^\s*(?:smtp\s*;\s*)?(?:\d{3}[\s-]+)?#?(?P<cls>[245])\.(?P<subject>\d{1,3})\.(?P<detail>\d{1,3})\b",
    re.IGNORECASE,
)
# qmail puts it at the end instead: "... allowed rcpthosts (#5.7.1)".
_TRAILING_ENHANCED = re.compile(
    r"\(#(?P<cls>[245])\.(?P<subject>\d{1,3})\.(?P<detail>\d{1,3})\)\s*$"
)
_LEADING_CODE = re.compile(r"^\s*(?:smtp\s*;\s*)?\d{3}(?:[\s-]+|$)", re.IGNORECASE)


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Order of the checks below matters; see _by_keywords.
_STRONG_SPAM = _words(
    r"\bspam",
    r"spamhaus",
    r"spamcop",
    r"barracuda",
    r"black\s?list",
    r"block\s?list",
    r"deny\s?list",
    r"\b(?:dns)?rbl\b",
    r"\bdnsbl\b",
    r"reputation",
    r"unsolicited",
    r"\bjunk\b",
    r"complaints?\b",
    r"\[TSS?\d+\]",  # Yahoo/AOL deferral codes: volume, complaints, reputation
)
_AUTH = _words(
    r"\bdmarc\b",
    r"\bspf\b",
    r"\bdkim\b",
    r"unauthenticated",
    r"sender policy framework",
    r"authentication (?:information|checks?)",
)
_WEAK_SPAM = _words(r"\bblocked\b", r"\blisted\b", r"\bblocking\b")
_MAILBOX_FULL = _words(
    r"quota",
    r"mailbox (?:is )?full",
    r"full mailbox",
    r"mailbox[^.;]{0,30}\bfull\b",
    r"exceeded storage allocation",
    r"out of (?:disk )?space for (?:this )?(?:user|mailbox)",
)
_BAD_DOMAIN = _words(
    r"\b(?:host|domain)\b(?: or domain)?(?: name)? not found",
    r"domain[^.;]{0,30}(?:does not|doesn't) exist",
    r"no such domain",
    r"non-?existent ?domain",
    r"unrouteable",
    r"unroutable",
    r"name service error",
    r"\bnull mx\b",
    r"(?:illegal|invalid) (?:host|domain)",
    r"domain (?:is )?not reachable",
    r"no mx records? (?:found|for)",
    r"indicated no smtp service",
    r"(?:host|domain) does not accept (?:e-?)?mail",
)
_BAD_MAILBOX = _words(
    r"user unknown",
    r"unknown user",
    r"no such (?:user|recipient|mailbox|account|address)",
    r"unknown (?:recipient|mailbox|address)",
    r"recipient unknown",
    r"invalid (?:recipient|mailbox|user)",
    r"(?:recipient|user|mailbox|address|account) not found",
    r"(?:recipient|user|mailbox|address|account)[^.;]{0,40}(?:does not|doesn't) exist",
    r"(?:does not|doesn't) have an? [^;]{0,30}account",
    r"not a valid (?:mailbox|recipient|user)",
    r"(?:mailbox|account) (?:is )?(?:disabled|inactive|deactivated|suspended)",
    r"no mailbox",
    r"not listed in (?:the )?(?:domino directory|public name)",
)
_MAILBOX_UNAVAILABLE = _words(r"mailbox (?:is )?unavailable")
_NULL_MX = _words(r"\bnull mx\b")
_SIZE = _words(r"\bsize\b", r"too (?:large|big)", r"exceeds")
_DNS = _words(r"\bdns\b", r"\bptr\b", r"reverse (?:dns|lookup)", r"\brdns\b")
_NETWORK = _words(
    r"timed? ?out",
    r"connection (?:refused|reset|closed|lost|dropped)",
    r"network is unreachable",
    r"no route to host",
)
_POLICY = _words(
    r"too many",
    r"rate limit",
    r"throttl",
    r"relay(?:ing)? (?:denied|not permitted|access denied)",
    r"not permitted",
    r"policy",
    r"at a rate",
)
_SENDER = _words(r"sender address rejected", r"\bsender\b[^.;]{0,30}\b(?:rejected|denied)")
# Microsoft directory-based edge blocking: "550 5.4.1 Recipient address rejected: Access
# denied" is documented as "the recipient does not exist", despite the X.4 subject.
_DBEB = _words(r"recipient address rejected")

# RFC 7372 email authentication codes, RFC 7505 X.7.27 (sender has null MX).
_AUTH_DETAILS = frozenset({20, 21, 22, 23, 24, 26, 27})


def _outcome(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.DELIVERED
    if 500 <= code < 600:
        return Outcome.HARD_BOUNCE
    # 4yz, and anything that is not a valid final reply: retrying is the safe reading.
    return Outcome.SOFT_BOUNCE


def _security_category(detail: int, text: str) -> BounceCategory:
    """X.7.x: security or policy status. Never a property of the recipient."""
    if detail in _AUTH_DETAILS:
        return BounceCategory.AUTHENTICATION
    if detail == 25:  # RFC 7372: reverse DNS validation failed (our PTR record)
        return BounceCategory.DNS
    if detail == 28:  # IANA: mail flood detected (Gmail's rate-of-unsolicited-mail reply)
        return BounceCategory.SPAM_BLOCK
    # "unsolicited mail from your SPF domain" is about spam, not SPF: strong spam words
    # beat authentication words; a bare "blocked" does not.
    if _STRONG_SPAM.search(text):
        return BounceCategory.SPAM_BLOCK
    if _AUTH.search(text):
        return BounceCategory.AUTHENTICATION
    if _WEAK_SPAM.search(text):
        return BounceCategory.SPAM_BLOCK
    return BounceCategory.POLICY


def _addressing_category(detail: int, text: str) -> BounceCategory:
    """X.1.x: addressing status."""
    if detail in (7, 8) or _SENDER.search(text):  # bad sender address/system: our side
        return BounceCategory.POLICY
    # Some servers overload X.1.x for blocks of the *sender* ("5.1.3 ... Spamhaus",
    # "5.1.0 ... not allowed to send per its SPF record"): never the recipient's fault.
    if _STRONG_SPAM.search(text):
        return BounceCategory.SPAM_BLOCK
    if _AUTH.search(text):
        return BounceCategory.AUTHENTICATION
    if detail == 2 or (detail == 10 and _NULL_MX.search(text)):
        return BounceCategory.BAD_DOMAIN
    if detail in (0, 1, 3, 4, 6, 10):
        return BounceCategory.BAD_MAILBOX
    return BounceCategory.OTHER


def _mailbox_category(detail: int, text: str, code: int) -> BounceCategory:
    """X.2.x: mailbox status."""
    if detail == 1:  # mailbox disabled, not accepting messages
        # Gmail also answers 5.2.1 when a mailbox receives mail too fast.
        return BounceCategory.POLICY if _POLICY.search(text) else BounceCategory.BAD_MAILBOX
    if detail == 2:
        return BounceCategory.MAILBOX_FULL
    return _by_keywords(text, code) or BounceCategory.OTHER


def _network_category(detail: int, text: str) -> BounceCategory:
    """X.4.x: network and routing status."""
    if detail == 1 and _DBEB.search(text):
        return BounceCategory.BAD_MAILBOX
    if _BAD_DOMAIN.search(text):
        return BounceCategory.BAD_DOMAIN
    if detail in (3, 4):  # directory server failure, unable to route
        return BounceCategory.DNS
    return BounceCategory.NETWORK


def _by_enhanced(subject: int, detail: int, text: str, code: int) -> BounceCategory:
    if subject == 7:
        return _security_category(detail, text)
    if subject == 1:
        return _addressing_category(detail, text)
    if subject == 2:
        return _mailbox_category(detail, text, code)
    if detail == 0:
        # "X.Y.0 other or undefined" codes carry no information; many servers put a
        # precise explanation in the text instead ("550 5.0.0 User unknown").
        keyword = _by_keywords(text, code)
        if keyword is not None:
            return keyword
    if subject == 4:
        return _network_category(detail, text)
    if subject in (5, 6):
        return BounceCategory.PROTOCOL
    return BounceCategory.OTHER


def _by_keywords(text: str, code: int) -> BounceCategory | None:
    """Category from the reply text alone, most specific evidence first."""
    if _STRONG_SPAM.search(text):
        return BounceCategory.SPAM_BLOCK
    if _AUTH.search(text):
        return BounceCategory.AUTHENTICATION
    if _MAILBOX_FULL.search(text):
        return BounceCategory.MAILBOX_FULL
    if _BAD_DOMAIN.search(text):
        return BounceCategory.BAD_DOMAIN
    if _BAD_MAILBOX.search(text):
        return BounceCategory.BAD_MAILBOX
    # RFC 5321's own text for 550; Outlook.com says it ("550 5.5.0 ... mailbox
    # unavailable") for unknown users. On a 450 it means "busy", so only with 550.
    if code == 550 and _MAILBOX_UNAVAILABLE.search(text):
        return BounceCategory.BAD_MAILBOX
    if _WEAK_SPAM.search(text):
        return BounceCategory.SPAM_BLOCK
    if _DNS.search(text):
        return BounceCategory.DNS
    if _NETWORK.search(text):
        return BounceCategory.NETWORK
    if _POLICY.search(text):
        return BounceCategory.POLICY
    return None


def _by_basic_code(code: int, text: str) -> BounceCategory:
    """Last resort: what RFC 5321 §4.2.2 says the basic code means."""
    if code in (551, 553):  # user not local; mailbox name not allowed
        return BounceCategory.BAD_MAILBOX
    if code == 552:  # exceeded storage allocation, unless it is about message size
        return BounceCategory.OTHER if _SIZE.search(text) else BounceCategory.MAILBOX_FULL
    if code == 421:  # service not available, closing channel
        return BounceCategory.NETWORK
    if code in (530, 534, 535, 538):  # RFC 4954: submission auth, not recipient related
        return BounceCategory.POLICY
    if code in (500, 501, 502, 503, 504, 555):
        return BounceCategory.PROTOCOL
    return BounceCategory.OTHER


def parse_enhanced(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of ``text`` ("5.1.1"), if any."""
    match = _ENHANCED.match(text) or _TRAILING_ENHANCED.search(text)
    if match is None:
        return None
    return f"{match['cls']}.{int(match['subject'])}.{int(match['detail'])}"


def _clean_text(text: str) -> str:
    """Drop a leading "smtp;" and repeated basic code so the stored text reads naturally."""
    return _LEADING_CODE.sub("", text, count=1).strip()


def classify_reply(code: int, text: str) -> Classification:
    """Classify the final reply to a command (or a DSN's diagnostic code)."""
    outcome = _outcome(code)
    enhanced = parse_enhanced(text)
    clean = _clean_text(text)
    if outcome is Outcome.DELIVERED:
        return Classification(outcome, None, code, enhanced, clean)
    if enhanced is not None:
        _, subject, detail = (int(part) for part in enhanced.split("."))
        category = _by_enhanced(subject, detail, clean, code)
    else:
        category = _by_keywords(clean, code) or _by_basic_code(code, clean)
    return Classification(outcome, category, code, enhanced, clean)


# RFC 3463: X.4.1 "No answer from host", X.4.2 "Bad connection", X.4.7 "Delivery time
# expired"; everything else a local failure can be is X.4.0.
_FAILURE_ENHANCED = {
    "connect": "4.4.1",
    "connect_timeout": "4.4.1",
    "timeout": "4.4.2",
    "disconnect": "4.4.2",
    "tls": "4.4.2",
    "expired": "4.4.7",
}


def classify_failure(exc_kind: str, text: str) -> Classification:
    """Classify a failure without a reply: connection errors, timeouts, drops.

    RFC 5321 §3.8: a dropped connection or timeout is treated as a ``451`` temporary
    failure, so the outcome is always a soft bounce in the ``network`` category.
    ``exc_kind`` is one of ``connect``, ``connect_timeout``, ``timeout``, ``disconnect``,
    ``tls``, ``expired``; anything else maps to ``4.4.0``.
    """
    enhanced = _FAILURE_ENHANCED.get(exc_kind, "4.4.0")
    return Classification(Outcome.SOFT_BOUNCE, BounceCategory.NETWORK, 451, enhanced, text)


# --- asynchronous reports (RFC 3464 DSNs, non-standard bounces) ---------------------------

_DSN_TYPE = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")  # "smtp; ", "X-Postfix; "
_BASIC = re.compile(r"^\s*(?P<code>[245]\d\d)(?:[\s-]|$)")
_STATUS = re.compile(r"^\s*(?P<cls>[245])\.(?P<subject>\d{1,3})\.(?P<detail>\d{1,3})")


def _code_for(enhanced: str | None, action: str) -> int:
    """A basic reply code when a report gives none: from the status class, else the action."""
    if enhanced is not None:
        return {"2": 250, "4": 450, "5": 550}[enhanced[0]]
    return 450 if action == "delayed" else 550


def classify_dsn(
    status: str, diagnostic: str, action: str = "failed", context: str = ""
) -> Classification:
    """Classify one recipient of a DSN from its ``Status``, ``Diagnostic-Code`` and ``Action``.

    The diagnostic code's reply text carries most of the evidence; the ``Status`` field
    is the enhanced code when the text has none (RFC 3464 makes ``Status`` mandatory, the
    diagnostic optional). ``delayed`` is never permanent, whatever the codes say. When
    neither field explains the failure, ``context`` (the report's human-readable text)
    is searched for keywords.
    """
    text = _DSN_TYPE.sub("", diagnostic, count=1).strip() if diagnostic else ""
    found = _STATUS.match(status or "")
    enhanced = f"{found['cls']}.{int(found['subject'])}.{int(found['detail'])}" if found else None
    basic = _BASIC.match(text)
    if parse_enhanced(text) is None and enhanced is not None:
        # Put the Status in front of the reply text so classify_reply sees it.
        rest = text[basic.end() :] if basic else text
        text = f"{basic['code'] + ' ' if basic else ''}{enhanced} {rest}".strip()
    code = int(basic["code"]) if basic else _code_for(enhanced or parse_enhanced(text), action)
    if action == "delayed" and code >= 500:
        code = 450
    result = classify_reply(code, text)
    if result.outcome is not Outcome.DELIVERED and context and result.category in _VAGUE:
        better = _by_keywords(context, code)
        if better is not None:
            return Classification(result.outcome, better, code, result.enhanced, result.text)
    return result


def classify_text(reply: str | None, context: str) -> Classification:
    """Classify a non-standard bounce: the reply it quotes, else the words around it."""
    if reply:
        basic = _BASIC.match(reply)
        enhanced = parse_enhanced(reply)
        if basic is None and enhanced is None:
            found = _ENHANCED_ANYWHERE.search(reply)
            enhanced = found.group(0).lstrip("#") if found else None
        return classify_dsn(enhanced or "", reply, "failed", context)
    category = _by_keywords(context[:4000], 550) or BounceCategory.OTHER
    return Classification(Outcome.HARD_BOUNCE, category, 550, None, "")


# Categories that say little: the report's own words may say more.
_VAGUE = frozenset({None, BounceCategory.OTHER, BounceCategory.PROTOCOL})
_ENHANCED_ANYWHERE = re.compile(r"#?[245]\.\d{1,3}\.\d{1,3}")
