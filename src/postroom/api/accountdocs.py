"""OpenAPI descriptions of the account-management request bodies (parsed by hand in
api/routes/api_tokens.py, accesses.py and accounts.py; these models only document them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from postroom.api.docs import json_body


class ResourcePermissionInput(BaseModel):
    resource_type: Literal["account", "domain", "project", "sandbox"] = Field(
        description="Also accepted: inbox (sandbox), sending_domain (domain)."
    )
    resource_id: int | str
    access_level: int | str = Field(description="100 or admin; 10 or viewer.")


class CreateApiTokenBody(BaseModel):
    name: str
    resources: list[ResourcePermissionInput]
    expires_at: str | None = Field(
        None, description="ISO 8601; omitted: one year; null: never; at most 5 years ahead."
    )


class ResetApiTokenBody(BaseModel):
    expires_at: str | None = Field(None, description="The new token's expiry, as on create.")


class PermissionChange(BaseModel):
    resource_id: int | str
    resource_type: str = Field(description="account, domain, project or sandbox (inbox).")
    access_level: int | str | None = Field(None, description="100/admin or 10/viewer.")
    destroy: bool | None = Field(None, alias="_destroy", description="Remove it instead.")


class BulkPermissionsBody(BaseModel):
    permissions: list[PermissionChange]


class SubAccountFields(BaseModel):
    name: str | None = None
    disabled: bool | None = Field(None, description="Postroom's PATCH only.")


class SubAccountBody(BaseModel):
    account: SubAccountFields


DOC_MODELS: tuple[type[BaseModel], ...] = (
    ResourcePermissionInput,
    CreateApiTokenBody,
    ResetApiTokenBody,
    PermissionChange,
    BulkPermissionsBody,
    SubAccountFields,
    SubAccountBody,
)
CREATE_TOKEN = json_body(CreateApiTokenBody)
RESET_TOKEN = json_body(ResetApiTokenBody, required=False)
BULK_PERMISSIONS = json_body(BulkPermissionsBody)
SUB_ACCOUNT = json_body(SubAccountBody)
