"""SMTP reply classification: a table of real-looking replies from the large providers.

The table is the contract: fix the classifier, never the expected values, unless the
expectation itself was wrong about what the provider means (cite why in the row).
"""

from __future__ import annotations

import pytest

from postroom.mta.classify import (
    BounceCategory,
    Classification,
    Outcome,
    classify_failure,
    classify_reply,
    parse_enhanced,
)

D, S, H = Outcome.DELIVERED, Outcome.SOFT_BOUNCE, Outcome.HARD_BOUNCE
C = BounceCategory

# (code, text, outcome, category)
TABLE: list[tuple[int, str, Outcome, BounceCategory | None]] = [
    # --- success
    (
        250,
        "2.0.0 OK  1700000000 a1-20020a05600c000000b0040e000000000si1234567wmb.123 - gsmtp",
        D,
        None,
    ),
    (250, "2.0.0 Ok: queued as 4T1abc2xyz", D, None),
    (250, "Requested mail action okay, completed: id=1MZCoa-1r0Y9k3xyz", D, None),
    (251, "2.1.5 User not local; will forward", D, None),
    # --- Gmail
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "5.1.1 double-checking the recipient's email address for typos or\n"
        "5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser - gsmtp",
        H,
        C.BAD_MAILBOX,
    ),
    (
        452,
        "4.2.2 The email account that you tried to reach is over quota. Please direct\n"
        "4.2.2 the recipient to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp",
        S,
        C.MAILBOX_FULL,
    ),
    (
        550,
        "5.2.1 The email account that you tried to reach is disabled. "
        "https://support.google.com/mail/?p=DisabledUser - gsmtp",
        H,
        C.BAD_MAILBOX,
    ),
    (
        421,
        "4.7.0 [203.0.113.5] Our system has detected an unusual rate of\n"
        "4.7.0 unsolicited mail originating from your IP address. To protect our\n"
        "4.7.0 users from spam, mail sent from your IP address has been temporarily\n"
        "4.7.0 rate limited. - gsmtp",
        S,
        C.SPAM_BLOCK,
    ),
    (
        550,
        "5.7.1 [203.0.113.5] Our system has detected that this message is\n"
        "5.7.1 likely unsolicited mail. To reduce the amount of spam sent to Gmail,\n"
        "5.7.1 this message has been blocked. - gsmtp",
        H,
        C.SPAM_BLOCK,
    ),
    (
        550,
        "5.7.26 This mail has been blocked because the sender is unauthenticated.\n"
        "5.7.26 Gmail requires all senders to authenticate with either SPF or DKIM.\n"
        "5.7.26 DMARC policy of example.com is reject - gsmtp",
        H,
        C.AUTHENTICATION,
    ),
    (
        421,
        "4.7.28 [203.0.113.5] Our system has detected an unusual rate of\n"
        "4.7.28 unsolicited mail originating from your SPF domain [example.com] - gsmtp",
        S,
        C.SPAM_BLOCK,
    ),
    (
        550,
        "5.7.25 [203.0.113.5] The IP address sending this message does not have a\n"
        "5.7.25 PTR record setup, or the corresponding forward DNS entry does not\n"
        "5.7.25 point to the sending IP. - gsmtp",
        H,
        C.DNS,
    ),
    (
        421,
        "4.7.0 This message does not have authentication information or fails to\n"
        "4.7.0 pass authentication checks (SPF or DKIM). - gsmtp",
        S,
        C.AUTHENTICATION,
    ),
    (
        552,
        "5.2.2 The email account that you tried to reach is over quota. - gsmtp",
        H,
        C.MAILBOX_FULL,
    ),
    (452, "4.5.3 Your message has too many recipients. - gsmtp", S, C.PROTOCOL),
    (552, "5.3.4 Your message exceeded Google's message size limits. - gsmtp", H, C.OTHER),
    # --- Microsoft (Outlook.com / Exchange Online / on-premises Exchange)
    (
        550,
        "5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact "
        "your Internet service provider since part of their network is on our block list "
        "(S3150). You can also refer your provider to http://mail.live.com/mail/"
        "troubleshooting.aspx#errors.",
        H,
        C.SPAM_BLOCK,
    ),
    (
        550,
        "5.4.1 Recipient address rejected: Access denied. "
        "[DM6NAM11FT012.eop-nam11.prod.protection.outlook.com]",
        H,
        C.BAD_MAILBOX,
    ),
    # Outlook.com's answer for an unknown hotmail/outlook address.
    (
        550,
        "5.5.0 Requested action not taken: mailbox unavailable (S2017062302). "
        "[AM0PR00MB0000.eurprd00.prod.outlook.com]",
        H,
        C.BAD_MAILBOX,
    ),
    (550, "#5.1.0 Address rejected", H, C.BAD_MAILBOX),
    (
        550,
        "5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
        H,
        C.POLICY,
    ),
    (
        550,
        "5.7.509 Access denied, sending domain example.com does not pass DMARC "
        "verification and has a DMARC policy of reject.",
        H,
        C.AUTHENTICATION,
    ),
    (451, "4.7.500 Server busy. Please try again later from [203.0.113.5]. (S77719)", S, C.POLICY),
    (554, "5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain", H, C.BAD_DOMAIN),
    (
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        H,
        C.BAD_MAILBOX,
    ),
    (550, "5.1.10 Recipient address has null MX", H, C.BAD_DOMAIN),
    # --- Yahoo / AOL
    (
        421,
        "4.7.0 [TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected "
        "volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/"
        "error-codes",
        S,
        C.SPAM_BLOCK,
    ),
    (
        553,
        "5.7.2 [TSS09] All messages from 203.0.113.5 will be permanently deferred; "
        "Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes",
        H,
        C.SPAM_BLOCK,
    ),
    (
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) "
        "[0] - mta1234.mail.gq1.yahoo.com",
        H,
        C.BAD_MAILBOX,
    ),
    (552, "1 Requested mail action aborted, mailbox not found", H, C.BAD_MAILBOX),
    (
        554,
        "5.7.9 Message not accepted for policy reasons.  See https://postmaster."
        "yahooinc.com/error-codes",
        H,
        C.POLICY,
    ),
    (
        550,
        "5.7.9 This mail has been blocked because the sender is unauthenticated. "
        "Yahoo requires all senders to authenticate with either SPF or DKIM.",
        H,
        C.AUTHENTICATION,
    ),
    # --- Postfix
    (
        550,
        "5.1.1 <x@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
        H,
        C.BAD_MAILBOX,
    ),
    (
        550,
        "5.1.1 <x@example.com>: Recipient address rejected: User unknown in local recipient table",
        H,
        C.BAD_MAILBOX,
    ),
    (
        450,
        "4.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found",
        S,
        C.BAD_DOMAIN,
    ),
    (451, "4.3.0 Temporary lookup failure", S, C.OTHER),
    (
        450,
        "4.7.1 <x@example.com>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.com.html",
        S,
        C.POLICY,
    ),
    (
        554,
        "5.7.1 Service unavailable; Client host [203.0.113.5] blocked using "
        "zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.5",
        H,
        C.SPAM_BLOCK,
    ),
    (554, "5.7.1 <x@example.com>: Relay access denied", H, C.POLICY),
    (450, "4.1.8 <bounce@nowhere.example>: Sender address rejected: Domain not found", S, C.POLICY),
    (552, "5.2.2 <x@example.com>: Recipient address rejected: Mailbox full", H, C.MAILBOX_FULL),
    (552, "5.3.4 Message size exceeds fixed limit", H, C.OTHER),
    (421, "4.4.2 mx.example.com Error: timeout exceeded", S, C.NETWORK),
    (452, "4.3.1 Insufficient system storage", S, C.OTHER),
    (503, "5.5.1 Error: need RCPT command", H, C.PROTOCOL),
    (550, "5.7.27 Sender address has null MX", H, C.AUTHENTICATION),
    # --- Exim
    (550, "Unrouteable address", H, C.BAD_DOMAIN),
    (550, "No Such User Here", H, C.BAD_MAILBOX),
    (550, "Requested action not taken: mailbox unavailable", H, C.BAD_MAILBOX),
    (450, "Requested action not taken: mailbox unavailable", S, C.OTHER),
    (451, "Temporary local problem - please try later", S, C.OTHER),
    (550, "Verification failed for <bounce@example.com>", H, C.OTHER),
    # --- Exchange / others without enhanced codes
    (552, "5.2.2 Mailbox full", H, C.MAILBOX_FULL),
    (452, "Mailbox full", S, C.MAILBOX_FULL),
    (552, "Quota exceeded (mailbox for user is full)", H, C.MAILBOX_FULL),
    (550, "#5.1.1 User unknown", H, C.BAD_MAILBOX),
    (
        554,
        "resimta-po-01v.sys.comcast.net comcast 203.0.113.5 Comcast block for spam. "
        "Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
        H,
        C.SPAM_BLOCK,
    ),
    (550, "Host not found", H, C.BAD_DOMAIN),
    (
        554,
        "Your access to this mail system has been rejected due to the sending MTA's "
        "poor reputation.",
        H,
        C.SPAM_BLOCK,
    ),
    (550, "Blocked - see https://ipcheck.proofpoint.com/?ip=203.0.113.5", H, C.SPAM_BLOCK),
    (550, "IP listed in blacklist bl.spamcop.net", H, C.SPAM_BLOCK),
    (421, "Too many concurrent SMTP connections; please try again later.", S, C.POLICY),
    (421, "Service not available, closing transmission channel", S, C.NETWORK),
    (500, "Syntax error, command unrecognized", H, C.PROTOCOL),
    (553, "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", H, C.POLICY),
    (550, "5.0.0 <x@example.com>... User unknown", H, C.BAD_MAILBOX),
    (554, "5.0.0 Service unavailable", H, C.OTHER),
    (550, "5.7.1 Email rejected per DMARC policy for example.com", H, C.AUTHENTICATION),
    (550, "5.7.1 Message rejected due to SPF failure", H, C.AUTHENTICATION),
    (451, "4.4.0 DNS resolution failed", S, C.DNS),
    # --- DSN Diagnostic-Code form (RFC 3464), and raw reply lines
    (550, "smtp; 550 5.1.1 <x@example.com>... User unknown", H, C.BAD_MAILBOX),
    (550, "550-5.1.1 The email account that you tried to reach does not exist.", H, C.BAD_MAILBOX),
]


