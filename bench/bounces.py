"""Bounce and complaint classification accuracy over a labelled corpus.

Reads ``labels.csv`` (``file,mta,recipient,status,reason,hard_or_soft``) beside the
``.eml`` files, parses every message with :func:`postroom.mta.reports.parse_report`, and
compares the verdict (hard / soft / complaint / none) with the label. A message counts
as right when the label's recipient gets the labelled verdict (or, without a labelled
recipient, when the report's overall verdict matches). Prints per-MTA accuracy, the
misses, and the time per message.

    python bench/bounces.py [CORPUS_DIR]     # default tests/data/bounces
"""

from __future__ import annotations

import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

from postroom.mta.reports import Verdict, parse_report

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces"


def judge(raw: bytes, recipient: str) -> str:
    """The parser's verdict for ``recipient`` (or the report's, without one)."""
    report = parse_report(raw)
    verdicts = report.verdicts()
    if recipient and recipient.lower() in verdicts:
        return verdicts[recipient.lower()].value
    if recipient and verdicts:
        return f"wrong recipient ({', '.join(sorted(verdicts))})"
    return report.verdict.value if verdicts or not recipient else Verdict.NONE.value


def measure(corpus: Path) -> tuple[int, int, dict[str, list[int]], list[str], float]:
    rows = list(csv.DictReader((corpus / "labels.csv").read_text("utf-8").splitlines()))
    per_mta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    right = 0
    started = time.perf_counter()
    for row in rows:
        raw = (corpus / row["file"]).read_bytes()
        got = judge(raw, row["recipient"])
        ok = got == row["hard_or_soft"]
        right += ok
        per_mta[row["mta"]][0] += ok
        per_mta[row["mta"]][1] += 1
        if not ok:
            misses.append(
                f"{row['file']}: labelled {row['hard_or_soft']} ({row['reason']}), got {got}"
            )
    elapsed = time.perf_counter() - started
    return right, len(rows), per_mta, misses, elapsed


def main() -> None:
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    right, total, per_mta, misses, elapsed = measure(corpus)
    print(f"corpus: {corpus} ({total} messages)")
    print(f"{'mta':<26} right/total")
    for mta, (ok, n) in sorted(per_mta.items()):
        print(f"{mta:<26} {ok}/{n}")
    print("misses:")
    for miss in misses:
        print(f"  {miss}")
    print(f"accuracy: {right}/{total} = {100 * right / total:.1f}%")
    print(f"parse time: {1000 * elapsed / total:.2f} ms/message")


if __name__ == "__main__":
    main()
