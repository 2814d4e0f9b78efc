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
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from postroom.config import Settings
from postroom.mta.reports import Verdict, parse_report
from postroom.services import Services, suppressions
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.tables import suppressions as suppression_table

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


def screen_cost(entries: int, batch: int = 500, runs: int = 40) -> float:
    """Median milliseconds of one screen() over ``batch`` recipients, ``entries`` listed."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage={"data_dir": Path(tmp)})
        db = Database.from_url(settings.database_url)
        upgrade(db.engine)
        services = Services(settings=settings, db=db)
        boot = bootstrap(services)
        assert boot is not None
        now = datetime.now(UTC)
        rows = [
            {
                "id": services.ids.message_id(),
                "account_id": boot.account_id,
                "email": f"user{n}@example.com",
                "type": "hard bounce",
                "sending_stream": "any",
                "domain_name": "",
                "origin": "bounce",
                "created_at": now,
            }
            for n in range(entries)
        ]
        if rows:
            db.write_sync(lambda conn: conn.execute(suppression_table.insert(), rows))
        # Half of the batch is on the list when the list is not empty.
        candidates = [
            (
                {
                    "id": str(n),
                    "account_id": boot.account_id,
                    "recipient": f"user{n * 2}@example.com",
                    "stream": "transactional",
                },
                "a@shop.example",
            )
            for n in range(batch)
        ]
        times = []
        # Inside one open transaction, as in the writer's group commit.
        with db.engine.connect() as conn:
            for _ in range(runs):
                started = time.perf_counter()
                suppressions.screen(conn, candidates, now)
                times.append(time.perf_counter() - started)
            conn.rollback()
        db.close()
        return 1000 * statistics.median(times)


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
    for entries in (0, 100_000):
        for batch in (1, 500):
            cost = screen_cost(entries, batch)
            print(
                f"screen(): {batch:>3} recipient(s), {entries:>7,} entries listed: "
                f"{cost:.3f} ms ({1000 * cost / batch:.1f} µs/recipient)"
            )


if __name__ == "__main__":
    main()
