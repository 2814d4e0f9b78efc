"""Micro-benchmark: ``postroom.domain.dkim.sign`` against the bare ``cryptography`` floor.

Signs the same ~5 KB text + html message (``build_message``) with RSA-2048 and Ed25519 and
prints signatures/s beside, measured in the same run, the bare ``cryptography`` operation
our signer cannot beat: RSA-2048 PKCS#1 v1.5 SHA-256 over a ~600-byte header block, and
Ed25519 over 32 bytes (the SHA-256 digest RFC 8463 signs). The ratio says how much of the
floor the canonicalization, hashing and header building leave. dkimpy's ``dkim.sign``
(pure-Python RSA) runs a few times for context. ``--threads N`` adds the aggregate RSA rate
of N threads sharing one process, best of three runs (``cryptography`` releases the GIL
while signing).

Usage: ``.venv/bin/python bench/dkim.py [--seconds 0.3] [--rounds 5] [--threads 2]``; about
10 s by default. Every case is the best of ``--rounds`` timed runs, the cases taking turns.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from postroom.domain import dkim as ours
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.mime import build_message, make_message_id

PARAGRAPH = (
    "Hello Ana, your order #12345 has shipped and should arrive within three business "
    "days. You can follow the parcel from your account page at any time.\n"
)
HTML = (
    "<html><body>" + '<p style="font-family: Arial, sans-serif">Héllo Ana, your order '
    "<b>#12345</b> has shipped &mdash; it should arrive within three business days.</p>\n"
    * 18
    + "</body></html>\n"
)
DRAFT = MessageDraft(
    sender=Address("shop@example.com", "Example Shop"),
    to=(Address("ana@example.org", "Ana Müller"),),
    subject="Your order #12345 has shipped",
    text=PARAGRAPH * 11,
    html=HTML,
    headers=(
        ("List-Unsubscribe", "<https://example.com/u/opaque-token-0123456789abcdef>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ),
)
MESSAGE = build_message(
    DRAFT,
    message_id=make_message_id("example.com", "0123456789abcdef"),
    date=datetime(2024, 5, 1, 12, 30, tzinfo=UTC),
)
RSA_KEY = ours.generate_rsa(2048)
ED_KEY = ours.generate_ed25519()
RSA = ours.DkimKey("rsa1", "example.com", "rsa-sha256", RSA_KEY)
ED = ours.DkimKey("ed1", "example.com", "ed25519-sha256", ED_KEY)


def dkimpy() -> ModuleType:
    """dkimpy's ``dkim`` package: this file shares its name, so its directory leaves sys.path."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    return importlib.import_module("dkim")


def rates(cases: dict[str, Callable[[], object]], seconds: float, rounds: int) -> dict[str, float]:
    """Calls per second of each case: the best of ``rounds`` runs of about ``seconds`` each.

    The cases take turns round by round, so a burst of load from another process on a
    shared machine hits one run of each case rather than every run of one case.
    """
    sizes = {}
    for name, work in cases.items():  # calibrate: how many calls fill ``seconds``
        start, calls = time.perf_counter(), 0
        while (elapsed := time.perf_counter() - start) < seconds / 10 or calls < 3:
            work()
            calls += 1
        sizes[name] = max(int(calls / elapsed * seconds), 3)
    best = dict.fromkeys(cases, 0.0)
    for _ in range(rounds):
        for name, work in cases.items():
            start = time.perf_counter()
            for _ in range(sizes[name]):
                work()
            best[name] = max(best[name], sizes[name] / (time.perf_counter() - start))
    return best


def threaded_rate(work: Callable[[], object], threads: int, seconds: float) -> float:
    """Aggregate calls per second of ``threads`` threads running ``work`` for ``seconds``."""

    def loop() -> int:
        end, calls = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            work()
            calls += 1
        return calls

    with ThreadPoolExecutor(threads) as pool:
        start = time.perf_counter()
        total = sum(f.result() for f in [pool.submit(loop) for _ in range(threads)])
        return total / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="length of one timed run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per case (best kept)")
    parser.add_argument("--threads", type=int, default=0, help="also run N signing threads")
    args = parser.parse_args()

    signed = ours.sign(MESSAGE, [RSA], timestamp=1714566600)
    header_block = (MESSAGE.split(b"\r\n\r\n", 1)[0] * 2)[:600]  # a signed header block
    digest = hashlib.sha256(header_block).digest()
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    pem = ours.private_pem(RSA_KEY)
    dkim = dkimpy()

    work: dict[str, Callable[[], object]] = {
        "rsa": lambda: ours.sign(MESSAGE, [RSA]),
        "rsa floor": lambda: RSA_KEY.sign(header_block, pkcs1, sha256),
        "ed": lambda: ours.sign(MESSAGE, [ED]),
        "ed floor": lambda: ED_KEY.sign(digest),
        "dual": lambda: ours.sign(MESSAGE, [RSA, ED]),
    }
    cases = rates(work, args.seconds, args.rounds)
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        dkim.sign(MESSAGE, b"rsa1", b"example.com", pem, canonicalize=(b"relaxed", b"relaxed"))
    theirs = reps / (time.perf_counter() - start)

    print(f"message: {len(MESSAGE)} bytes; signature header: {len(signed) - len(MESSAGE)} bytes")
    print(f"{'case':<40} {'sig/s':>9} {'µs/sig':>8} {'of floor':>9}")
    rows = [
        ("postroom sign, RSA-2048", cases["rsa"], cases["rsa floor"]),
        ("cryptography RSA-2048 (600 B) floor", cases["rsa floor"], None),
        ("postroom sign, Ed25519", cases["ed"], cases["ed floor"]),
        ("cryptography Ed25519 (32 B) floor", cases["ed floor"], None),
        ("postroom sign, RSA-2048 + Ed25519", cases["dual"], None),
        ("dkimpy dkim.sign, RSA-2048 (20 reps)", theirs, None),
    ]
    for name, value, floor in rows:
        share = f"{value / floor:8.0%}" if floor else ""
        print(f"{name:<40} {value:9,.0f} {1e6 / value:8.1f} {share:>9}")
    print(f"postroom RSA / dkimpy RSA: {cases['rsa'] / theirs:.1f}x")
    if args.threads > 1:
        total = max(
            threaded_rate(lambda: ours.sign(MESSAGE, [RSA]), args.threads, args.seconds)
            for _ in range(3)
        )
        print(
            f"postroom sign, RSA-2048, {args.threads} threads: {total:,.0f} sig/s aggregate "
            f"({total / cases['rsa']:.2f}x one thread)"
        )


if __name__ == "__main__":
    main()
