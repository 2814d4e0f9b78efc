"""Mail Postroom sends on its own behalf: today, a domain's DNS setup instructions.

Notices go through :func:`~postroom.services.accept.accept_message` like any other mail
(stored, queued, delivered or captured by the delivery mode), from
``postroom@<mail_host>``; as the installation's own mail, they are exempt from the
rule that the From domain be one of the account's verified domains.
"""

from __future__ import annotations

from typing import Any

from postroom.domain.messages import Address, MessageDraft
from postroom.domain.streams import Stream
from postroom.services import Services, domains
from postroom.services.accept import Origin, accept_message

SETUP_CATEGORY = "postroom-setup"
QUOTA_CATEGORY = "postroom-quota"


async def send_setup_instructions(
    services: Services, account_id: int, domain_id: int, email: object
) -> list[str]:
    """Mail the records ``domain_id`` must publish to ``email``; returns the message ids."""
    address = domains.valid_email(email)
    view = await domains.get(services, account_id, domain_id)
    name = str(view.row["domain_name"])
    draft = MessageDraft(
        sender=Address(f"postroom@{services.settings.domains.mail_host}", "Postroom"),
        to=(Address(address),),
        subject=f"DNS records to publish for {name}",
        text=setup_text(view),
        category=SETUP_CATEGORY,
    )
    origin = Origin(account_id, Stream.TRANSACTIONAL, system=True)
    return await accept_message(services, origin, draft)


async def send_quota_warning(
    services: Services, account_id: int, recipients: list[str], crossing: Any
) -> list[str]:
    """Tell the account's owners and admins that a soft quota reached a threshold
    (``crossing``: a services/quotas.py Crossing)."""
    if not recipients:
        return []
    draft = MessageDraft(
        sender=Address(f"postroom@{services.settings.domains.mail_host}", "Postroom"),
        to=tuple(Address(email) for email in recipients),
        subject=f"Sending quota: {crossing.percent} % of the {crossing.period} quota used",
        text=(
            f"Account {account_id} has sent {crossing.used} of its {crossing.period} quota of"
            f" {crossing.quota} messages ({crossing.percent} %). The quota is soft: sending"
            " goes on. Change it with `postroom account set-quota`."
        ),
        category=QUOTA_CATEGORY,
    )
    origin = Origin(account_id, Stream.TRANSACTIONAL, system=True)
    return await accept_message(services, origin, draft)


def setup_text(view: domains.DomainView) -> str:
    """The instructions: every record with its type, name and value, and its status."""
    name = str(view.row["domain_name"])
    lines = [
        f"To send mail as {name} through Postroom, publish these DNS records at {name}'s",
        "DNS provider, then verify the domain (POST .../sending_domains/{id}/verify or",
        "`postroom domain verify`). Names are relative to the domain (@ is the domain).",
        "",
    ]
    for shown in view.records:
        record = shown.record
        lines += [
            f"{shown.key}: {record.type.value} record",
            f"  name:   {record.relative_name}",
            f"  value:  {record.value}",
            f"  status: {shown.status.value}",
            "",
        ]
    return "\n".join(lines)
