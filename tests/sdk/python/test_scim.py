"""SCIM as identity providers send it, with the Access-side effects and the
v4 listings checked through the official Python SDK."""

import httpx
import pytest
import cloudflare

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture(scope="module")
def provider(server, admin):
    account = admin.accounts.create(name="SCIM via SDK").id
    idp = admin.zero_trust.identity_providers.create(
        account_id=account, name="Okta", type="oidc",
        config={"client_id": "c", "client_secret": "s", "auth_url": "https://okta.example.com/a",
                "token_url": "https://okta.example.com/t", "certs_url": "https://okta.example.com/k"},
        scim_config={"enabled": True, "user_deprovision": True, "seat_deprovision": True})
    scim = httpx.Client(base_url=idp.scim_config.scim_base_url,
                        headers={"Authorization": f"Bearer {idp.scim_config.secret}",
                                 "Content-Type": "application/scim+json"}, timeout=30)
    return {"account": account, "idp": idp, "scim": scim}


def test_pushed_resources_list_field_for_field(admin, provider):
    scim, idp, account = provider["scim"], provider["idp"], provider["account"]
    made = []
    for i, name in enumerate(["Ann Lee", "Bob Stone", "Cat Park"]):
        body = {"schemas": [USER], "userName": f"user{i}@example.com", "externalId": f"00u{i}",
                "displayName": name, "active": i != 2,
                "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True}]}
        reply = scim.post("/Users", json=body)
        assert reply.status_code == 201, reply.text
        made.append(reply.json())
    group = scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Engineering", "externalId": "g-eng",
                                      "members": [{"value": made[0]["id"]}]}).json()
    scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Sales"})

    listed = list(admin.zero_trust.identity_providers.scim.users.list(idp.id, account_id=account))
    assert [u.id for u in listed] == [m["id"] for m in made]
    first = listed[0].model_dump(mode="json", by_alias=True)
    assert first == {
        "id": made[0]["id"], "active": True, "displayName": "Ann Lee",
        "emails": [{"value": "user0@example.com", "type": "work", "primary": True}],
        "externalId": "00u0", "schemas": [USER],
        "meta": {"created": made[0]["meta"]["created"], "lastModified": made[0]["meta"]["lastModified"]},
    }
    assert listed[2].active is False

    users = admin.zero_trust.identity_providers.scim.users
    assert [u.id for u in users.list(idp.id, account_id=account, username="USER1@example.com")] == [made[1]["id"]]
    assert [u.id for u in users.list(idp.id, account_id=account, email="user2@example.com")] == [made[2]["id"]]
    assert [u.id for u in users.list(idp.id, account_id=account, name="stone")] == [made[1]["id"]]
    assert [u.id for u in users.list(idp.id, account_id=account, cf_resource_id=[made[0]["id"], made[2]["id"]])] == [made[0]["id"], made[2]["id"]]
    assert [u.id for u in users.list(idp.id, account_id=account, idp_resource_id=["00u1"])] == [made[1]["id"]]
    paged = users.list(idp.id, account_id=account, per_page=2)
    assert len(paged.result) == 2 and len(list(paged)) == 3
    with pytest.raises(cloudflare.BadRequestError):
        users.list(idp.id, account_id=account, cf_resource_id=[made[0]["id"]], username="user0@example.com")
    with pytest.raises(cloudflare.BadRequestError):
        users.list(idp.id, account_id=account, cf_resource_id=["a"], idp_resource_id=["b"])
    with pytest.raises(cloudflare.BadRequestError):
        users.list(idp.id, account_id=account, per_page=101)

    groups = list(admin.zero_trust.identity_providers.scim.groups.list(idp.id, account_id=account))
    assert [g.display_name for g in groups] == ["Engineering", "Sales"]
    assert groups[0].model_dump(mode="json", by_alias=True)["externalId"] == "g-eng"
    assert [g.id for g in admin.zero_trust.identity_providers.scim.groups.list(
        idp.id, account_id=account, idp_resource_id=["g-eng"])] == [group["id"]]
    assert [g.display_name for g in admin.zero_trust.identity_providers.scim.groups.list(
        idp.id, account_id=account, name="sal")] == ["Sales"]


def test_deprovisioning_reaches_access_before_the_answer(server, admin, provider):
    scim, account = provider["scim"], provider["account"]
    generated = server.generate(account, users=1, sessions=2, failed_logins=0)
    access_user = generated["users"][0]["user"]
    email = access_user["email"]
    users = admin.zero_trust.access.users
    assert len(list(users.active_sessions.list(access_user["id"], account_id=account))) == 2
    assert users.get(access_user["id"], account_id=account).access_seat is True

    pushed = scim.post("/Users", json={"schemas": [USER], "userName": email, "externalId": "okta-77",
                                       "emails": [{"value": email, "primary": True}]}).json()
    # Okta's deactivation: a path-less replace of {"active": false}.
    reply = scim.patch(f"/Users/{pushed['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"active": False}}]})
    assert reply.status_code == 200 and reply.json()["active"] is False
    assert list(users.active_sessions.list(access_user["id"], account_id=account)) == []
    assert users.get(access_user["id"], account_id=account).access_seat is False

    # Entra ID's way (string booleans, capitalised op), then deletion.
    reply = scim.patch(f"/Users/{pushed['id']}", json={"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "True"}]})
    assert reply.json()["active"] is True
    assert scim.delete(f"/Users/{pushed['id']}").status_code == 204
    assert [u.id for u in admin.zero_trust.identity_providers.scim.users.list(
        provider["idp"].id, account_id=account, username=email)] == []


def test_wrong_secrets_and_foreign_resources_are_refused(admin, provider):
    idp, account = provider["idp"], provider["account"]
    bad = httpx.get(f"{idp.scim_config.scim_base_url}/Users", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert bad.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    other = admin.zero_trust.identity_providers.create(
        account_id=account, name="Other", type="oidc",
        config={"client_id": "c", "client_secret": "s", "auth_url": "https://o.example.com/a",
                "token_url": "https://o.example.com/t", "certs_url": "https://o.example.com/k"},
        scim_config={"enabled": True})
    mine = provider["scim"].get("/Users").json()["Resources"][0]["id"]
    foreign = httpx.get(f"{other.scim_config.scim_base_url}/Users/{mine}",
                        headers={"Authorization": f"Bearer {other.scim_config.secret}"})
    assert foreign.status_code == 404
    crossed = httpx.get(f"{idp.scim_config.scim_base_url}/Users",
                        headers={"Authorization": f"Bearer {other.scim_config.secret}"})
    assert crossed.status_code == 401
