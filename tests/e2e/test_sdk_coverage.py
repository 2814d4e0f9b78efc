"""The official ``mailtrap`` Python SDK's methods that no other SDK test calls, against one
real ``postroom serve`` over HTTPS (the module's ``instance``).

docs/compatibility.md ("Official SDK coverage") lists every public method of the SDK, the
path it calls and the test that drives it; this module closes the gaps that list showed:
webhooks (all five methods), company info update, account access removal and the success
path of bulk permissions (a user made with ``postroom user create``), and the access
listing's resource filter; and all eleven email-campaign methods (drafts, the state
machine, a start that sends to a contact list, stats).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mailtrap as mt
import pytest
from mailtrap.models.accounts import AccountAccessFilterParams
from mailtrap.models.company_info import CreateCompanyInfoParams, UpdateCompanyInfoParams
from mailtrap.models.contacts import (
    ContactListParams,
    CreateContactFieldParams,
    CreateContactParams,
)
from mailtrap.models.email_campaigns import (
    CreateEmailCampaignParams,
    CreateEmailCampaignTemplateAttributes,
    EmailCampaignDeliveryOptions,
    EmailCampaignListParams,
    EmailCampaignStatsParams,
    EmailCampaignTemplateAttributes,
    ScheduleEmailCampaignParams,
    UpdateEmailCampaignParams,
)
from mailtrap.models.permissions import PermissionResourceParams
from mailtrap.models.projects import ProjectParams
from mailtrap.models.sending_domains import CreateSendingDomainParams
from mailtrap.models.webhooks import CreateWebhookParams, UpdateWebhookParams
from server import Instance, run_cli

pytestmark = pytest.mark.slow

# Never called: the webhooks are inactive, and nothing resolves this name here.
HOOK_URL = "https://hooks.example.com/postroom"


def _client(instance: Instance) -> mt.MailtrapClient:
    return mt.MailtrapClient(token=instance.token, account_id=str(instance.account_id))


def test_sdk_webhooks_round_trip(instance: Instance) -> None:
    hooks = _client(instance).webhooks_api.webhooks
    made = hooks.create(
        CreateWebhookParams(
            url=HOOK_URL,
            webhook_type="email_sending",
            active=False,
            payload_format="json",
            sending_stream="transactional",
            event_types=["delivery", "bounce"],
        )
    )
    assert made.id > 0 and made.url == HOOK_URL and made.active is False
    assert made.event_types == ["delivery", "bounce"] and made.sending_stream == "transactional"
    assert len(made.signing_secret) >= 32
    assert made.id in [h.id for h in hooks.get_list()]
    shown = hooks.get_by_id(made.id)
    assert (shown.url, shown.webhook_type, shown.payload_format) == (
        HOOK_URL,
        "email_sending",
        "json",
    )
    changed = hooks.update(
        made.id,
        UpdateWebhookParams(
            url=HOOK_URL + "/v2", event_types=["soft_bounce"], payload_format="jsonlines"
        ),
    )
    assert (changed.url, changed.event_types, changed.payload_format) == (
        HOOK_URL + "/v2",
        ["soft_bounce"],
        "jsonlines",
    )
    assert hooks.get_by_id(made.id).event_types == ["soft_bounce"]
    assert hooks.delete(made.id).id == made.id
    assert made.id not in [h.id for h in hooks.get_list()]
    with pytest.raises(mt.APIError) as gone:
        hooks.get_by_id(made.id)
    assert gone.value.status == 404


def test_sdk_company_info_update(instance: Instance) -> None:
    client = _client(instance)
    domains = client.sending_domains_api.sending_domains
    domain = domains.create(CreateSendingDomainParams(domain_name="coverage.example"))
    company = client.company_info_api.company_info
    company.create(
        domain.id,
        CreateCompanyInfoParams(
            name="Coverage Ltd",
            address="1 Main St",
            city="Springfield",
            country="US",
            zip_code="12345",
            website_url="https://coverage.example",
        ),
    )
    updated = company.update(
        domain.id, UpdateCompanyInfoParams(name="Coverage Inc", phone="+1 555 0100")
    )
    assert (updated.name, updated.phone, updated.city) == (
        "Coverage Inc",
        "+1 555 0100",
        "Springfield",
    )
    assert company.get(domain.id).name == "Coverage Inc"
    assert domains.delete(domain.id).id == domain.id


def test_sdk_user_access_permissions_filter_and_removal(instance: Instance) -> None:
    account = instance.account_id
    run_cli(
        "user",
        "create",
        "viewer@coverage.example",
        "--role",
        "viewer",
        "--name",
        "Vera",
        data_dir=instance.server.data_dir,
        env={"POSTROOM_PASSWORD": "a long enough passphrase 42"},
    )
    client = _client(instance)
    general = client.general_api
    [viewer] = [
        a
        for a in general.account_accesses.get_list(account)
        if a.specifier.email == "viewer@coverage.example"
    ]
    assert viewer.specifier_type == "User" and viewer.specifier.name == "Vera"
    assert [(r.resource_type, r.access_level) for r in viewer.resources] == [("account", 10)]

    project = client.testing_api.projects.create(ProjectParams(name="Shared with Vera"))
    answer = general.permissions.bulk_permissions_update(
        account,
        viewer.id,
        [
            PermissionResourceParams(
                resource_id=str(project.id), resource_type="project", access_level="admin"
            )
        ],
    )
    assert answer.message == "Permissions have been updated!"
    only = AccountAccessFilterParams(project_ids=[str(project.id)])
    [shared] = general.account_accesses.get_list(account, only)
    assert shared.id == viewer.id
    assert ("project", project.id, 100) in {
        (r.resource_type, r.resource_id, r.access_level) for r in shared.resources
    }

    assert general.account_accesses.delete(account, viewer.id).id == viewer.id
    assert viewer.id not in [a.id for a in general.account_accesses.get_list(account)]
    assert general.account_accesses.get_list(account, only) == []
    client.testing_api.projects.delete(project.id)


def test_sdk_email_campaigns_every_method(instance: Instance) -> None:
    client = _client(instance)
    domain = client.sending_domains_api.sending_domains.create(
        CreateSendingDomainParams(domain_name="campaigns.example")
    )
    contacts = client.contacts_api
    contacts.contact_fields.create(
        CreateContactFieldParams(name="First", data_type="text", merge_tag="first")
    )
    news = contacts.contact_lists.create(ContactListParams(name="Campaign readers"))
    contacts.contacts.create(
        CreateContactParams(email="reader@example.org", fields={"first": "Ria"}, list_ids=[news.id])
    )
    campaigns = client.email_campaigns_api.email_campaigns
    made = campaigns.create(
        CreateEmailCampaignParams(
            name="SDK launch",
            domain_id=domain.id,
            from_local_part="news",
            from_display_name="Campaign News",
            template_attributes=CreateEmailCampaignTemplateAttributes(
                subject="Hello {{first}}",
                body_html='<p>Hi {{first}}</p><a href="__unsubscribe_url__">Unsubscribe</a>',
                merge_tags=["first"],
            ),
            contact_list_ids=[news.id],
        )
    )
    assert made.current_state == "draft" and made.domain_name == "campaigns.example"
    spare = campaigns.create(
        CreateEmailCampaignParams(
            name="Spare",
            domain_id=domain.id,
            from_local_part="news",
            template_attributes=CreateEmailCampaignTemplateAttributes(subject="S"),
        )
    )
    listed = campaigns.get_list(EmailCampaignListParams(per_page=1))
    assert [c.id for c in listed.data] == [spare.id]
    assert listed.pagination is not None and listed.pagination.next_token == 2
    searched = campaigns.get_list(EmailCampaignListParams(search="sdk"))
    assert [c.id for c in searched.data] == [made.id]
    assert campaigns.get_by_id(made.id).template.body_html.startswith("<p>Hi")  # type: ignore[union-attr]
    renamed = campaigns.update(
        made.id,
        UpdateEmailCampaignParams(
            name="SDK launch!", template_attributes=EmailCampaignTemplateAttributes(
                subject="Hi {{first}}")
        ),
    )  # fmt: skip
    assert renamed.name == "SDK launch!" and renamed.template.subject == "Hi {{first}}"  # type: ignore[union-attr]
    when = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    scheduled = campaigns.schedule(made.id, ScheduleEmailCampaignParams(datetime=when))
    assert scheduled.current_state == "scheduled"
    assert scheduled.current_state_metadata.scheduled_at  # type: ignore[union-attr]
    assert campaigns.cancel(made.id).current_state == "draft"
    campaigns.schedule(made.id, ScheduleEmailCampaignParams(datetime=when))
    assert campaigns.reset(made.id).current_state == "draft"
    with pytest.raises(mt.APIError) as refused:
        campaigns.terminate(made.id)
    assert refused.value.status == 422
    assert campaigns.get_stats(made.id).sent_count == 0

    started = campaigns.start(made.id)
    assert started.recipient_total_count == 1 and started.last_started_at
    assert started.current_state in ("started", "finished")
    stats = campaigns.get_stats(made.id)
    assert stats.sent_count == 1 and stats.open_count == 0
    today = datetime.now(UTC).date().isoformat()
    windowed = campaigns.get_stats(made.id, EmailCampaignStatsParams(start_date=today))
    assert windowed.sent_count == 1

    slow = campaigns.update(
        spare.id,
        UpdateEmailCampaignParams(
            template_attributes=EmailCampaignTemplateAttributes(body_text="Hi {{first}}"),
            contact_list_ids=[news.id],
            delivery_mode="gradual",
            delivery_options=EmailCampaignDeliveryOptions(emails_per_hour=1),
        ),
    )
    assert slow.delivery_options.emails_per_hour == 1  # type: ignore[union-attr]
    # Two readers, one email an hour: the start sends the first, the second waits.
    contacts.contacts.create(CreateContactParams(email="second@example.org", list_ids=[news.id]))
    assert campaigns.start(spare.id).current_state == "started"
    assert campaigns.terminate(spare.id).current_state == "terminated"
    doomed = campaigns.create(
        CreateEmailCampaignParams(
            name="Doomed",
            domain_id=domain.id,
            from_local_part="x",
            template_attributes=CreateEmailCampaignTemplateAttributes(subject="S"),
        )
    )
    assert campaigns.delete(doomed.id).id == doomed.id
    with pytest.raises(mt.APIError) as gone:
        campaigns.get_by_id(doomed.id)
    assert gone.value.status == 404
    with pytest.raises(mt.APIError) as segments:
        campaigns.update(spare.id, UpdateEmailCampaignParams(contact_segment_ids=[1]))
    assert segments.value.status == 422
