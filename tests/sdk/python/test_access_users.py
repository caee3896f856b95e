"""The nine Access users operations through the official Python SDK."""

import pytest
import cloudflare

AUDIT_LOGS_READ = "b05b28e839c54467a7d6cba5d3abb5a3"
SEATS_WRITE = "a1a6298e52584c8fb6313760a30c681e"

USER_FIELDS = {"id", "access_seat", "active_device_count", "created_at", "email", "gateway_seat",
               "last_successful_login", "name", "seat_uid", "uid", "updated_at"}


def unknown_fields(model) -> set:
    """Keys the SDK model does not declare. The SDK also keeps aliased keys
    (`devicePosture`, `isActive`) in `model_extra`, so those are not unknown."""
    aliases = {f.alias for f in type(model).model_fields.values() if f.alias}
    return set(model.model_extra or {}) - aliases


def token_for(admin, account_id, *groups):
    return admin.accounts.tokens.create(
        account_id=account_id, name="users test",
        policies=[{"effect": "allow", "permission_groups": [{"id": g} for g in groups],
                   "resources": {f"com.cloudflare.api.account.{account_id}": "*"}}],
    ).value


@pytest.fixture(scope="module")
def account(admin):
    return admin.accounts.create(name="Users via SDK").id


def test_users_crud_pagination_and_filters(server, admin, account):
    users = admin.zero_trust.access.users
    created = [users.create(account_id=account, email=f"person{i:02}@example.com", name=f"Person {i:02}")
               for i in range(25)]
    first = created[0]
    assert set(first.model_dump()) == USER_FIELDS
    assert unknown_fields(first) == set()
    assert first.access_seat is False and first.gateway_seat is False
    assert first.active_device_count == 0 and first.last_successful_login is None
    assert first.uid == first.id

    seen = [u.id for u in users.list(account_id=account, per_page=10)]
    assert len(seen) == 25 and len(set(seen)) == 25
    assert seen == [u.id for u in created]
    page = users.list(account_id=account, per_page=10, page=3)
    assert [u.id for u in page.result] == seen[20:]

    assert [u.email for u in users.list(account_id=account, email="PERSON07@example.com")] == ["person07@example.com"]
    assert [u.name for u in users.list(account_id=account, name="son 1")] == [f"Person {i}" for i in range(10, 20)]
    assert len(list(users.list(account_id=account, search="person2"))) == 5
    assert [u.email for u in users.list(account_id=account, search="person", name="Person 24")] == ["person24@example.com"]

    fetched = users.get(account_id=account, user_id=first.id)
    assert fetched.model_dump() == first.model_dump()
    updated = users.update(account_id=account, user_id=first.id, email=first.email, name="Renamed")
    assert updated.name == "Renamed" and updated.email == first.email

    with pytest.raises(cloudflare.ConflictError) as conflict:
        users.create(account_id=account, email="PERSON01@example.com")
    assert conflict.value.errors[0].code == 12131
    with pytest.raises(cloudflare.BadRequestError) as bad:
        users.update(account_id=account, user_id=first.id, email="other@example.com", name="x")
    assert "cannot be changed" in bad.value.errors[0].message

    users.delete(account_id=account, user_id=first.id)
    with pytest.raises(cloudflare.NotFoundError) as gone:
        users.get(account_id=account, user_id=first.id)
    assert gone.value.errors[0].code == 12130
    assert len(list(users.list(account_id=account, per_page=10))) == 24


def test_permissions_decide_who_reads_and_writes(server, admin, account):
    reader = server.client(token_for(admin, account, AUDIT_LOGS_READ)).zero_trust.access.users
    writer = server.client(token_for(admin, account, SEATS_WRITE)).zero_trust.access.users
    made = writer.create(account_id=account, email="perm@example.com")
    assert reader.get(account_id=account, user_id=made.id).email == "perm@example.com"
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.create(account_id=account, email="nope@example.com")
    with pytest.raises(cloudflare.PermissionDeniedError):
        reader.delete(account_id=account, user_id=made.id)
    with pytest.raises(cloudflare.PermissionDeniedError):
        list(writer.list(account_id=account))
    other = admin.accounts.create(name="Someone else").id
    with pytest.raises(cloudflare.PermissionDeniedError):
        list(reader.list(account_id=other))


def test_sessions_identity_and_failed_logins_read_back_field_for_field(server, admin, account):
    generated = server.generate(account, users=2, sessions=2, failed_logins=2)
    users = admin.zero_trust.access.users
    for record in generated["users"]:
        user_id = record["user"]["id"]
        user = users.get(account_id=account, user_id=user_id)
        assert user.model_dump(mode="json") == record["user"]
        assert user.access_seat is True and user.last_successful_login is not None

        sessions = list(users.active_sessions.list(account_id=account, user_id=user_id))
        assert [s.model_dump(mode="json") for s in sessions] == [s["listed"] for s in record["sessions"]]
        for s in sessions:
            assert unknown_fields(s) == set() and unknown_fields(s.metadata) == set()
            assert isinstance(s.expiration, int) and isinstance(s.metadata.ttl, int)
            assert s.metadata.ttl == 86400 and s.metadata.expires == s.expiration
            for app in s.metadata.apps.values():
                assert app.type == "self_hosted" and unknown_fields(app) == set()

        for expected in record["sessions"]:
            nonce = expected["listed"]["metadata"]["nonce"]
            got = users.active_sessions.get(nonce, account_id=account, user_id=user_id)
            assert unknown_fields(got) == set()
            assert got.is_active is True
            assert got.model_dump(mode="json", by_alias=True) == expected["get"]
            assert got.idp.type == "onetimepin" and got.geo.country == "US"
            assert got.user_uuid == user_id and got.email == record["user"]["email"]

        identity = users.last_seen_identity.get(user_id, account_id=account)
        assert unknown_fields(identity) == set()
        assert identity.device_posture == {}
        assert identity.model_dump(mode="json", by_alias=True) == record["last_seen_identity"]

        failures = list(users.failed_logins.list(account_id=account, user_id=user_id))
        assert [f.model_dump(mode="json") for f in failures] == record["failed_logins"]
        assert set(failures[0].metadata) == {"app_name", "aud", "datetime", "ray_id", "user_email",
                                             "user_uuid", "reason"}
        assert failures[0].metadata["user_uuid"] == user_id

    with pytest.raises(cloudflare.NotFoundError):
        users.active_sessions.get("NoSuchNonce00000", account_id=account, user_id=generated["users"][0]["user"]["id"])
