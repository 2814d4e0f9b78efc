"""Contacts through a real ``postroom serve`` and the official Python SDK.

Every method of ``contacts_api`` (fields, lists, contacts, imports, exports, events) is
called as an application would, and its parsed result is checked; a bulk send through
the SDK to a contact who unsubscribed is accepted and rejected.
"""

from __future__ import annotations

import mailtrap as mt
import pytest
from mailtrap.exceptions import APIError
from mailtrap.models.contacts import (
    ContactEventParams,
    ContactExportFilter,
    ContactListParams,
    CreateContactExportParams,
    CreateContactFieldParams,
    CreateContactParams,
    ImportContactParams,
    UpdateContactFieldParams,
    UpdateContactParams,
)
from server import Instance


def _client(instance: Instance, *, bulk: bool = False) -> mt.MailtrapClient:
    # The bulk stream is the bulk listener's (as bulk.api.mailtrap.io is Mailtrap's).
    host = f"127.0.0.1:{instance.server.bulk_port}" if bulk else instance.host
    return mt.MailtrapClient(
        token=instance.token, account_id=str(instance.account_id), api_host=host
    )


def test_sdk_drives_every_contacts_method(instance: Instance) -> None:
    api = _client(instance).contacts_api

    fields = api.contact_fields
    city = fields.create(CreateContactFieldParams(name="City", data_type="text", merge_tag="city"))
    assert city.merge_tag == "city" and city.data_type == "text"
    age = fields.create(CreateContactFieldParams(name="Age", data_type="integer", merge_tag="age"))
    assert [f.id for f in fields.get_list()][-2:] == [city.id, age.id]
    assert fields.get_by_id(city.id).name == "City"
    renamed = fields.update(city.id, UpdateContactFieldParams(name="Town"))
    assert renamed.name == "Town" and renamed.merge_tag == "city"

    lists = api.contact_lists
    news = lists.create(ContactListParams(name="Newsletter"))
    vip = lists.create(ContactListParams(name="VIP"))
    assert {x.id for x in lists.get_list()} >= {news.id, vip.id}
    assert [x.id for x in lists.get_list(search="news")] == [news.id]
    assert lists.update(vip.id, ContactListParams(name="Gold")).name == "Gold"
    assert lists.get_by_id(vip.id).name == "Gold"

    people = api.contacts
    ann = people.create(
        CreateContactParams(
            email="ann+sdk@example.com", fields={"city": "Oslo", "age": 30}, list_ids=[news.id]
        )
    )
    assert ann.status == "subscribed" and ann.list_ids == [news.id]
    assert ann.fields == {"city": "Oslo", "age": 30}
    # The SDK URL-encodes the address ('+' and '@').
    assert people.get_by_id("ann+sdk@example.com").id == ann.id
    assert people.get_by_id(ann.id).email == "ann+sdk@example.com"
    updated = people.update(
        ann.id,
        UpdateContactParams(
            fields={"age": 31}, list_ids_included=[vip.id], list_ids_excluded=[news.id]
        ),
    )
    assert updated.fields == {"city": "Oslo", "age": 31} and updated.list_ids == [vip.id]
    gone = people.update("ann+sdk@example.com", UpdateContactParams(unsubscribed=True))
    assert gone.status == "unsubscribed"

    event = api.contact_events.create(
        ann.id, ContactEventParams(name="UserLogin", params={"ok": True, "n": 2, "x": None})
    )
    assert event.contact_id == ann.id and event.contact_email == "ann+sdk@example.com"
    assert event.params == {"ok": True, "n": 2, "x": None}

    job = api.contact_imports.import_contacts(
        [
            ImportContactParams(
                email="bob@example.com", fields={"age": 40}, list_ids_included=[news.id]
            ),
            ImportContactParams(email="ann+sdk@example.com", fields={"city": "Bergen"}),
        ]
    )
    assert job.status == "finished"
    assert (job.created_contacts_count, job.updated_contacts_count) == (1, 1)
    assert api.contact_imports.get_by_id(job.id).status == "finished"
    assert people.get_by_id("bob@example.com").list_ids == [news.id]

    export = api.contact_exports.create(
        CreateContactExportParams(
            filters=[ContactExportFilter(name="list_id", operator="equal", value=[news.id])]
        )
    )
    assert export.status == "finished" and export.url
    again = api.contact_exports.get_by_id(export.id)
    assert again.url == export.url and again.created_at == export.created_at
    with instance.http() as http:
        csv_text = http.get(export.url, headers={"Authorization": f"Bearer {instance.token}"}).text
    assert "bob@example.com" in csv_text and "ann+sdk@example.com" not in csv_text

    # A bulk send to Ann (unsubscribed) is accepted and never sent.
    bulk = _client(instance, bulk=True)
    sent = bulk.send(
        mt.Mail(
            sender=mt.Address(email="news@shop.example"),
            to=[mt.Address(email="ann+sdk@example.com")],
            subject="News",
            text="Hello",
        )
    )
    [message_id] = sent["message_ids"]
    state = instance.store.scalar("SELECT state FROM deliveries WHERE id = :id", id=message_id)
    assert state == "suppressed"

    assert people.delete(ann.id).id == ann.id
    with pytest.raises(APIError):
        people.get_by_id(ann.id)
    assert lists.delete(vip.id).id == vip.id
    assert fields.delete(age.id).id == age.id
    with pytest.raises(APIError):
        fields.get_by_id(age.id)
