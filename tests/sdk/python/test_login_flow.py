"""The one-time PIN login against the real binary and a real SMTP server,
checked through the official Python SDK; and the attacks it must refuse."""

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
import cloudflare

from login_helpers import Visitor, start_smtp_sink


@pytest.fixture(scope="module")
def smtp_sink():
    controller, mailbox, port = start_smtp_sink()
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="module")
def server_env(smtp_sink):
    return {"ACCESSD_SMTP_URL": f"smtp://127.0.0.1:{smtp_sink[1]}", "ACCESSD_COUNTRY_HEADER": "CF-IPCountry"}


@pytest.fixture(scope="module")
def mailbox(smtp_sink):
    return smtp_sink[0]


@pytest.fixture(scope="module")
def setup(server, admin):
    """An account with a PIN provider and an application at localhost:<port>
    that lets example.com in, except mallory."""
    account = admin.accounts.create(name="Login flow").id
    admin.zero_trust.identity_providers.create(account_id=account, name="PIN", type="onetimepin", config={})
    deny = admin.zero_trust.access.policies.create(account_id=account, name="No mallory", decision="deny",
                                                   include=[{"email": {"email": "mallory@example.com"}}])
    allow = admin.zero_trust.access.policies.create(account_id=account, name="Staff", decision="allow",
                                                    include=[{"email_domain": {"domain": "example.com"}}],
                                                    session_duration="2h")
    port = server.base.rsplit(":", 1)[1]
    app = admin.zero_trust.access.applications.create(
        account_id=account, type="self_hosted", name="Wiki", domain=f"localhost:{port}",
        policies=[{"id": deny.id, "precedence": 1}, {"id": allow.id, "precedence": 2}])
    return {"account": account, "app": app, "host": f"localhost:{port}", "allow": allow}


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def identity(visitor_or_token, host: str, token: str | None = None):
    headers = {"cookie": f"CF_Authorization={token}"} if token else {}
    client = visitor_or_token if not token else None
    if client:
        return client.request("GET", f"http://{host}/cdn-cgi/access/get-identity")
    return httpx.get(f"http://{host}/cdn-cgi/access/get-identity", headers=headers)


