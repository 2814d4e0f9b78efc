"""Spam reports for captured messages, scored by a real SpamAssassin (spamc → spamd).

The message's stored bytes go to ``spamc -R`` (report mode), which answers with
``score/threshold`` on its first line and SpamAssassin's rule table (points, rule name,
description, descriptions possibly wrapped onto indented lines). That is turned into the
report the contract shows (``Score``, ``Threshold``, ``Spam``, ``Details``).

spamd is the operator's to run (Debian: ``spamassassin`` and ``spamc``; ``spamd -x -L``
for local rules only, since the scorer must not reach the network for every message).
When spamc is missing, or spamd does not answer, the request fails with
:class:`~postroom.errors.FeatureUnavailable` (503) saying what to install or start:
Postroom never makes up a score.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from postroom.config import SandboxSettings
from postroom.errors import FeatureUnavailable

RESPONSE_VERSION = "1.2"  # the contract's report format version (spec example)
_SCORE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$")
_RULE_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*?)\s*$")
_CONTINUATION = re.compile(r"^\s{10,}(\S.*?)\s*$")
_TABLE_RULE = re.compile(r"^-{3,}\s+-{3,}")


@dataclass(frozen=True, slots=True)
class SpamRule:
    points: float
    name: str
    description: str


@dataclass(slots=True)
class SpamResult:
    score: float
    threshold: float
    rules: list[SpamRule] = field(default_factory=list)

    @property
    def spam(self) -> bool:
        return self.score >= self.threshold

    def report(self) -> dict[str, Any]:
        """The contract's ``report`` object."""
        return {
            "ResponseCode": 3 if self.spam else 2,
            "ResponseMessage": "Spam" if self.spam else "Not spam",
            "ResponseVersion": RESPONSE_VERSION,
            "Score": self.score,
            "Spam": self.spam,
            "Threshold": self.threshold,
            "Details": [
                {"Pts": r.points, "RuleName": r.name, "Description": r.description}
                for r in self.rules
            ],
        }


def parse_report(output: str) -> SpamResult:
    """spamc ``-R`` output → score, threshold and the rules that hit."""
    lines = output.splitlines()
    first = _SCORE_LINE.match(lines[0]) if lines else None
    if first is None:
        raise FeatureUnavailable("spamd answered something that is not a spam report")
    result = SpamResult(float(first.group(1)), float(first.group(2)))
    in_table = False
    for line in lines[1:]:
        if _TABLE_RULE.match(line.strip()):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        rule = _RULE_LINE.match(line)
        if rule:
            points, name, text = rule.groups()
            result.rules.append(SpamRule(float(points), name, text))
        elif result.rules and (more := _CONTINUATION.match(line)):
            last = result.rules[-1]
            result.rules[-1] = SpamRule(last.points, last.name, f"{last.description} {more[1]}")
    return result


async def score(settings: SandboxSettings, raw: bytes) -> SpamResult:
    """Score ``raw`` with spamc against the configured spamd."""
    command = [
        settings.spamc_path,
        "-d", settings.spamd_host,
        "-p", str(settings.spamd_port),
        "-R",  # the report: score/threshold, then the rule table
        "-x",  # fail instead of passing the message through unscored
        "-t", str(max(int(settings.spam_timeout_seconds), 1)),
        "-s", str(len(raw) + 1024),  # never skip a large message silently
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except (FileNotFoundError, PermissionError):
        raise FeatureUnavailable(
            f"spam reports need SpamAssassin: {settings.spamc_path!r} was not found "
            "(install the Debian packages spamc and spamassassin, run spamd, or set "
            "POSTROOM_SANDBOX__SPAMC_PATH)"
        ) from None
    try:
        out, err = await asyncio.wait_for(
            process.communicate(raw), timeout=settings.spam_timeout_seconds + 5
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise FeatureUnavailable("the spam check took too long (spamd)") from None
    if process.returncode != 0:
        where = f"{settings.spamd_host}:{settings.spamd_port}"
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise FeatureUnavailable(
            f"spamd at {where} did not score the message (is spamd running?) {detail[0]}"
        )
    return parse_report(out.decode("utf-8", "replace"))
