"""The OpenAPI description of what routes read by hand: bodies and query strings.

Most routes read their bodies themselves (:mod:`postroom.api.body`, the contract's exact
error texts) and some their query strings (the deep-object ``filters[…]`` of email logs,
the ``[]`` arrays of stats), so FastAPI cannot see them. These models and parameter lists
put them in ``/openapi.json`` (``openapi_extra``) for readers, SDK generators and the
schemathesis run of the test suite, which fuzzes what the document declares. They are
documentation only: nothing validates a request against them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from postroom.domain.logfilters import ALIASES, EVENT_TYPES, FIELDS, STATUSES, STREAMS

Email = Field(json_schema_extra={"format": "email"}, description="An email address.")


def json_body(
    model: type[BaseModel], *, required: bool = True, example: Any = None
) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body described by ``model`` (listed in DOC_MODELS)."""
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": required, "content": {"application/json": media}}}


SEND_EXAMPLE = {
    "from": {"email": "hello@example.com", "name": "Example"},
    "to": [{"email": "jane@example.org"}],
    "subject": "Your receipt",
    "text": "Thank you for your order.",
    "headers": {"Message-ID": "<order-1234@example.com>", "X-Order": "1234"},
    "custom_variables": {"order_id": "1234"},
    "category": "receipt",
}
BATCH_EXAMPLE = {
    "base": {"from": {"email": "hello@example.com"}, "subject": "News", "text": "Hello."},
    "requests": [{"to": [{"email": "jane@example.org"}]}, {"to": [{"email": "joe@example.org"}]}],
}


def csv_body() -> dict[str, Any]:
    schema = {"type": "string", "description": "CSV with a header row; `email` is required."}
    return {"requestBody": {"required": True, "content": {"text/csv": {"schema": schema}}}}


