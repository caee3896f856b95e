"""The open SCIM compliance checker, scim2-tester, against a live server,
with every check it offers, after a provider pushed a user with attributes
the server does not keep."""

import collections

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILING = {Status.ERROR, Status.CRITICAL}


def test_scim2_tester_finds_no_failures(admin):
    account = admin.accounts.create(name="SCIM compliance").id
    idp = admin.zero_trust.identity_providers.create(
        account_id=account, name="Compliance", type="oidc",
        config={"client_id": "c", "client_secret": "s", "auth_url": "https://idp.example.com/a",
                "token_url": "https://idp.example.com/t", "certs_url": "https://idp.example.com/k"},
        scim_config={"enabled": True})
    http = Client(base_url=idp.scim_config.scim_base_url,
                  headers={"Authorization": f"Bearer {idp.scim_config.secret}"}, timeout=30)
    # An Okta-shaped create: a password, a locale and an undeclared attribute.
    okta = http.post("/Users", headers={"Content-Type": "application/scim+json"}, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "okta.user@example.com", "password": "not-kept-Secret1",
        "name": {"givenName": "Okta", "familyName": "User"},
        "emails": [{"primary": True, "value": "okta.user@example.com", "type": "work"}],
        "displayName": "Okta User", "locale": "en-US", "active": True,
        "noSuchAttribute": "dropped"})
    assert okta.status_code == 201, okta.text
    assert "password" not in okta.json() and "noSuchAttribute" not in okta.json()
    assert okta.json()["locale"] == "en-US"
    client = SyncSCIMClient(http)
    results = check_server(client)
    summary = collections.Counter(result.status.name for result in results)
    print(f"scim2-tester: {len(results)} checks: {dict(summary)}")
    failures = [f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in results if r.status in FAILING]
    assert not failures, "\n".join(failures)
    assert summary[Status.SUCCESS.name] > 0
