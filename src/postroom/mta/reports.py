"""Read bounces, complaints and auto-replies that come back to the return-path domains.

Pure functions: bytes in, a :class:`Report` out. Nothing here knows about deliveries or
accounts; :mod:`postroom.services.bounces` ties a report to what was sent.

What is recognised, in order (the first match wins):

1. **Complaints.** RFC 5965 ARF (``message/feedback-report``), Microsoft JMRP
   (``X-HmXmrOriginalRecipient`` in the attached original), Amazon SES JSON
   notifications, and Apple Mail's ``X-Apple-Unsubscribe``. ``Feedback-Type: opt-out``
   is an unsubscription; ``auth-failure``/``dmarc`` reports are about the sender, not a
   recipient, and yield nothing to act on.
2. **RFC 3464 DSNs** (``message/delivery-status``, also when a provider pastes the fields
   into a text part): per recipient ``Action``, ``Status``, ``Diagnostic-Code`` and
   ``Remote-MTA``, classified by :func:`postroom.mta.classify.classify_dsn` — the same
   classifier the SMTP session uses for synchronous replies.
3. **RFC 3834 auto-replies** (vacation notices): recognised and ignored.
4. **Everything else from a mailer daemon**: the non-standard bounces of qmail, Exim,
   Gmail, Yahoo and friends. ``flufl.bounce`` finds the failed recipients; the SMTP reply
   quoted in the text (``550 5.1.1 …``) is classified like a DSN's diagnostic code.

A recipient's :attr:`RecipientReport.verdict` is the one policy question asked of the
parser: does this report prove the *address* is bad (``hard``: suppress it), or only that
this message failed (``soft``)? See ``docs/bounces.md`` for the taxonomy.
"""

from __future__ import annotations

import email
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from enum import StrEnum

from flufl.bounce import all_failures

from postroom.mta.classify import Classification, classify_dsn, classify_text

MAX_TEXT = 64 * 1024  # characters of human-readable text examined per report