def query(*parameters: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` adding query parameters read from the raw query string."""
    return {"parameters": list(parameters)}


def _param(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description, **extra}


# --- query strings ------------------------------------------------------------------------

_DATE = {"type": "string", "format": "date"}
_INTS = {"type": "array", "items": {"type": "integer", "minimum": 1}}
_STRINGS = {"type": "array", "items": {"type": "string"}}

STATS_QUERY = query(
    _param("start_date", _DATE, "First day (YYYY-MM-DD), required.", required=True),
    _param("end_date", _DATE, "Last day (YYYY-MM-DD), required.", required=True),
    _param("sending_domain_ids[]", _INTS, "Only these sending domains."),
    _param("domain_ids[]", _INTS, "Only these sending domains (the newer docs' name)."),
    _param(
        "sending_streams[]",
        {"type": "array", "items": {"type": "string", "enum": list(STREAMS)}},
        "Only these streams.",
    ),
    _param("categories[]", _STRINGS, "Only these categories."),
    _param("email_service_providers[]", _STRINGS, "Only these mailbox providers."),
)

_VALUE_KINDS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "status": {"type": "string", "enum": list(STATUSES)},
    "event": {"type": "string", "enum": list(EVENT_TYPES)},
    "stream": {"type": "string", "enum": list(STREAMS)},
}


def _filter_params() -> list[dict[str, Any]]:
    params = [
        _param("filters[sent_after]", {"type": "string", "format": "date-time"}, "Sent after."),
        _param("filters[sent_before]", {"type": "string", "format": "date-time"}, "Sent before."),
    ]
    named = [*FIELDS.items(), *((alias, FIELDS[field]) for alias, field in ALIASES.items())]
    for field, (operators, kind) in named:
        operator = {"type": "string", "enum": list(operators)}
        params.append(_param(f"filters[{field}][operator]", operator, f"How to match {field}."))
        params.append(_param(f"filters[{field}][value]", _VALUE_KINDS[kind], f"{field} value."))
    return params


LOGS_QUERY = query(
    _param("search_after", {"type": "string"}, "The previous page's next_page_cursor."),
    *_filter_params(),
)
LOGS_FILTERS = query(*_filter_params())


# --- bodies -------------------------------------------------------------------------------


class NameFields(BaseModel):
    name: str | None = Field(None, description="The name.")


class ProjectBody(BaseModel):
    project: NameFields


class InboxFields(BaseModel):
    name: str | None = Field(None, description="The inbox's name.")
    email_username: str | None = Field(None, description="The inbox address's user part.")


class InboxBody(BaseModel):
    inbox: InboxFields


class MessageFields(BaseModel):
    is_read: bool | None = Field(None, description="Mark read or unread.")


class MessageBody(BaseModel):
    message: MessageFields


class ForwardBody(BaseModel):
    email: str = Field(description="Where to forward the message.")


class DomainFields(BaseModel):
    domain_name: str | None = Field(None, description="The domain (create only).")
    open_tracking_enabled: bool | None = None
    click_tracking_enabled: bool | None = None
    auto_unsubscribe_link_enabled: bool | None = None
    custom_domain_tracking_enabled: bool | None = None
    health_alerts_enabled: bool | None = None
    critical_alerts_enabled: bool | None = None
    tracking_opt_out_enabled: bool | None = None
    inbound_enabled: bool | None = None


class DomainBody(BaseModel):
    sending_domain: DomainFields | None = Field(None, description="The SDKs' wrapper.")
    domain: DomainFields | None = Field(None, description="The newer docs' wrapper.")


class SetupInstructionsBody(BaseModel):
    email: str = Email


class CompanyInfoFields(BaseModel):
    name: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    zip_code: str | None = None
    website_url: str | None = None
    phone: str | None = None
    privacy_policy_url: str | None = None
    terms_of_service_url: str | None = None
    info_level: Literal["business", "individual"] | None = None


class CompanyInfoBody(BaseModel):
    company_info: CompanyInfoFields


class TemplateFields(BaseModel):
    name: str | None = None
    subject: str | None = Field(None, description="Handlebars.")
    category: str | None = None
    body_html: str | None = Field(None, description="Handlebars.")
    body_text: str | None = Field(None, description="Handlebars.")


class TemplateBody(BaseModel):
    email_template: TemplateFields


class PreviewBody(BaseModel):
    template_variables: dict[str, Any] | None = Field(None, description="The context.")
    version: int | None = Field(None, description="Render this version (default: current).")


class SuppressionBody(BaseModel):
    email: str = Email
    sending_stream: Literal["transactional", "bulk"] = Field(description="Required.")
    type: str | None = Field(None, description="Default manual import.")
    domain_id: int | None = Field(None, description="Limit to one sending domain.")


class RetentionFields(BaseModel):
    log_retention_days: int | None = Field(None, description="Null: the default.")
    body_retention_days: int | None = Field(None, description="Null: the default.")


class RetentionBody(BaseModel):
    retention: RetentionFields


class AlertThresholds(BaseModel):
    bounce_rate: float | None = None
    deferral_rate: float | None = None
    complaint_rate: float | None = None


class AlertFields(BaseModel):
    health_alerts_enabled: bool | None = None
    critical_alerts_enabled: bool | None = None
    alert_recipient_email: str | None = Field(None, json_schema_extra={"format": "email"})
    thresholds: AlertThresholds | None = None


class AlertsBody(BaseModel):
    alerts: AlertFields


class WebhookFields(BaseModel):
    url: str = Field(description="http(s) URL receiving the POSTs (public addresses only).")
    webhook_type: Literal["email_sending", "audit_log", "inbound_receiving"] | None = Field(
        None, description="Required on create; cannot change."
    )
    active: bool | None = Field(None, description="Default true; any update resumes a pause.")
    payload_format: Literal["json", "jsonlines"] | None = Field(None, description="Default json.")
    sending_stream: Literal["transactional", "bulk"] | None = Field(
        None, description="Required for email_sending."
    )
    event_types: list[str] | None = Field(None, description="Required for email_sending.")
    domain_id: int | None = Field(None, description="Only this sending domain's events.")
    inbound_inbox_id: int | None = Field(None, description="Required for inbound_receiving.")


class WebhookBody(BaseModel):
    webhook: WebhookFields


class ReplayBody(BaseModel):
    since: str = Field(description="ISO 8601 time: events recorded at or after it.")
    until: str = Field(description="ISO 8601 time: events recorded before it.")


class CampaignReplyTo(BaseModel):
    display_name: str | None = None
    local_part: str | None = None
    domain: str | None = None


class CampaignTemplateAttributes(BaseModel):
    subject: str | None = Field(None, description="Handlebars; required on create.")
    body_html: str | None = Field(None, description="Handlebars; contact fields are merge tags.")
    body_text: str | None = Field(None, description="Handlebars.")
    merge_tags: list[str] | None = None


class CampaignDeliveryOptions(BaseModel):
    emails_per_hour: int | None = Field(None, description="The gradual mode's pace.")


class CampaignFields(BaseModel):
    name: str | None = Field(None, description="Required on create.")
    domain_id: int | None = Field(None, description="A sending domain of the account.")
    from_local_part: str | None = Field(None, description="Required on create.")
    from_display_name: str | None = None
    reply_to: CampaignReplyTo | None = None
    template_attributes: CampaignTemplateAttributes | None = None
    delivery_mode: Literal["rapid", "gradual"] | None = None
    delivery_options: CampaignDeliveryOptions | None = None
    contact_list_ids: list[int] | None = None
    contact_segment_ids: list[int] | None = Field(None, description="Must be empty.")


class CampaignSchedule(BaseModel):
    datetime: str = Field(description="ISO 8601 with a zone; future, at most 1 month ahead.")


DOC_MODELS: tuple[type[BaseModel], ...] = (
    ProjectBody,
    InboxBody,
    MessageBody,
    DomainBody,
    SetupInstructionsBody,
    CompanyInfoBody,
    TemplateBody,
    TemplateFields,
    PreviewBody,
    SuppressionBody,
    RetentionBody,
    AlertsBody,
    WebhookBody,
    ReplayBody,
    CampaignFields,
    CampaignSchedule,
)
