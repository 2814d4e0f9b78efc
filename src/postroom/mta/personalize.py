"""Each recipient's own copy of a message: tracking links, pixel, unsubscribe, at send time.

Done in the delivery round, after templates (the stored message is what they rendered)
and before DKIM (the copy is what gets signed), so acceptance, the hot path, is
untouched and the stored message stays the sender's own. A message is read once per
round (:func:`prepare`: its MIME leaves and their links, :mod:`postroom.domain.trackedmime`
and :mod:`postroom.domain.linkrewrite`); each recipient's copy is then a splice with
that recipient's tokens (:meth:`Prepared.copy`). Only messages that need it are touched:
a sending domain with open or click tracking, the automatic unsubscribe footer or the
opt-out link; bulk mail (and transactional mail of a domain that asks) for its
List-Unsubscribe headers; template sends for ``{{unsubscribe_url}}``.

Per recipient:

- click tracking: each http(s) link of the HTML parts (and of text parts with
  ``tracking.rewrite_text_links``) points at ``/c/<token>``; the original URLs go to
  ``tracked_links`` before the copy is sent;
- open tracking: a 1×1 image ``/o/<token>`` before ``</body>``;
- ``auto_unsubscribe_link_enabled``: an unsubscribe footer in HTML and text parts
  (not in a part that already has the template's ``{{unsubscribe_url}}``);
- ``tracking_opt_out_enabled``: a "do not track me" link beside it;
- ``List-Unsubscribe: <mailto:…>, <https://…/u/<token>>`` and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 2369, RFC 8058) unless the sender set its own
  List-Unsubscribe; both are among the DKIM-signed fields.

A recipient on the domain's tracking opt-out list gets no pixel and no rewritten link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import linkrewrite, trackedmime
from postroom.domain.linkrewrite import Analysed, LinkTable
from postroom.domain.trackedmime import Leaf
from postroom.domain.tracktokens import Kind
from postroom.services import Services, suppressions, tracking
from postroom.services.tracking import DomainTracking
from postroom.storage.repos import tracking as repo

_PIXEL = (
    '<img src="{}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
)
_FOOTER = '<div style="margin-top:16px;font-size:12px;line-height:18px;color:#666666">{}</div>'
_FOOTER_LINK = '<a href="{}" style="color:#666666">{}</a>'
UNSUBSCRIBE_TEXT = "Unsubscribe"
OPT_OUT_TEXT = "Do not track my opens and clicks"


@dataclass(slots=True)
class Prepared:
    """One message read once, ready for a copy per recipient."""

    message: dict[str, Any]
    raw: bytes
    policy: DomainTracking
    parts: list[tuple[Leaf, Analysed]]
    links: list[str]
    own_list_unsubscribe: bool

    def copy(
        self, services: Services, delivery: Mapping[str, Any], track: bool, now: datetime
    ) -> bytes:
        """The message as ``delivery``'s recipient gets it."""
        t = self.policy
        made = tracking.links(services, t.base, str(delivery["id"]), now)
        https = made.url(Kind.UNSUBSCRIBE) if t.base is not None else None
        mailto = made.mailto(services.settings, t.domain)
        link_url = (lambda i: made.url(Kind.CLICK, i)) if (track and t.clicks) else None
        replacements = []
        for leaf, part in self.parts:
            insert = self._insert(leaf, part, made, https, track)
            if not part.spans and not insert:
                continue
            replacements.append((leaf, linkrewrite.render(part, link_url, https or mailto, insert)))
        raw = trackedmime.splice(self.raw, replacements) if replacements else self.raw
        if self.own_list_unsubscribe or not t.list_unsubscribe(str(delivery["stream"])):
            return raw
        return trackedmime.prepend_headers(raw, list_unsubscribe_fields(mailto, https))

    def _insert(
        self, leaf: Leaf, part: Analysed, made: tracking.Links, https: str | None, track: bool
    ) -> str:
        t = self.policy
        footer: list[tuple[str, str]] = []
        if t.footer and https is not None and not part.has_placeholder:
            footer.append((UNSUBSCRIBE_TEXT, https))
        if t.opt_out_link and track:
            footer.append((OPT_OUT_TEXT, made.url(Kind.OPT_OUT)))
        if leaf.subtype == "plain":
            newline = "\r\n" if "\r\n" in leaf.text else "\n"
            return "".join(f"{newline}{text}: {url}{newline}" for text, url in footer)
        html = ""
        if footer:
            links = " | ".join(_FOOTER_LINK.format(escape(u), escape(x)) for x, u in footer)
            html += _FOOTER.format(links)
        if t.opens and track:
            html += _PIXEL.format(escape(made.url(Kind.OPEN)))
        return html


