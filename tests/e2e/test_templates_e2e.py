"""Templates through the official ``mailtrap`` SDK against a real ``postroom serve`` (HTTPS).

The SDK manages templates (``email_templates_api`` and the paginated ``templates_api``),
sends with ``MailFromTemplate`` and ``BatchMailFromTemplate``, and reads the rendered
result back from the sandbox with its Email Testing API. Nothing in the SDK is patched
beyond pointing it at the server (see conftest ``instance``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import mailtrap as mt
import pytest
from server import Instance

pytestmark = pytest.mark.slow

T = TypeVar("T")

SENDER = mt.Address(email="hello@example.com", name="Postroom")
HTML = (
    "<html><head><style>.total { font-weight: bold }</style></head><body>"
    "<h1>Hi {{user.first_name}}</h1>"
    "<ul>{{#each items}}<li>{{name}}: {{price}}{{#if @last}}.{{/if}}</li>{{/each}}</ul>"
    '<p class="total">Total {{total}}</p>'
    '{{#if coupon}}<p>Use <a href="{{coupon.url}}">{{coupon.code}}</a></p>{{/if}}'
    "</body></html>"
)
VARIABLES = {
    "user": {"first_name": "Zoë <admin>"},
    "items": [{"name": "Tea", "price": "3.50"}, {"name": "Mug", "price": "9.00"}],
    "total": "12.50",
    "coupon": {"code": "SAVE10", "url": "https://shop.example/c?code=SAVE10"},
}


def _client(instance: Instance, **kwargs: Any) -> mt.MailtrapClient:
    kwargs.setdefault("api_host", instance.host)
    return mt.MailtrapClient(token=instance.token, account_id=str(instance.account_id), **kwargs)


def _eventually(fn: Callable[[], T | None], timeout: float = 10) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout} s")


def test_sdk_template_crud_and_sandbox_send_renders(instance: Instance) -> None:
    client = _client(instance)
    templates = client.email_templates_api.templates
    created = templates.create(
        mt.CreateEmailTemplateParams(
            name="Receipt", subject="Your receipt, {{{user.first_name}}}", category="receipts",
            body_html=HTML,
        )
    )  # fmt: skip
    assert created.uuid and created.category == "receipts" and created.body_text is None
    assert created.id in [t.id for t in templates.get_list()]
    assert templates.get_by_id(created.id).subject == "Your receipt, {{{user.first_name}}}"

    sandbox = _client(instance, sandbox=True, inbox_id=str(instance.inbox_id))
    response = sandbox.send(
        mt.MailFromTemplate(
            sender=SENDER,
            to=[mt.Address(email="zoe@example.org")],
            template_uuid=created.uuid,
            template_variables=VARIABLES,
        )
    )
    assert response["success"] is True
    [sandbox_id] = response["message_ids"]
    messages = client.testing_api.messages
    shown = messages.show_message(instance.inbox_id, int(sandbox_id))
    assert shown.subject == "Your receipt, Zoë <admin>"

    html = messages.get_html_source(instance.inbox_id, int(sandbox_id))
    assert "<h1>Hi Zoë &lt;admin&gt;</h1>" in html
    assert "<li>Tea: 3.50</li><li>Mug: 9.00.</li>" in html
    assert '<p class="total" style="font-weight: bold;">Total 12.50</p>' in html
    # Escaped "=" (&#x3D;) is re-serialised by the CSS inliner as the same attribute value.
    assert '<a href="https://shop.example/c?code=SAVE10">SAVE10</a>' in html
    text = messages.get_text_message(instance.inbox_id, int(sandbox_id))
    assert text.replace("\r\n", "\n") == (
        "Hi Zoë <admin>\n\n- Tea: 3.50\n- Mug: 9.00.\n\nTotal 12.50\n\n"
        "Use SAVE10 (https://shop.example/c?code=SAVE10)\n"
    )

    updated = templates.update(created.id, mt.UpdateEmailTemplateParams(subject="Receipt v2"))
    assert updated.subject == "Receipt v2"
    templates.delete(created.id)
    assert created.id not in [t.id for t in templates.get_list()]
    with pytest.raises(mt.APIError) as refused:
        sandbox.send(
            mt.MailFromTemplate(
                sender=SENDER, to=[mt.Address(email="z@example.org")], template_uuid=created.uuid
            )
        )
    assert refused.value.status == 400


def test_sdk_batch_with_template_and_worker_capture(instance: Instance) -> None:
    """Transactional batch: base variables, a request's own variables, worker capture."""
    client = _client(instance)
    template = client.email_templates_api.templates.create(
        mt.CreateEmailTemplateParams(
            name="Digest", subject="Digest for {{name}}", category="digest",
            body_text="{{greeting}}, {{name}}!\n{{#each news}}\n* {{this}}\n{{/each}}",
        )
    )  # fmt: skip
    result = client.batch_send(
        mt.BatchSendEmailParams(
            base=mt.BatchMailFromTemplate(
                sender=SENDER,
                template_uuid=template.uuid,
                template_variables={"greeting": "Hello", "name": "all", "news": ["a", "b"]},
            ),
            requests=[
                mt.BatchEmailRequest(to=[mt.Address(email="batch-one@example.org")]),
                mt.BatchEmailRequest(
                    to=[mt.Address(email="batch-two@example.org")],
                    template_variables={"greeting": "Hey", "name": "Two", "news": []},
                ),
            ],
        )
    )
    assert [r["success"] for r in result["responses"]] == [True, True]
    rows = instance.store.rows(
        "SELECT subject, category, template_version FROM messages WHERE id = :a OR id = :b "
        "ORDER BY subject",
        a=result["responses"][0]["message_ids"][0],
        b=result["responses"][1]["message_ids"][0],
    )
    assert [(r.subject, r.category, r.template_version) for r in rows] == [
        ("Digest for Two", "digest", 1),
        ("Digest for all", "digest", 1),
    ]

    messages = client.testing_api.messages

    def both() -> list[Any] | None:
        found = [
            m for m in messages.get_list(instance.inbox_id) if m.subject.startswith("Digest for")
        ]
        return found if len(found) == 2 else None

    by_subject = {m.subject: m for m in _eventually(both)}
    text_all = messages.get_text_message(instance.inbox_id, by_subject["Digest for all"].id)
    text_two = messages.get_text_message(instance.inbox_id, by_subject["Digest for Two"].id)
    assert text_all.replace("\r\n", "\n") == "Hello, all!\n* a\n* b\n"
    assert text_two.replace("\r\n", "\n").rstrip("\n") == "Hey, Two!"


def test_sdk_paginated_templates_api(instance: Instance) -> None:
    paged = _client(instance).templates_api.templates
    made = [
        paged.create(mt.CreateTemplateParams(name=f"P{i}", subject="S", category="c"))
        for i in range(3)
    ]
    assert all(t.uuid for t in made)
    seen: list[int] = []
    token: int | None = 1
    while token is not None:  # other tests' templates are listed too: walk every page
        page = paged.get_list(mt.TemplateListParams(per_page=2, token=token))
        assert page.pagination is not None and page.pagination.token == token
        assert len(page.data) <= 2
        seen += [t.id for t in page.data]
        token = page.pagination.next_token
    assert {t.id for t in made} <= set(seen) and len(seen) == len(set(seen))
    assert paged.get_by_id(made[0].id).name == "P0"
    assert paged.update(made[0].id, mt.UpdateTemplateParams(name="P0b")).name == "P0b"
    for template in made:
        paged.delete(template.id)
