"""Accounts and account-owned API tokens through the official Python SDK."""

import httpx
import pytest
import cloudflare
from cloudflare import Cloudflare

TOKENS_READ = "eb56a6953c034b9d97dd838155666f06"
TOKENS_WRITE = "5bc3f8b21c554832afc660159ab75fa4"
SETTINGS_READ = "c1fde68c7bcc44588cbb6ddbc16d6480"


def policy(account_id, *groups, effect="allow"):
    return {
        "effect": effect,
        "permission_groups": [{"id": g} for g in groups],
        "resources": {f"com.cloudflare.api.account.{account_id}": "*"},
    }


def test_accounts_round_trip(admin):
    created = admin.accounts.create(name="SDK Demo", type="enterprise")
    assert len(created.id) == 32 and created.name == "SDK Demo" and created.type == "enterprise"
    assert created.created_on is not None

    fetched = admin.accounts.get(account_id=created.id)
    assert fetched.model_dump() == created.model_dump()

    updated = admin.accounts.update(
        account_id=created.id, id=created.id, name="SDK Renamed", type="standard",
        settings={"enforce_twofactor": True},
    )
    assert updated.name == "SDK Renamed" and updated.settings.enforce_twofactor is True

    for i in range(6):
        admin.accounts.create(name=f"SDK page {i}")
    seen = [a.id for a in admin.accounts.list(per_page=5)]
    assert len(seen) == len(set(seen)) == 7
    assert created.id in seen
    assert [a.name for a in admin.accounts.list(name="sdk page")] == [f"SDK page {i}" for i in range(6)]

    deleted = admin.accounts.delete(account_id=created.id)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        admin.accounts.get(account_id=created.id)


def test_token_lifecycle(server, admin):
    account = admin.accounts.create(name="Token home")
    other = admin.accounts.create(name="Elsewhere")

    groups = admin.accounts.tokens.permission_groups.list(account_id=account.id)
    by_id = {g.id: g for g in groups}
    assert by_id[TOKENS_WRITE].name == "Account API Tokens Write"
    assert by_id[TOKENS_WRITE].scopes == ["com.cloudflare.api.account"]
    named = admin.accounts.tokens.permission_groups.list(account_id=account.id, name="Account API Tokens Read")
    assert [g.id for g in named] == [TOKENS_READ]

    created = admin.accounts.tokens.create(
        account_id=account.id,
        name="ci",
        policies=[policy(account.id, TOKENS_WRITE, SETTINGS_READ)],
        condition={"request_ip": {"in": ["127.0.0.0/8"], "not_in": []}},
    )
    assert created.value.startswith("cfat_")
    assert created.status == "active"
    assert created.policies[0].permission_groups[0].id == TOKENS_WRITE
    assert created.condition.request_ip.in_ == ["127.0.0.0/8"]

    as_token = server.client(created.value)
    verified = as_token.accounts.tokens.verify(account_id=account.id)
    assert verified.id == created.id and verified.status == "active"
    assert as_token.accounts.get(account_id=account.id).id == account.id

    listed = list(as_token.accounts.tokens.list(account_id=account.id))
    assert [t.id for t in listed] == [created.id]
    fetched = as_token.accounts.tokens.get(token_id=created.id, account_id=account.id)
    assert fetched.name == "ci" and fetched.last_used_on is not None
    assert "value" not in fetched.model_dump(exclude_none=True)

    with pytest.raises(cloudflare.PermissionDeniedError) as refused:
        as_token.accounts.tokens.list(account_id=other.id)
    assert refused.value.errors[0].code == 10000

    updated = admin.accounts.tokens.update(
        token_id=created.id, account_id=account.id, name="ci renamed",
        policies=[policy(account.id, TOKENS_READ)], status="disabled",
    )
    assert updated.name == "ci renamed" and updated.status == "disabled"
    assert as_token.accounts.tokens.verify(account_id=account.id).status == "disabled"
    with pytest.raises(cloudflare.AuthenticationError):
        as_token.accounts.tokens.list(account_id=account.id)

    admin.accounts.tokens.update(
        token_id=created.id, account_id=account.id, name="ci renamed",
        policies=[policy(account.id, TOKENS_READ)], status="active",
    )
    rolled = admin.accounts.tokens.value.update(token_id=created.id, account_id=account.id)
    assert isinstance(rolled, str) and rolled.startswith("cfat_") and rolled != created.value
    with pytest.raises(cloudflare.AuthenticationError):
        as_token.accounts.tokens.list(account_id=account.id)
    assert [t.id for t in server.client(rolled).accounts.tokens.list(account_id=account.id)] == [created.id]

    deleted = admin.accounts.tokens.delete(token_id=created.id, account_id=account.id)
    assert deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        admin.accounts.tokens.get(token_id=created.id, account_id=account.id)
    with pytest.raises(cloudflare.AuthenticationError):
        server.client(rolled).accounts.tokens.verify(account_id=account.id)


def test_expired_token_is_refused_and_reported(server, admin):
    account = admin.accounts.create(name="Expiry")
    token = admin.accounts.tokens.create(
        account_id=account.id, name="short", policies=[policy(account.id, TOKENS_READ)],
        expires_on="2020-01-01T00:00:00Z",
    )
    assert token.status == "expired"
    holder = server.client(token.value)
    assert holder.accounts.tokens.verify(account_id=account.id).status == "expired"
    with pytest.raises(cloudflare.AuthenticationError) as refused:
        holder.accounts.tokens.list(account_id=account.id)
    assert refused.value.status_code == 401 and refused.value.errors[0].code == 1000
    assert [t.id for t in admin.accounts.tokens.list(account_id=account.id)] == []
    assert [t.id for t in admin.accounts.tokens.list(account_id=account.id, include_expired=True)] == [token.id]


def test_auth_failures_surface_as_sdk_exceptions(server, admin):
    account = admin.accounts.create(name="Failures")

    with pytest.raises(cloudflare.BadRequestError) as malformed:
        server.client("not a real token").accounts.tokens.list(account_id=account.id)
    assert malformed.value.errors[0].code == 6003

    with pytest.raises(cloudflare.AuthenticationError) as unknown:
        server.client("cfat_" + "A" * 46).accounts.tokens.list(account_id=account.id)
    assert unknown.value.errors[0].code == 1000

    with pytest.raises(cloudflare.PermissionDeniedError) as global_key:
        Cloudflare(api_key="0123456789abcdef0123456789abcdef01234", api_email="ops@example.com",
                   base_url=f"{server.base}/client/v4", max_retries=0).accounts.get(account_id=account.id)
    assert global_key.value.errors[0].code == 9103

    reader = admin.accounts.tokens.create(account_id=account.id, name="reader",
                                          policies=[policy(account.id, TOKENS_READ)])
    with pytest.raises(cloudflare.PermissionDeniedError):
        server.client(reader.value).accounts.tokens.create(
            account_id=account.id, name="escalate", policies=[policy(account.id, TOKENS_WRITE)])
    with pytest.raises(cloudflare.BadRequestError) as listing:
        server.client(reader.value).accounts.list()
    assert listing.value.errors[0].code == 1001

    with pytest.raises(cloudflare.BadRequestError) as invalid:
        admin.accounts.tokens.create(account_id=account.id, name="bad",
                                     policies=[policy(account.id, "ffffffffffffffffffffffffffffffff")])
    assert "permission group" in invalid.value.errors[0].message

    with pytest.raises(cloudflare.NotFoundError):
        admin.accounts.tokens.get(token_id="0" * 32, account_id=account.id)

    missing = httpx.get(f"{server.base}/client/v4/accounts/{account.id}/tokens")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == 9106