class ReportKind(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    AUTO_REPLY = "auto_reply"
    OTHER = "other"  # success notices, sender-side auth reports, mail we cannot read


class Verdict(StrEnum):
    """What a report means for one recipient address (the corpus labels' vocabulary)."""

    HARD = "hard"  # the address is bad: suppress it
    SOFT = "soft"  # this message failed; the address may still be good
    COMPLAINT = "complaint"  # the recipient complained or unsubscribed: suppress it
    NONE = "none"  # nothing to act on


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's fate as the report tells it."""

    recipient: str
    action: str  # RFC 3464 Action: failed, delayed, delivered, relayed, expanded
    classification: Classification
    remote_mta: str = ""

    @property
    def verdict(self) -> Verdict:
        c = self.classification
        if self.action in ("delivered", "relayed", "expanded"):
            return Verdict.NONE
        if self.action == "failed" and c.is_permanent and c.recipient_fault:
            return Verdict.HARD
        return Verdict.SOFT

    @property
    def final(self) -> bool:
        """The message will not be tried again for this recipient."""
        return self.action == "failed"


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    recipients: tuple[RecipientReport, ...] = ()
    complainants: tuple[str, ...] = ()  # complaints and unsubscriptions
    feedback_type: str = ""
    user_agent: str = ""
    reporting_mta: str = ""
    # Facts about the original message, for tying the report to a delivery.
    original_message_id: str = ""
    original_return_path: str = ""
    original_headers: dict[str, str] = field(default_factory=dict)

    def verdicts(self) -> dict[str, Verdict]:
        """Recipient → verdict (used to measure the parser against a labelled corpus)."""
        if self.kind in (ReportKind.COMPLAINT, ReportKind.UNSUBSCRIBE):
            return dict.fromkeys(self.complainants, Verdict.COMPLAINT)
        return {r.recipient: r.verdict for r in self.recipients}

    @property
    def verdict(self) -> Verdict:
        """The report's overall verdict: the strongest of its recipients'."""
        if self.kind in (ReportKind.COMPLAINT, ReportKind.UNSUBSCRIBE):
            return Verdict.COMPLAINT
        found = {r.verdict for r in self.recipients}
        for verdict in (Verdict.HARD, Verdict.SOFT):
            if verdict in found:
                return verdict
        return Verdict.NONE


# --- entry point -------------------------------------------------------------------------


def parse_report(raw: bytes) -> Report:
    """Read one inbound message. Never raises on hostile input."""
    msg = email.message_from_bytes(raw)
    for reader in (_complaint, _dsn, _auto_reply, _plain_bounce):
        try:
            report = reader(msg)
        except Exception:  # noqa: BLE001  (hostile input: a reader that fails is no match)
            report = None
        if report is not None:
            return report
    return Report(ReportKind.OTHER)


# --- helpers -----------------------------------------------------------------------------


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


_ADDR_SPEC = re.compile(r"[^@\s<>\"(),;:]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def _address(value: str) -> str:
    """The addr-spec of a header or DSN address field ("rfc822; a@b", "<a@b>", "A <a@b>").

    Empty when the value is not a usable address (source routes, bare hosts, "@host").
    """
    if ";" in value:
        value = value.split(";", 1)[1]
    _, addr = parseaddr(value.strip())
    addr = addr.strip().strip("<>").strip().lower()
    return addr if _ADDR_SPEC.fullmatch(addr) else ""


def _parts(msg: Message) -> Iterator[Message]:
    """Every part, but not inside attached originals (their bodies are not the report)."""
    yield msg
    if msg.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
        return
    payload = msg.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _parts(part)


def _text_of(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        return ""
    if not isinstance(data, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _field_blocks(text: str) -> list[Message]:
    """RFC 3464 field groups (per-message, then per-recipient) from a block of text."""
    parser = HeaderParser()
    blocks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [parser.parsestr(block.strip() + "\n") for block in blocks if block.strip()]


def _original(msg: Message) -> Message | None:
    """The returned original message (or its headers), if the report carries it."""
    for part in _walk_all(msg):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind == "text/rfc822-headers":
            return HeaderParser().parsestr(_text_of(part))
    return None


def _walk_all(msg: Message) -> Iterator[Message]:
    yield msg
    payload = msg.get_payload()
    if isinstance(payload, list):
        for part in payload:
            if isinstance(part, Message):
                yield from _walk_all(part)


_INLINE_HEADER = re.compile(
    r"^(Message-ID|Return-Path|To|From|Subject):[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE
)


def _original_facts(msg: Message, text: str) -> dict[str, str]:
    """Message-ID, Return-Path and X- headers of the original, attached or pasted."""
    original = _original(msg)
    facts: dict[str, str] = {}
    if original is not None:
        for name, value in original.items():
            key = name.lower()
            if key in ("message-id", "return-path", "to", "from", "subject") or key.startswith(
                "x-"
            ):
                facts.setdefault(key, " ".join(str(value).split()))
    else:
        # qmail, Exim and friends paste the original below a marker line.
        cut = _CUT.search(text)
        if cut is not None:
            for match in _INLINE_HEADER.finditer(text[cut.end() :]):
                facts.setdefault(match[1].lower(), match[2].strip())
    return facts


def _with_original(report: Report, msg: Message, text: str) -> Report:
    facts = _original_facts(msg, text)
    return Report(
        report.kind,
        report.recipients,
        report.complainants,
        report.feedback_type,
        report.user_agent,
        report.reporting_mta,
        original_message_id=facts.get("message-id", ""),
        original_return_path=_address(facts.get("return-path", "")),
        original_headers=facts,
    )


def _human_text(msg: Message) -> str:
    """The report's own text parts, joined, bounded."""
    chunks = []
    for part in _parts(msg):
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, str):
            # A multipart whose boundary matches nothing: read it as plain text.
            chunks.append(payload)
        elif part.get_content_maintype() == "text" and part.get_content_type() != (
            "text/rfc822-headers"
        ):
            chunk = _text_of(part)
            if part.get_content_subtype() == "html":
                chunk = re.sub(r"<[^>]{0,2000}>", " ", chunk)
            chunks.append(chunk)
    return "\n".join(chunks)[:MAX_TEXT]


# --- complaints --------------------------------------------------------------------------

_NOT_COMPLAINTS = {"auth-failure", "dmarc"}


def _complaint(msg: Message) -> Report | None:
    for part in _walk_all(msg):
        if part.get_content_type() == "message/feedback-report":
            return _arf(msg, part)
    if _header(msg, "X-Apple-Unsubscribe").lower() == "true":
        sender = _address(_header(msg, "From"))
        return Report(ReportKind.UNSUBSCRIBE, (), (sender,) if sender else (), "opt-out")
    original = _original(msg)
    if original is not None and original.get("X-HmXmrOriginalRecipient"):
        rcpt = _address(_header(original, "X-HmXmrOriginalRecipient"))
        report = Report(ReportKind.COMPLAINT, (), (rcpt,) if rcpt else (), "abuse", "JMRP")
        return _with_original(report, msg, "")
    if msg.get("x-amz-sns-message-id") is not None:
        return _ses_notification(msg)
    return None


def _feedback_fields(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list):
        merged = Message()
        for block in payload:
            if isinstance(block, Message):
                for name, value in block.items():
                    merged[name] = value
        return merged
    return HeaderParser().parsestr(str(payload).strip() + "\n")


def _arf(msg: Message, part: Message) -> Report:
    fields = _feedback_fields(part)
    feedback = _header(fields, "Feedback-Type").lower() or "abuse"
    rcpts = [_address(v) for v in fields.get_all("Original-Rcpt-To", [])]
    original = _original(msg)
    if not any(rcpts) and original is not None:
        rcpts = [addr.lower() for _, addr in getaddresses(original.get_all("To", []))]
    # A redacted address (RFC 6590) is kept: the delivery, found through the return path,
    # names the real recipient.
    rcpts = [r for r in rcpts if "@" in r]
    if feedback in _NOT_COMPLAINTS:
        kind = ReportKind.OTHER
    elif feedback == "opt-out":
        kind = ReportKind.UNSUBSCRIBE
    else:
        kind = ReportKind.COMPLAINT
    report = Report(
        kind,
        (),
        tuple(dict.fromkeys(rcpts)),
        feedback,
        _header(fields, "User-Agent"),
        _header(fields, "Reporting-MTA"),
    )
    return _with_original(report, msg, "")


def _ses_notification(msg: Message) -> Report | None:
    """Amazon SES notifications relayed by SNS email: a JSON document in the body."""
    text = _human_text(msg)
    start = text.find("{")
    if start < 0:
        return None
    doc, _ = json.JSONDecoder(strict=False).raw_decode(text[start:])
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("Message"), str):  # an SNS envelope around the SES document
        doc = json.loads(doc["Message"], strict=False)
    kind = str(doc.get("notificationType") or doc.get("eventType") or "")
    if kind == "Complaint":
        complaint = doc.get("complaint") or {}
        rcpts = [
            str(r.get("emailAddress", "")).lower()
            for r in complaint.get("complainedRecipients", [])
        ]
        feedback = str(complaint.get("complaintFeedbackType") or "abuse")
        return Report(ReportKind.COMPLAINT, (), tuple(r for r in rcpts if r), feedback, "SES")
    if kind == "Bounce":
        bounce = doc.get("bounce") or {}
        return Report(ReportKind.BOUNCE, tuple(_ses_recipients(bounce)))
    if kind == "Delivery":
        delivery = doc.get("delivery") or {}
        done = [
            RecipientReport(str(r).lower(), "delivered", classify_dsn("2.0.0", "", "delivered"))
            for r in delivery.get("recipients", [])
        ]
        return Report(ReportKind.OTHER, tuple(done))
    return None


def _ses_recipients(bounce: dict[str, object]) -> Iterator[RecipientReport]:
    transient = bounce.get("bounceType") == "Transient"
    found = bounce.get("bouncedRecipients")
    for item in found if isinstance(found, list) else []:
        if not isinstance(item, dict):
            continue
        status = str(item.get("status") or ("4.0.0" if transient else "5.0.0"))
        diagnostic = str(item.get("diagnosticCode") or "")
        action = str(item.get("action") or "failed")
        yield RecipientReport(
            str(item.get("emailAddress", "")).lower(),
            action,
            classify_dsn(status, diagnostic, action),
        )


# --- RFC 3464 ----------------------------------------------------------------------------


def _dsn_blocks(msg: Message) -> list[Message] | None:
    for part in _parts(msg):
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            payload = part.get_payload()
            if isinstance(payload, list):
                return [p for p in payload if isinstance(p, Message)]
            return _field_blocks(str(payload))
    # Some gateways (Amazon WorkMail, Domino) paste the fields into the text instead, and
    # a forwarded bounce quotes them ("> Final-Recipient: …").
    text = re.sub(r"^(?:> ?)+", "", _human_text(msg), flags=re.MULTILINE)
    at = re.search(r"^Final-Recipient:", text, re.IGNORECASE | re.MULTILINE)
    if at is None:
        return None
    head = re.search(r"^(?:Reporting-MTA|Original-Envelope-Id):", text, re.IGNORECASE | re.M)
    start = head.start() if head is not None and head.start() < at.start() else at.start()
    return _field_blocks(text[start:])


def _dsn(msg: Message) -> Report | None:
    blocks = _dsn_blocks(msg)
    if blocks is None:
        return None
    text = _human_text(msg)
    reporting = ""
    recipients: list[RecipientReport] = []
    for block in blocks:
        if block.get("Reporting-MTA"):
            reporting = _address_free(_header(block, "Reporting-MTA"))
        rcpt = _address(_header(block, "Final-Recipient")) or _address(
            _header(block, "Original-Recipient")
        )
        if not rcpt and block.get("Final-Recipient"):
            # An unusable Final-Recipient ("@host"): the text names the address.
            rcpt = next(iter(_addresses_in(text, _address(_header(msg, "To")))), "")
        if not rcpt:
            continue
        action = _header(block, "Action").lower() or "failed"
        status = _header(block, "Status")
        diagnostic = _header(block, "Diagnostic-Code")
        if not diagnostic:
            # No Diagnostic-Code: the human part usually quotes the receiver's reply, and
            # some MTAs explain the status in a comment ("5.4.4 (Illegal host name)").
            diagnostic = _quoted_reply(text, rcpt) or (status if "(" in status else "")
        recipients.append(
            RecipientReport(
                rcpt,
                action,
                classify_dsn(status, diagnostic, action, context=text),
                _address_free(_header(block, "Remote-MTA")),
            )
        )
    if not recipients:
        return None
    report = Report(ReportKind.BOUNCE, tuple(recipients), reporting_mta=reporting)
    return _with_original(report, msg, text)


def _address_free(value: str) -> str:
    """A DSN MTA field without its type: "dns; mx.example.com" → "mx.example.com"."""
    return value.split(";", 1)[-1].strip().strip("[]")


# --- auto-replies (RFC 3834) -------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^(?:auto(?:matic)?[ -]?(?:reply|response|antwort)|out of (?:the )?office|away\b|"
    r"vacation|abwesen|r[ée]ponse automatique|absence)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"mailer-daemon|post_?master|mail delivery|mail administrator", re.I)


def _auto_reply(msg: Message) -> Report | None:
    if _DAEMON.search(_header(msg, "From")):
        return None
    auto = _header(msg, "Auto-Submitted").lower()
    if (
        (auto and auto != "no")
        or msg.get("X-Autoreply") is not None
        or msg.get("X-Autorespond") is not None
        or _header(msg, "Precedence").lower() == "auto_reply"
        or _AUTO_SUBJECT.match(_header(msg, "Subject"))
    ):
        return Report(ReportKind.AUTO_REPLY)
    return None


# --- non-standard bounces ----------------------------------------------------------------

# Where the returned original starts in a plain-text bounce.
_CUT = re.compile(
    r"^.{0,20}(?:below this line is a copy of the message|this is a copy of the message|"
    r"original message (?:follows|headers)|message headers follow|"
    r"-+ ?original message ?-+|undelivered message headers|"
    r"the headers of your message|returned mail follows|"
    r"-+ ?(?:the )?(?:original|returned) message)",
    re.IGNORECASE | re.MULTILINE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (?:status|fail|notification)|failure notice|returned mail|"
    r"mail delivery|could not be delivered|non-?delivery|delivery has failed|"
    r"nicht zustellbar|mail system error",
    re.IGNORECASE,
)


def _plain_bounce(msg: Message) -> Report | None:
    subject, sender = _header(msg, "Subject"), _header(msg, "From")
    failures = all_failures(msg)
    found = [a.decode("utf-8", "replace").lower() for group in failures for a in group]
    found = [a for a in found if re.fullmatch(r"[^@\s<>\"]+@[^@\s<>\"]+", a)]
    if not (found or _DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject)):
        return None
    text = _human_text(msg)
    cut = _CUT.search(text)
    body = text[: cut.start()] if cut is not None else text
    # flufl.bounce may also pick an address out of a quoted Received line; trust the ones
    # the bounce's own text names.
    found = [a for a in found if a in body.lower()] or found
    in_text = _addresses_in(body, exclude=_address(_header(msg, "To")))
    if in_text and in_text[0] not in found and not any(a in body.lower() for a in found):
        found = in_text
    if not found:
        found = in_text
    if not found:
        # The failed address is only in the returned original ("To:").
        to = _address(_original_facts(msg, text).get("to", ""))
        found = [to] if to else []
    if not found:
        return None
    recipients = []
    for rcpt in dict.fromkeys(found):
        reply = _quoted_reply(body, rcpt)
        classification = classify_text(reply, body)
        action = "delayed" if _DELAYED.search(body) and not _GAVE_UP.search(body) else "failed"
        recipients.append(RecipientReport(rcpt, action, classification))
    report = Report(ReportKind.BOUNCE, tuple(recipients))
    return _with_original(report, msg, text)


_DELAYED = re.compile(
    r"(?:will (?:continue|keep) (?:trying|to try)|has not (?:yet )?been delivered|"
    r"delivery (?:is )?delayed|still (?:be )?trying|will (?:be )?retr(?:y|ied))",
    re.IGNORECASE,
)
_GAVE_UP = re.compile(r"giv(?:e|en|ing) up|permanent|failed permanently", re.IGNORECASE)
_ADDR = re.compile(r"<?([A-Za-z0-9._%+=/'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})>?")


def _addresses_in(text: str, exclude: str) -> list[str]:
    rcpt_to = re.search(r"RCPT TO:\s*<?([^\s<>]+@[^\s<>]+)", text, re.IGNORECASE)
    if rcpt_to is not None:
        return [rcpt_to[1].lower()]
    out = []
    for match in _ADDR.finditer(text):
        addr = match[1].lower().rstrip(".")
        if addr != exclude and not _DAEMON.search(addr):
            out.append(addr)
    return out[:1]


# "550 5.1.1 <a@b>: …", "550-5.1.1 …", "#5.1.1", "5.1.1 …" or a bare "550 User unknown".
_REPLY_LINE = re.compile(
    r"(?<![\d.])(?:[245]\d\d[ -]#?[245]\.\d{1,3}\.\d{1,3}|#?[245]\.\d{1,3}\.\d{1,3}(?![\d.])|"
    r"[45]\d\d(?=[ \t]*-?[ \t]*[A-Za-z<]))",
)


def _quoted_reply(text: str, rcpt: str) -> str | None:
    """The receiver's reply quoted in ``text``, preferring one near ``rcpt``."""
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if _REPLY_LINE.search(line)]
    if not hits:
        return None
    near = [
        i
        for i in hits
        if rcpt and any(rcpt in line.lower() for line in lines[max(0, i - 8) : i + 3])
    ]
    i = (near or hits)[0]
    line = lines[i]
    start = _REPLY_LINE.search(line)
    assert start is not None
    reply = line[start.start() :].strip()
    # Continuation lines ("550-…" or indented) belong to the same reply.
    for follow in lines[i + 1 : i + 4]:
        if follow.strip() and (follow[:1].isspace() or re.match(r"[245]\d\d-", follow)):
            reply += " " + follow.strip()
        else:
            break
    return reply