def list_unsubscribe_fields(mailto: str, https: str | None) -> list[tuple[str, str]]:
    """RFC 2369 List-Unsubscribe (folded after its comma) and, with an https URL, the
    RFC 8058 one-click field."""
    if https is None:
        return [("List-Unsubscribe", f"<{mailto}>")]
    return [
        ("List-Unsubscribe", f"<{mailto}>,\r\n <{https}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


@dataclass(slots=True)
class RoundCopies:
    """The round's prepared messages and who opted out of tracking."""

    prepared: dict[str, Prepared] = field(default_factory=dict)
    opted_out: set[tuple[int, str]] = field(default_factory=set)

    def copy(self, services: Services, delivery: Mapping[str, Any], now: datetime) -> bytes | None:
        """The recipient's own copy, or None when the stored message goes as it is."""
        found = self.prepared.get(str(delivery["message_id"]))
        if found is None:
            return None
        domain_id = found.policy.domain_id
        track = True  # what an opt-out withholds only exists when the body changes
        if domain_id is not None and found.policy.changes_body:
            email = suppressions.normal_email(str(delivery["recipient"]))
            track = (domain_id, email) not in self.opted_out
        return found.copy(services, delivery, track, now)

    def link_rows(self, now: datetime) -> list[dict[str, Any]]:
        """``tracked_links`` rows of every message with click tracking."""
        return [
            {"message_id": message_id, "position": i, "url": url, "created_at": now}
            for message_id, p in self.prepared.items()
            for i, url in enumerate(p.links)
        ]


def prepare(
    services: Services,
    conn: Connection,
    stored: Mapping[str, dict[str, Any]],
    leased: Sequence[Mapping[str, Any]],
) -> RoundCopies:
    """Read the round's messages that need per-recipient copies."""
    settings = services.settings
    wanted = {(int(m["account_id"]), _domain(m)) for m in stored.values()}
    rows = {(int(r["account_id"]), str(r["domain_name"]).lower()): r for r in _rows(conn, wanted)}
    copies = RoundCopies()
    for message in stored.values():
        row = rows.get((int(message["account_id"]), _domain(message)))
        found = _prepare(
            services, message, tracking.domain_tracking(settings, _domain(message), row)
        )
        if found is not None:
            copies.prepared[str(message["id"])] = found
    # Only a copy that changes the body reads the opt-out list: without changes_body there
    # is no pixel, click link or opt-out link for it to withhold (Prepared.copy reads
    # ``track`` for those alone), and a bulk round would look up every recipient for
    # nothing.
    pairs = [
        (p.policy.domain_id, suppressions.normal_email(str(d["recipient"])))
        for d in leased
        if (p := copies.prepared.get(str(d["message_id"]))) is not None
        and p.policy.domain_id is not None
        and p.policy.changes_body
    ]
    if pairs:
        copies.opted_out = repo.opted_out(conn, [(int(i), e) for i, e in pairs if i is not None])
    return copies


def _domain(message: Mapping[str, Any]) -> str:
    return str(message["sender"]).rpartition("@")[2].lower()


def _rows(conn: Connection, wanted: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    return repo.domains_named(conn, wanted)


def _prepare(services: Services, message: dict[str, Any], t: DomainTracking) -> Prepared | None:
    raw = bytes(message["raw"])
    headers = t.list_unsubscribe(str(message["stream"]))
    if not (t.changes_body or headers or message.get("template_id") is not None):
        return None
    own = "list-unsubscribe" in trackedmime.header_names(raw)
    parts: list[tuple[Leaf, Analysed]] = []
    table = LinkTable(services.settings.tracking.max_links) if t.clicks else None
    text_table = table if services.settings.tracking.rewrite_text_links else None
    for leaf in trackedmime.text_leaves(raw):
        if leaf.subtype == "html" and t.changes_body:
            parts.append((leaf, linkrewrite.analyse_html(leaf.text, table)))
        elif leaf.subtype == "html":
            # No link tracked and nothing inserted (each needs changes_body): only the
            # placeholders are replaced, and finding them needs no HTML parse.
            parts.append((leaf, linkrewrite.analyse_placeholders(leaf.text)))
        else:
            parts.append((leaf, linkrewrite.analyse_text(leaf.text, text_table)))
    if not t.changes_body and not any(part.spans for _, part in parts) and (own or not headers):
        return None
    links = table.urls if table is not None else []
    return Prepared(message, raw, t, parts, links, own)
