"""The official ``mailtrap`` SDK manages accounts, tokens, accesses and permissions of a
real ``postroom serve`` (HTTPS): its own requests, its own models on the answers."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import mailtrap as mt
import mailtrap.client
import pytest
from mailtrap.models.api_tokens import ApiTokenResource, CreateApiTokenParams
from mailtrap.models.organizations import CreateSubAccountParams
from mailtrap.models.permissions import PermissionResourceParams
from server import TlsFiles, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdk(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[tuple[mt.MailtrapClient, int]]:
    data_dir = tmp_path_factory.mktemp("accounts") / "data"
    server = start_server(data_dir, tls=(tls_files.cert_chain_pem, tls_files.key_pem))
    try:
        token = server.first_start_token()
        assert token
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca_pem))
            patch.setattr(mailtrap.client, "GENERAL_HOST", f"127.0.0.1:{server.port}")
            client = mt.MailtrapClient(
                token=token,
                account_id="1",
                organization_id="1",
                api_host=f"127.0.0.1:{server.port}",
            )
            yield client, server.port
    except BaseException:
        server.kill9()
        raise
    gc.collect()
    assert server.stop() == 0


def test_sdk_tokens_create_list_reset_delete(sdk: tuple[mt.MailtrapClient, int]) -> None:
    client, _ = sdk
    tokens = client.general_api.api_tokens
    params = CreateApiTokenParams(
        name="from the SDK",
        resources=[ApiTokenResource(resource_type="account", resource_id=1, access_level=10)],
        expires_at=None,
    )
    made = tokens.create(1, params)
    assert made.token.startswith("pr_") and made.expires_at is None
    assert [t.name for t in tokens.get_list(1)] == ["Default token", "from the SDK"]
    assert tokens.get_by_id(1, made.id).last_4_digits == made.last_4_digits
    reset = tokens.reset(1, made.id)
    assert reset.token != made.token and reset.resources[0].access_level == 10
    tokens.delete(1, reset.id)
    assert reset.id not in [t.id for t in tokens.get_list(1)]


def test_sdk_accounts_accesses_permissions_billing(sdk: tuple[mt.MailtrapClient, int]) -> None:
    client, _ = sdk
    general = client.general_api
    sub = client.organizations_api.sub_accounts.create(CreateSubAccountParams(name="Staging"))
    assert sub.name == "Staging"
    names = [a.name for a in client.organizations_api.sub_accounts.get_list()]
    assert names == ["Postroom", "Staging"]
    accounts = general.accounts.get_list()
    assert {a.id for a in accounts} == {1, sub.id}
    [owner] = general.account_accesses.get_list(1)
    assert owner.specifier_type == "User" and owner.resources[0].access_level == 1000
    tree = general.permissions.get_resources(1)
    assert tree[0].type == "account" and tree[0].resources[0].type == "project"
    usage = general.billing.get_current_billing_usage(1)
    assert usage.sending.usage.sent_messages_count.current == 0
    # Bulk permissions on a token's access (found through the new token's own listing).
    made = general.api_tokens.create(
        1,
        CreateApiTokenParams(
            name="bulk",
            resources=[ApiTokenResource(resource_type="account", resource_id=1, access_level=100)],
        ),
    )
    assert made.resources[0].access_level == 100
    with pytest.raises(mt.APIError):
        general.permissions.bulk_permissions_update(
            1,
            10**9,
            [PermissionResourceParams(resource_id="1", resource_type="account", access_level="10")],
        )