def test_table_is_big_enough() -> None:
    assert len(TABLE) >= 40


@pytest.mark.parametrize(("code", "text", "outcome", "category"), TABLE)
def test_reply_table(
    code: int, text: str, outcome: Outcome, category: BounceCategory | None
) -> None:
    result = classify_reply(code, text)
    assert (result.outcome, result.category) == (outcome, category), text


def test_accuracy_is_total() -> None:
    wrong = [
        (code, text)
        for code, text, outcome, category in TABLE
        if (lambda r: (r.outcome, r.category))(classify_reply(code, text)) != (outcome, category)
    ]
    assert wrong == []


def test_every_4xx_is_soft_and_no_5_7_is_a_recipient_problem() -> None:
    # reliability.md T2.2: 100 % of 4xx soft; 0 5.7.x replies suppress the recipient.
    for code, text, _, _ in TABLE:
        result = classify_reply(code, text)
        if 400 <= code < 500:
            assert result.outcome is Outcome.SOFT_BOUNCE
        if result.enhanced is not None and result.enhanced.startswith(("5.7.", "4.7.")):
            assert result.category not in (C.BAD_MAILBOX, C.BAD_DOMAIN), text


@pytest.mark.parametrize(
    ("text", "enhanced"),
    [
        ("5.1.1 <x>: Recipient address rejected", "5.1.1"),
        ("#5.1.0 Address rejected", "5.1.0"),
        ("4.7.500 Server busy", "4.7.500"),
        ("smtp; 550 5.2.2 Mailbox full", "5.2.2"),
        ("550-5.1.1 The email account", "5.1.1"),
        ("Requested action not taken", None),
        ("5.1 not an enhanced code", None),
        ("1 Requested mail action aborted", None),
        ("sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "5.7.1"),
    ],
)
def test_parse_enhanced(text: str, enhanced: str | None) -> None:
    assert parse_enhanced(text) == enhanced


def test_classification_fields() -> None:
    result = classify_reply(550, "5.1.1 <x@example.com>: Recipient address rejected")
    assert result == Classification(
        H, C.BAD_MAILBOX, 550, "5.1.1", "5.1.1 <x@example.com>: Recipient address rejected"
    )
    assert result.is_permanent
    assert classify_reply(250, "2.0.0 OK").category is None


def test_basic_code_decides_outcome_when_enhanced_disagrees() -> None:
    # A 550 with a 4.x.x enhanced code is still permanent: every MTA acts on the basic code.
    assert classify_reply(550, "4.2.2 Mailbox full").outcome is H
    assert classify_reply(452, "5.2.2 Mailbox full").outcome is S


@pytest.mark.parametrize("kind", ["connect", "connect_timeout", "timeout", "disconnect", "x"])
def test_failures_are_soft_network(kind: str) -> None:
    result = classify_failure(kind, "Connection lost")
    assert result.outcome is S
    assert result.category is C.NETWORK
    assert result.code == 451
    assert result.enhanced is not None and result.enhanced.startswith("4.4.")
