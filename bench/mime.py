"""Micro-benchmark: ``postroom.domain.mime.build_message`` vs the stdlib ``EmailMessage``.

Both build the same ~5 KB text + html message in the same run; prints µs/message and the
ratio. Usage: ``.venv/bin/python bench/mime.py [iterations]`` (default 2000).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from postroom.domain.messages import Address, MessageDraft
from postroom.domain.mime import build_message, make_message_id

DATE = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
MESSAGE_ID = make_message_id("postroom.test", "0123456789abcdef")
PARAGRAPH = (
    "Hello Ana, your order #12345 has shipped and should arrive within three business "
    "days. You can follow the parcel from your account page at any time.\n"
)
TEXT = PARAGRAPH * 14  # ~2 KB, ASCII, lines over 76 characters: quoted-printable
HTML = (
    "<html><body>" + '<p style="font-family: Arial, sans-serif">Héllo Ana, your order '
    "<b>#12345</b> has shipped &mdash; it should arrive within three business days.</p>\n"
    * 22
    + "</body></html>\n"
)  # ~3 KB with a little non-ASCII
DRAFT = MessageDraft(
    sender=Address("shop@example.com", "Example Shop"),
    to=(Address("ana@example.org", "Ana Müller"),),
    subject="Your order #12345 has shipped",
    text=TEXT,
    html=HTML,
    headers=(("X-Campaign", "shipping"),),
)


def ours() -> bytes:
    return build_message(DRAFT, message_id=MESSAGE_ID, date=DATE)


def stdlib() -> bytes:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Example Shop <shop@example.com>"
    msg["To"] = "Ana Müller <ana@example.org>"
    msg["Subject"] = DRAFT.subject
    msg["Date"] = format_datetime(DATE)
    msg["Message-ID"] = MESSAGE_ID
    msg["X-Campaign"] = "shipping"
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    return msg.as_bytes()


def per_message_us(build: Callable[[], bytes], iterations: int) -> float:
    """Best of three runs, in µs per message."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iterations):
            build()
        best = min(best, time.perf_counter() - start)
    return best / iterations * 1e6


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    size = len(ours())
    mine = per_message_us(ours, iterations)
    theirs = per_message_us(stdlib, max(iterations // 10, 1))
    print(f"message size: {size} bytes (stdlib: {len(stdlib())} bytes)")
    print(f"postroom build_message: {mine:8.1f} µs/message")
    print(f"stdlib EmailMessage:    {theirs:8.1f} µs/message")
    print(f"ratio (stdlib / ours):  {theirs / mine:8.1f}x")


if __name__ == "__main__":
    main()
