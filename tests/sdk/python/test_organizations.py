"""The Zero Trust organization through the official Python SDK: create,
list (one object), a partial update that keeps what it does not name, and
revoke_users."""

import cloudflare
import pytest


@pytest.fixture(scope="module")
def account(admin):
    return admin.accounts.create(name="Organization via SDK").id


def test_organization_round_trip(server, admin, account):
    orgs = admin.zero_trust.organizations
    with pytest.raises(cloudflare.NotFoundError):
        orgs.list(account_id=account)
    created = orgs.create(account_id=account, auth_domain="team.example.com", name="Team",
                          session_duration="12h", login_design={"background_color": "#ffffff"},
                          service_token_inactivity={"action": "disable", "enabled": True,
                                                    "inactivity_threshold_days": 90})
    assert created.auth_domain == "team.example.com"
    assert created.session_duration == "12h"

    updated = orgs.update(account_id=account, name="Renamed", auto_redirect_to_identity=True)
    assert updated.name == "Renamed"
    listed = orgs.list(account_id=account)
    assert listed.name == "Renamed"
    assert listed.session_duration == "12h", "an update keeps what it does not name"
    assert listed.auto_redirect_to_identity is True
    assert listed.login_design.background_color == "#ffffff"
    assert listed.service_token_inactivity.inactivity_threshold_days == 90

    with pytest.raises(cloudflare.BadRequestError):
        orgs.update(account_id=account, session_duration="1m")
    with pytest.raises(cloudflare.ConflictError):
        orgs.create(account_id=account, auth_domain="other.example.com", name="Second")


def test_revoke_users_answers_whether_anyone_was_signed_in(admin, account):
    revoked = admin.zero_trust.organizations.revoke_users(account_id=account, email="nobody@example.com")
    assert revoked is False
