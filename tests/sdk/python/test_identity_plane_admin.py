"""Identity providers, reusable policies, applications, revocation and seats
configured through the official Python SDK."""

import pytest
import cloudflare


@pytest.fixture(scope="module")
def account(admin):
    return admin.accounts.create(name="Identity plane via SDK").id


def test_identity_providers(admin, account):
    idps = admin.zero_trust.identity_providers
    pin = idps.create(account_id=account, name="PIN login", type="onetimepin", config={})
    assert pin.type == "onetimepin" and pin.id
    assert pin.config.redirect_url.endswith("/cdn-cgi/access/callback")
    oidc = idps.create(
        account_id=account, name="Corp", type="oidc",
        config={"client_id": "cid", "client_secret": "sec", "auth_url": "https://idp.example.com/auth",
                "token_url": "https://idp.example.com/token", "certs_url": "https://idp.example.com/jwks",
                "scopes": ["openid", "email", "profile"], "pkce_enabled": True, "claims": ["groups"],
                "email_claim_name": "email"},
        scim_config={"enabled": True, "user_deprovision": True, "seat_deprovision": True,
                     "identity_update_behavior": "automatic"},
    )
    assert oidc.type == "oidc" and oidc.config.client_id == "cid"
    assert oidc.config.client_secret != "sec"
    assert oidc.scim_config.enabled is True and oidc.scim_config.secret.startswith("scim_")
    listed = {p.id: p for p in idps.list(account_id=account)}
    assert set(listed) == {pin.id, oidc.id}
    assert [p.id for p in idps.list(account_id=account, scim_enabled="true")] == [oidc.id]
    assert idps.get(oidc.id, account_id=account).scim_config.secret is None
    renamed = idps.update(oidc.id, account_id=account, name="Corp SSO", type="oidc",
                          config={"client_id": "cid", "auth_url": "https://idp.example.com/auth",
                                  "token_url": "https://idp.example.com/token",
                                  "certs_url": "https://idp.example.com/jwks"})
    assert renamed.name == "Corp SSO"
    with pytest.raises(cloudflare.BadRequestError) as unsupported:
        idps.create(account_id=account, name="GitHub", type="github", config={"client_id": "x", "client_secret": "y"})
    assert "not supported" in unsupported.value.errors[0].message
    deleted = idps.delete(pin.id, account_id=account)
    assert deleted.id == pin.id
    with pytest.raises(cloudflare.NotFoundError):
        idps.get(pin.id, account_id=account)


def test_policies_and_applications(admin, account):
    policies = admin.zero_trust.access.policies
    staff = policies.create(account_id=account, name="Staff", decision="allow",
                            include=[{"email_domain": {"domain": "example.com"}}],
                            exclude=[{"email": {"email": "intern@example.com"}}],
                            require=[{"ip": {"ip": "10.0.0.0/8"}}])
    assert staff.decision == "allow" and staff.reusable is True and staff.app_count == 0
    assert staff.include[0].email_domain.domain == "example.com"
    blocked = policies.create(account_id=account, name="Blocked", decision="deny",
                              include=[{"email": {"email": "mallory@example.com"}}])

    apps = admin.zero_trust.access.applications
    app = apps.create(account_id=account, domain="wiki.example.com", type="self_hosted", name="Wiki",
                      session_duration="12h",
                      policies=[{"id": staff.id, "precedence": 2}, {"id": blocked.id, "precedence": 1}])
    assert app.type == "self_hosted" and len(app.aud) == 64
    assert [p.name for p in app.policies] == ["Blocked", "Staff"]
    assert apps.get(app.id, account_id=account).aud == app.aud
    assert [a.id for a in apps.list(account_id=account, domain="wiki.example.com", exact=True)] == [app.id]
    assert policies.get(staff.id, account_id=account).app_count == 1
    assert [p.id for p in policies.list(account_id=account)] == [staff.id, blocked.id]

    updated = apps.update(app.id, account_id=account, domain="wiki.example.com", type="self_hosted",
                          name="Wiki 2", policies=[staff.id])
    assert updated.name == "Wiki 2" and [p.id for p in updated.policies] == [staff.id]
    apps.revoke_tokens(app.id, account_id=account)
    with pytest.raises(cloudflare.ConflictError):
        policies.delete(staff.id, account_id=account)
    assert apps.delete(app.id, account_id=account).id == app.id
    assert policies.delete(staff.id, account_id=account).id == staff.id


def test_revoke_user_and_seats(admin, account):
    user = admin.zero_trust.access.users.create(account_id=account, email="seated@example.com")
    assert admin.zero_trust.organizations.revoke_users(account_id=account, email="seated@example.com") is True
    assert admin.zero_trust.organizations.revoke_users(account_id=account, email="ghost@example.com") is False
    seats = list(admin.zero_trust.seats.edit(account_id=account, body=[
        {"seat_uid": user.seat_uid, "access_seat": True, "gateway_seat": False}]))
    assert [(s.seat_uid, s.access_seat, s.gateway_seat) for s in seats] == [(user.seat_uid, True, False)]
    assert admin.zero_trust.access.users.get(user.id, account_id=account).access_seat is True
    with pytest.raises(cloudflare.NotFoundError):
        list(admin.zero_trust.seats.edit(account_id=account, body=[
            {"seat_uid": "00000000-0000-4000-8000-000000000000", "access_seat": False, "gateway_seat": False}]))
