"""Pydantic models of the sending API, for the OpenAPI document only.

The send path parses bodies with :mod:`postroom.api.payload` (the contract's exact error
strings, and a fraction of the cost); these models describe the same shapes for
``/openapi.json`` and for readers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class AddressDoc(BaseModel):
    email: str = Field(
        description="The addr-spec, e.g. jane@example.com.", json_schema_extra={"format": "email"}
    )
    name: str | None = Field(None, description="Display name.")


class AttachmentDoc(BaseModel):
    content: str = Field(description="Base64 of the file's bytes.")
    filename: str = Field(description="File name, required for inline parts too.")
    type: str | None = Field(None, description="MIME type, e.g. image/png.")
    disposition: Literal["attachment", "inline"] | None = Field(
        None, description="Default attachment."
    )
    content_id: str | None = Field(None, description="Content-ID for inline parts (cid:).")


class MessageFieldsDoc(BaseModel):
    from_: AddressDoc | None = Field(None, alias="from", description="Sender (required).")
    reply_to: AddressDoc | None = Field(None, description="Reply-To address.")
    subject: str | None = Field(None, description="Subject, unless template_uuid is given.")
    text: str | None = Field(None, description="Plain-text body.")
    html: str | None = Field(None, description="HTML body.")
    attachments: list[AttachmentDoc] | None = Field(None, description="Files.")
    headers: dict[str, str] | None = Field(
        None, description="Extra headers; reserved ones refused."
    )
    custom_variables: dict[str, Any] | None = Field(None, description="≤ 1000 bytes as JSON.")
    category: str | None = Field(None, description="≤ 255 characters.")
    template_uuid: str | None = Field(None, description="Render from this template.")
    template_variables: dict[str, Any] | None = Field(None, description="Template context.")


class SendRequestDoc(MessageFieldsDoc):
    to: list[AddressDoc] | None = Field(None, description="≤ 1000 recipients.")
    cc: list[AddressDoc] | None = Field(None, description="≤ 1000 recipients.")
    bcc: list[AddressDoc] | None = Field(None, description="≤ 1000 recipients.")


class BatchRequestDoc(BaseModel):
    base: MessageFieldsDoc | None = Field(None, description="Fields every request inherits.")
    requests: list[SendRequestDoc] = Field(description="≤ 500 messages; fields replace base's.")


class SendResponse(BaseModel):
    success: bool
    message_ids: list[str] = Field(description="One id per recipient, to → cc → bcc.")


class BatchItem(BaseModel):
    success: bool
    message_ids: list[str] | None = None
    errors: list[str] | None = None


class BatchResponse(BaseModel):
    success: bool
    responses: list[BatchItem]
    errors: list[str] = []


class SendingError(BaseModel):
    success: Literal[False] = False
    errors: list[str]


DOC_MODELS: tuple[type[BaseModel], ...] = (SendRequestDoc, BatchRequestDoc)