def test_pin_login_creates_the_records_and_revocation_ends_them(server, admin, setup, mailbox):
    host = setup["host"]
    visitor = Visitor(server.base)
    verified = visitor.sign_in(mailbox, host, f"http://{host}/wiki/home?tab=1", "New.Person@example.com",
                               headers={"CF-IPCountry": "de"})
    assert verified.status_code == 303
    landing = visitor.follow(verified)
    assert landing.status_code == 302
    assert landing.headers["location"] == f"http://{host}/wiki/home?tab=1"
    token = visitor.cookies[host]["CF_Authorization"]
    cookie_header = [c for c in landing.headers.get_list("set-cookie") if c.startswith("CF_Authorization=")][0]
    assert "HttpOnly" in cookie_header and "Path=/" in cookie_header

    claims = claims_of(token)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"]
    assert claims["aud"] == [setup["app"].aud]
    assert claims["email"] == "New.Person@example.com" and claims["type"] == "app"
    assert claims["iss"] == server.base and claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 7200, "the allow policy's session_duration"
    assert claims["country"] == "DE", "from the trusted country header"
    certs = httpx.get(f"http://{host}/cdn-cgi/access/certs").json()
    assert header["kid"] in [k["kid"] for k in certs["keys"]]
    assert certs["public_cert"]["kid"] == header["kid"]
    assert certs["public_cert"]["cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert [c["kid"] for c in certs["public_certs"]] == [k["kid"] for k in certs["keys"]]
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" and k["e"] == "AQAB" for k in certs["keys"])

    got = identity(visitor, host)
    assert got.status_code == 200, got.text
    assert got.json()["email"] == "New.Person@example.com" and got.json()["idp"]["type"] == "onetimepin"

    users = admin.zero_trust.access.users
    user = list(users.list(account_id=setup["account"], email="new.person@example.com"))[0]
    assert user.id == claims["sub"]
    assert user.access_seat is True and user.last_successful_login is not None
    sessions = list(users.active_sessions.list(user.id, account_id=setup["account"]))
    assert [s.metadata.nonce for s in sessions] == [claims["identity_nonce"]]
    assert list(sessions[0].metadata.apps) == [setup["app"].id]
    assert sessions[0].metadata.apps[setup["app"].id].hostname == host
    seen = users.last_seen_identity.get(user.id, account_id=setup["account"])
    assert seen.email == "New.Person@example.com" and seen.ip == "127.0.0.1" and seen.user_uuid == user.id
    assert seen.geo.country == "DE" and seen.idp.type == "onetimepin"
    assert users.active_sessions.get(claims["identity_nonce"], account_id=setup["account"], user_id=user.id).is_active

    # Logging out ends that session everywhere and clears the cookie.
    second = Visitor(server.base)
    second.follow(second.sign_in(mailbox, host, f"http://{host}/", "New.Person@example.com"))
    assert identity(second, host).status_code == 200
    old_token = second.cookies[host]["CF_Authorization"]
    logout = second.request("GET", f"http://{host}/cdn-cgi/access/logout")
    assert logout.status_code == 200 and "CF_Authorization=;" in logout.headers["set-cookie"]
    assert identity(None, host, token=old_token).status_code == 401
    assert identity(visitor, host).status_code == 200, "other sessions live on"

    assert admin.zero_trust.organizations.revoke_users(account_id=setup["account"], email="new.person@example.com")
    refused = identity(visitor, host)
    assert refused.status_code == 401, "revocation is immediate"
    assert users.active_sessions.get(claims["identity_nonce"], account_id=setup["account"], user_id=user.id).is_active is False


def test_denial_and_wrong_codes_are_failed_logins(server, admin, setup, mailbox):
    host = setup["host"]
    users = admin.zero_trust.access.users
    mallory = Visitor(server.base)
    denied = mallory.sign_in(mailbox, host, f"http://{host}/", "mallory@example.com")
    assert denied.status_code == 403 and "not allowed" in denied.text
    user = list(users.list(account_id=setup["account"], email="mallory@example.com"))[0]
    assert user.access_seat is False, "a denied user takes no seat"
    failures = list(users.failed_logins.list(user.id, account_id=setup["account"]))
    assert [f.metadata["reason"] for f in failures] == ["policy_denied"]
    meta = failures[0].metadata
    assert meta["app_name"] == "Wiki" and meta["aud"] == setup["app"].aud
    assert meta["user_email"] == "mallory@example.com" and meta["user_uuid"] == user.id
    assert len(meta["ray_id"]) == 16 and meta["datetime"].endswith("Z")

    # A wrong code, then a replayed good one.
    bob = users.create(account_id=setup["account"], email="bob@example.com")
    visitor = Visitor(server.base)
    login = visitor.open_login(host, f"http://{host}/")
    seen = len(mailbox.messages)
    code_page = visitor.send_code(login.text, "bob@example.com")
    code = mailbox.code_for("bob@example.com", after=seen)
    wrong = visitor.verify(code_page.text, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 401 and "not right" in wrong.text
    good = visitor.verify(code_page.text, code)
    assert good.status_code == 303
    replay = visitor.verify(code_page.text, code)
    assert replay.status_code == 400
    reasons = [f.metadata["reason"] for f in users.failed_logins.list(bob.id, account_id=setup["account"])]
    assert reasons == ["pin_reused", "pin_invalid"]


def test_brute_force_locks_the_code(server, admin, setup, mailbox):
    host = setup["host"]
    users = admin.zero_trust.access.users
    carol = users.create(account_id=setup["account"], email="carol@example.com")
    visitor = Visitor(server.base)
    login = visitor.open_login(host, f"http://{host}/")
    seen = len(mailbox.messages)
    code_page = visitor.send_code(login.text, "carol@example.com")
    code = mailbox.code_for("carol@example.com", after=seen)
    wrong = [c for c in ("111111", "222222", "333333", "444444", "555555", "666666") if c != code][:5]
    statuses = [visitor.verify(code_page.text, guess).status_code for guess in wrong]
    assert statuses == [401, 401, 401, 401, 429]
    assert visitor.verify(code_page.text, code).status_code in (400, 429), "the right code no longer works"
    reasons = [f.metadata["reason"] for f in users.failed_logins.list(carol.id, account_id=setup["account"])]
    assert reasons.count("pin_invalid") == 4 and "pin_locked" in reasons
    assert users.get(carol.id, account_id=setup["account"]).access_seat is False


def forge(header: dict, claims: dict, sign) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
    signing_input = f"{encode(header)}.{encode(claims)}"
    return f"{signing_input}.{sign(signing_input.encode())}"


def test_forged_and_misdirected_tokens_are_refused(server, admin, setup, mailbox):
    host = setup["host"]
    visitor = Visitor(server.base)
    visitor.follow(visitor.sign_in(mailbox, host, f"http://{host}/", "dave@example.com"))
    token = visitor.cookies[host]["CF_Authorization"]
    claims = claims_of(token)
    assert identity(None, host, token).status_code == 200

    unsigned = forge({"alg": "none", "typ": "JWT"}, claims, lambda _: "")
    assert identity(None, host, unsigned).status_code == 401
    jwks = httpx.get(f"http://{host}/cdn-cgi/access/certs").json()
    public = json.dumps(jwks["keys"][0]).encode()
    kid = jwks["keys"][0]["kid"]
    hs256 = forge({"alg": "HS256", "typ": "JWT", "kid": kid}, claims,
                  lambda data: base64.urlsafe_b64encode(hmac.new(public, data, hashlib.sha256).digest()).rstrip(b"=").decode())
    assert identity(None, host, hs256).status_code == 401
    tampered = forge({"alg": "RS256", "typ": "JWT", "kid": kid}, {**claims, "email": "ceo@example.com"},
                     lambda _: token.split(".")[2])
    assert identity(None, host, tampered).status_code == 401

    # The same token at another application's host is refused for its audience.
    other = admin.zero_trust.access.applications.create(
        account_id=setup["account"], type="self_hosted", name="Other",
        domain=f"127.0.0.1:{host.split(':')[1]}", policies=[setup["allow"].id])
    assert other.aud != setup["app"].aud
    assert identity(None, f"127.0.0.1:{host.split(':')[1]}", token).status_code == 401

    # Per-application revocation ends this application's tokens at once.
    admin.zero_trust.access.applications.revoke_tokens(setup["app"].id, account_id=setup["account"])
    assert identity(None, host, token).status_code == 401
    admin.zero_trust.access.applications.delete(other.id, account_id=setup["account"])


def test_expired_token_is_refused(server, admin, setup, mailbox):
    short = admin.zero_trust.access.policies.create(account_id=setup["account"], name="Brief", decision="allow",
                                                    include=[{"everyone": {}}], session_duration="1s")
    port = setup["host"].split(":")[1]
    app = admin.zero_trust.access.applications.create(account_id=setup["account"], type="self_hosted",
                                                      name="Brief", domain=f"localhost:{port}/brief",
                                                      policies=[short.id])
    visitor = Visitor(server.base)
    verified = visitor.sign_in(mailbox, f"localhost:{port}/brief", f"http://localhost:{port}/brief", "erin@example.com")
    token = dict(httpx.URL(verified.headers["location"]).params)["token"]
    time.sleep(2.2)
    assert identity(None, f"localhost:{port}", token).status_code == 401
    admin.zero_trust.access.applications.delete(app.id, account_id=setup["account"])


def test_open_redirects_and_cross_site_posts_are_refused(server, setup):
    host = setup["host"]
    visitor = Visitor(server.base)
    for target in ("https://evil.example/", f"http://{host}@evil.example/", "//evil.example/", "javascript:alert(1)"):
        assert visitor.open_login(host, target).status_code == 400, target
    login = visitor.open_login(host, f"http://{host}/")
    stranger = httpx.post(f"{server.base}/cdn-cgi/access/otp/send", data={
        "app": host, "redirect_url": f"http://{host}/", "email": "victim@example.com", "csrf": "0" * 32})
    assert stranger.status_code == 403, "no CSRF cookie: a post from another site"
    cross_origin = visitor.request("POST", f"{server.base}/cdn-cgi/access/otp/send", data={
        "app": host, "redirect_url": f"http://{host}/", "email": "victim@example.com",
        "csrf": login.text.split('name="csrf" value="')[1].split('"')[0]},
        headers={"origin": "https://evil.example"})
    assert cross_origin.status_code == 403


def test_codes_to_one_address_are_limited(server, setup, mailbox):
    host = setup["host"]
    visitor = Visitor(server.base)
    login = visitor.open_login(host, f"http://{host}/")
    before = len(mailbox.messages)
    statuses = [visitor.send_code(login.text, "flooded@example.com").status_code for _ in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 429]
    assert sum("flooded@example.com" in rcpts for rcpts, _ in mailbox.messages[before:]) == 5


def test_a_policy_can_require_a_scim_group(server, admin, setup, mailbox):
    account = setup["account"]
    idp = admin.zero_trust.identity_providers.create(
        account_id=account, name="Directory", type="oidc",
        config={"client_id": "c", "client_secret": "s", "auth_url": "https://dir.example.com/a",
                "token_url": "https://dir.example.com/t", "certs_url": "https://dir.example.com/k"},
        scim_config={"enabled": True})
    scim = httpx.Client(base_url=idp.scim_config.scim_base_url,
                        headers={"Authorization": f"Bearer {idp.scim_config.secret}"})
    member = scim.post("/Users", json={"userName": "grace@example.com",
                                       "emails": [{"value": "grace@example.com", "primary": True}]}).json()
    scim.post("/Users", json={"userName": "heidi@example.com"})
    group = scim.post("/Groups", json={"displayName": "Admins", "members": [{"value": member["id"]}]}).json()
    admins_only = admin.zero_trust.access.policies.create(
        account_id=account, name="Admins", decision="allow", include=[{"group": {"id": group["id"]}}])
    port = setup["host"].split(":")[1]
    domain = f"localhost:{port}/admin"
    app = admin.zero_trust.access.applications.create(account_id=account, type="self_hosted", name="Admin",
                                                      domain=domain, policies=[admins_only.id])
    allowed = Visitor(server.base).sign_in(mailbox, domain, f"http://localhost:{port}/admin", "grace@example.com")
    assert allowed.status_code == 303, allowed.text
    denied = Visitor(server.base).sign_in(mailbox, domain, f"http://localhost:{port}/admin", "heidi@example.com")
    assert denied.status_code == 403
    # Leaving the group in the directory closes the door at the next login.
    scim.patch(f"/Groups/{group['id']}", json={"Operations": [
        {"op": "remove", "path": f'members[value eq "{member["id"]}"]'}]})
    again = Visitor(server.base).sign_in(mailbox, domain, f"http://localhost:{port}/admin", "grace@example.com")
    assert again.status_code == 403
    admin.zero_trust.access.applications.delete(app.id, account_id=account)


def test_signing_keys_rotate_and_old_tokens_keep_verifying(server, admin, setup, mailbox):
    account, host = setup["account"], setup["host"]
    keys = admin.zero_trust.access.keys
    before = keys.get(account_id=account)
    assert before.key_rotation_interval_days == 42 and 0 <= before.days_until_next_rotation <= 42
    updated = keys.update(account_id=account, key_rotation_interval_days=30)
    assert updated.key_rotation_interval_days == 30
    with pytest.raises(cloudflare.BadRequestError):
        keys.update(account_id=account, key_rotation_interval_days=7)

    visitor = Visitor(server.base)
    visitor.follow(visitor.sign_in(mailbox, host, f"http://{host}/", "frank@example.com"))
    old_token = visitor.cookies[host]["CF_Authorization"]
    old_kid = json.loads(base64.urlsafe_b64decode(old_token.split(".")[0] + "=="))["kid"]

    rotated = keys.rotate(account_id=account)
    assert rotated.last_key_rotation_at > before.last_key_rotation_at
    certs = httpx.get(f"http://{host}/cdn-cgi/access/certs").json()
    kids = [k["kid"] for k in certs["keys"]]
    assert len(kids) == 2 and old_kid in kids and certs["public_cert"]["kid"] != old_kid
    assert identity(None, host, old_token).status_code == 200, "the previous key verifies for a week"

    fresh = Visitor(server.base)
    fresh.follow(fresh.sign_in(mailbox, host, f"http://{host}/", "frank@example.com"))
    new_token = fresh.cookies[host]["CF_Authorization"]
    new_kid = json.loads(base64.urlsafe_b64decode(new_token.split(".")[0] + "=="))["kid"]
    assert new_kid == certs["public_cert"]["kid"] != old_kid
