"""Access groups through the official Python SDK, with strict response
validation: create, list, get, update, delete, and `group` rules in
policies and in other groups."""

import pytest
import cloudflare


@pytest.fixture(scope="module")
def strict(server):
    return server.client(_strict_response_validation=True)


@pytest.fixture(scope="module")
def account(admin):
    return admin.accounts.create(name="Access groups via SDK").id


def test_groups_round_trip_and_pass_strict_validation(server, strict, account):
    groups = strict.zero_trust.access.groups
    staff = groups.create(account_id=account, name="Staff", is_default=True,
                          include=[{"email_domain": {"domain": "example.com"}}],
                          exclude=[{"email": {"email": "intern@example.com"}}],
                          require=[{"geo": {"country_code": "DE"}}])
    assert staff.id and staff.name == "Staff"
    assert staff.include[0].email_domain.domain == "example.com"
    assert staff.exclude[0].email.email == "intern@example.com"
    assert staff.require[0].geo.country_code == "DE"
    # The stored bool is not sent back: the SDK types `is_default` as rules.
    assert staff.is_default is None
    raw = server.client().zero_trust.access.groups.with_raw_response.get(staff.id, account_id=account)
    assert "is_default" not in raw.http_response.json()["result"]

    fetched = groups.get(staff.id, account_id=account)
    assert fetched.id == staff.id and fetched.require[0].geo.country_code == "DE"

    groups.create(account_id=account, name="Contractors", include=[{"everyone": {}}])
    page = groups.list(account_id=account)
    assert sorted(g.name for g in page.result) == ["Contractors", "Staff"]
    assert page.result_info.total_count == 2 and page.result_info.per_page == 100
    assert [g.id for g in groups.list(account_id=account, name="Staff")] == [staff.id]
    assert [g.name for g in groups.list(account_id=account, search="tract")] == ["Contractors"]
    second = groups.list(account_id=account, page=2, per_page=1)
    assert [g.name for g in second.result] == ["Contractors"]
    assert [g.name for g in groups.list(account_id=account, per_page=1)] == ["Staff", "Contractors"]
    with pytest.raises(cloudflare.BadRequestError):
        groups.list(account_id=account, per_page=1001)

    updated = groups.update(staff.id, account_id=account, name="Staff only",
                            include=[{"email_domain": {"domain": "example.com"}}])
    assert updated.name == "Staff only"
    assert updated.exclude == [] and updated.require == [], "PUT replaces the rule lists"

    deleted = groups.delete(staff.id, account_id=account)
    assert deleted.id == staff.id
    with pytest.raises(cloudflare.NotFoundError):
        groups.get(staff.id, account_id=account)


def test_group_rules_name_groups_and_are_checked(strict, account):
    groups = strict.zero_trust.access.groups
    policies = strict.zero_trust.access.policies
    admins = groups.create(account_id=account, name="Admins", include=[{"email": {"email": "ann@example.com"}}])
    everyone_but_admins = groups.create(account_id=account, name="Others", include=[{"everyone": {}}],
                                        exclude=[{"group": {"id": admins.id}}])
    assert everyone_but_admins.exclude[0].group.id == admins.id
    policy = policies.create(account_id=account, name="Admins", decision="allow",
                             include=[{"group": {"id": admins.id}}])
    assert policy.include[0].group.id == admins.id

    with pytest.raises(cloudflare.BadRequestError) as unknown:
        policies.create(account_id=account, name="Ghosts", decision="allow",
                        include=[{"group": {"id": "0b6bd6c4-3f1b-4a50-9c3f-0d8b9b1f9a77"}}])
    assert "neither an Access group nor a SCIM group" in unknown.value.errors[0].message
    with pytest.raises(cloudflare.BadRequestError) as cycle:
        groups.update(admins.id, account_id=account, name="Admins",
                      include=[{"group": {"id": everyone_but_admins.id}}])
    assert "itself" in cycle.value.errors[0].message

    with pytest.raises(cloudflare.ConflictError):
        groups.delete(admins.id, account_id=account)
    policies.delete(policy.id, account_id=account)
    groups.delete(everyone_but_admins.id, account_id=account)
    assert groups.delete(admins.id, account_id=account).id == admins.id


def test_groups_need_the_organization_groups_permissions(server, admin, account):
    groups = admin.zero_trust.access.groups
    group = groups.create(account_id=account, name="Readers", include=[{"everyone": {}}])
    read = "26bc23f853634eb4bff59983b9064fde"  # Access: Organizations, Identity Providers, and Groups Read
    apps = "1e13c5124ca64b72b1969a67e8829049"  # Access: Apps and Policies Write
    resources = {f"com.cloudflare.api.account.{account}": "*"}
    tokens = admin.accounts.tokens
    reader = tokens.create(account_id=account, name="groups reader", policies=[
        {"effect": "allow", "permission_groups": [{"id": read}], "resources": resources}])
    apps_only = tokens.create(account_id=account, name="apps writer", policies=[
        {"effect": "allow", "permission_groups": [{"id": apps}], "resources": resources}])
    as_reader = server.client(reader.value).zero_trust.access.groups
    assert as_reader.get(group.id, account_id=account).name == "Readers"
    with pytest.raises(cloudflare.PermissionDeniedError):
        as_reader.create(account_id=account, name="Mine", include=[{"everyone": {}}])
    with pytest.raises(cloudflare.PermissionDeniedError):
        server.client(apps_only.value).zero_trust.access.groups.list(account_id=account)
