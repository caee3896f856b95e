"""accessd as the forward-auth server of real nginx and Caddy, each configured
with the file in recipes/ as written: sign-in, what the application behind
receives, forged identity headers, the global session across applications,
service tokens and revocation. Traefik is not packaged by Debian: its recipe
is only checked for shape here."""

import time
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
import pytest
import yaml

from login_helpers import Visitor, start_smtp_sink
from proxy_harness import RECIPES, START, Echo, LocalhostTransport, header_values, placeholders, render

EMAIL = "Pat.Proxy@example.com"
HTML = {"accept": "text/html,application/xhtml+xml"}


class ProxyVisitor(Visitor):
    """A browser that reaches the applications' *.localhost hosts through the proxy."""

    def __init__(self, public_url: str):
        super().__init__(public_url)
        self.http = httpx.Client(timeout=30, follow_redirects=False, transport=LocalhostTransport())


@pytest.fixture(scope="module")
def smtp_sink():
    controller, mailbox, port = start_smtp_sink()
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="module")
def server_env(smtp_sink):
    return {"ACCESSD_SMTP_URL": f"smtp://127.0.0.1:{smtp_sink[1]}", "ACCESSD_TRUSTED_PROXY": "127.0.0.1/32"}


@pytest.fixture(scope="module")
def mailbox(smtp_sink):
    return smtp_sink[0]


@pytest.fixture(scope="module")
def upstream():
    echo = Echo()
    yield echo
    echo.stop()


@pytest.fixture(scope="module")
def account(admin):
    account = admin.accounts.create(name="Behind a proxy").id
    admin.zero_trust.identity_providers.create(account_id=account, name="PIN", type="onetimepin", config={})
    return account


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def stack(request, server, admin, account, upstream, tmp_path_factory):
    """The proxy in front of the echo upstream, with two Access applications
    on its hosts: example.com staff sign in; one service token gets in."""
    proxy = START[request.param](tmp_path_factory.mktemp(request.param), server.base, upstream.address)
    token = admin.zero_trust.access.service_tokens.create(account_id=account, name=f"robot {request.param}")
    staff = admin.zero_trust.access.policies.create(
        account_id=account, name=f"Staff {request.param}", decision="allow",
        include=[{"email_domain": {"domain": "example.com"}}])
    robots = admin.zero_trust.access.policies.create(
        account_id=account, name=f"Robot {request.param}", decision="non_identity",
        include=[{"service_token": {"token_id": token.id}}])
    apps = [admin.zero_trust.access.applications.create(
        account_id=account, type="self_hosted", name=f"{request.param} {host}", domain=host,
        policies=[{"id": robots.id, "precedence": 1}, {"id": staff.id, "precedence": 2}])
        for host in proxy.hosts]
    yield {"proxy": proxy, "apps": apps, "hosts": proxy.hosts, "token": token, "staff": staff}
    proxy.stop()


@pytest.fixture(autouse=True)
def proxy_logs(request):
    """Prints the proxy's logs after each test; pytest shows them only under a failure."""
    yield
    if "stack" in request.fixturenames:
        print(request.getfixturevalue("stack")["proxy"].logs())


def verified_claims(server, token: str, app) -> dict:
    """The application token's claims, checked as an origin would: RS256 with
    the key named by `kid` from the certs on the application's own host
    (through the proxy), the app's AUD, the issuer."""
    with httpx.Client(transport=LocalhostTransport()) as client:
        certs = client.get(f"http://{app.domain}/cdn-cgi/access/certs").json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(certs)[kid]
    return jwt.decode(token, key=key, algorithms=["RS256"], audience=app.aud, issuer=server.base,
                      options={"require": ["exp", "iat", "nbf", "aud", "iss", "sub"]})


def sign_in_url(server, host: str, original: str) -> str:
    return f"{server.base}/cdn-cgi/access/login/{host}?redirect_url={quote(original, safe='')}"


def assert_sent_to_sign_in(server, response, host: str, original: str):
    assert response.status_code == 302, (response.status_code, response.text)
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == server.base
    assert location.path == f"/cdn-cgi/access/login/{host}"
    assert parse_qs(location.query)["redirect_url"] == [original]


def signed_in(server, mailbox, stack, email=EMAIL, app_index=0) -> ProxyVisitor:
    """A visitor who signed in with a code through the proxy and holds the
    application's cookie on its host."""
    host = stack["hosts"][app_index]
    visitor = ProxyVisitor(server.base)
    original = f"http://{host}/"
    assert_sent_to_sign_in(server, visitor.request("GET", original, headers=HTML), host, original)
    verified = visitor.sign_in(mailbox, host, original, email)
    assert verified.status_code == 303, verified.text
    landing = visitor.follow(verified)
    assert landing.status_code == 302 and landing.headers["location"] == original, landing.text
    assert visitor.cookies[host].get("CF_Authorization")
    return visitor


def test_an_anonymous_visit_is_sent_to_the_sign_in_page(server, stack, upstream):
    host = stack["hosts"][0]
    original = f"http://{host}/reports/2024?page=2&sort=-date"
    seen = len(upstream.seen)
    with httpx.Client(transport=LocalhostTransport()) as client:
        assert_sent_to_sign_in(server, client.get(original, headers=HTML), host, original)
        if stack["proxy"].kind == "caddy":
            # Caddy passes accessd's answer through: a 401 for what is not a page.
            api = client.get(original, headers={"accept": "application/json"})
            assert api.status_code == 401, api.text
    assert len(upstream.seen) == seen, "the application never saw the request"


def test_signing_in_through_the_proxy_lets_the_request_through_with_identity(server, stack, upstream, mailbox):
    host, app = stack["hosts"][0], stack["apps"][0]
    visitor = signed_in(server, mailbox, stack)
    page = visitor.request("GET", f"http://{host}/reports/2024?page=2", headers=HTML)
    assert page.status_code == 200, page.text
    echoed = page.json()
    assert echoed["method"] == "GET" and echoed["path"] == "/reports/2024?page=2"
    assert header_values(echoed, "Host") == [host]
    assert header_values(echoed, "Cf-Access-Authenticated-User-Email") == [EMAIL]
    [assertion] = header_values(echoed, "Cf-Access-Jwt-Assertion")
    claims = verified_claims(server, assertion, app)
    assert claims["email"] == EMAIL and claims["type"] == "app"

    # A POST goes through too, body and all.
    posted = visitor.request("POST", f"http://{host}/form", data={"a": "1"})
    assert posted.status_code == 200 and posted.json()["method"] == "POST"


def test_forged_identity_headers_never_reach_the_application(server, stack, upstream, mailbox):
    host, app = stack["hosts"][0], stack["apps"][0]
    forged = {"Cf-Access-Authenticated-User-Email": "ceo@example.com"}
    seen = len(upstream.seen)
    with httpx.Client(transport=LocalhostTransport()) as anonymous:
        sent = anonymous.get(f"http://{host}/", headers={**HTML, **forged})
    assert_sent_to_sign_in(server, sent, host, f"http://{host}/")
    assert len(upstream.seen) == seen

    visitor = signed_in(server, mailbox, stack, email="forger@example.com")
    echoed = visitor.request("GET", f"http://{host}/", headers={**HTML, **forged}).json()
    assert header_values(echoed, "Cf-Access-Authenticated-User-Email") == ["forger@example.com"]

    # A service token has no e-mail: the forged header must not survive either.
    echoed = as_service_token(stack, forged)
    assert header_values(echoed, "Cf-Access-Authenticated-User-Email") == []


def as_service_token(stack, headers: dict) -> dict:
    """What the upstream receives for a request carrying the stack's service token."""
    token = stack["token"]
    robot = {"CF-Access-Client-Id": token.client_id, "CF-Access-Client-Secret": token.client_secret}
    with httpx.Client(transport=LocalhostTransport()) as client:
        answer = client.get(f"http://{stack['hosts'][0]}/api",
                            headers={**robot, **headers, "accept": "application/json"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_service_token_request_reaches_the_application_with_a_verifiable_token(server, stack):
    """Every request let through carries an application token; a service
    token's names the token's Client ID (`common_name`) and no e-mail."""
    echoed = as_service_token(stack, {})
    assertions = header_values(echoed, "Cf-Access-Jwt-Assertion")
    assert len(assertions) == 1, f"the upstream got {assertions} as Cf-Access-Jwt-Assertion"
    [assertion] = assertions
    claims = verified_claims(server, assertion, stack["apps"][0])
    assert claims["common_name"] == stack["token"].client_id
    assert not claims.get("email")


def test_a_second_application_opens_without_a_new_code(server, stack, upstream, mailbox):
    visitor = signed_in(server, mailbox, stack, email="two.apps@example.com")
    second_host, second_app = stack["hosts"][1], stack["apps"][1]
    original = f"http://{second_host}/start"
    sent = visitor.request("GET", original, headers=HTML)
    assert_sent_to_sign_in(server, sent, second_host, original)
    mails = len(mailbox.messages)
    handed_over = visitor.follow(sent)
    assert handed_over.status_code == 303, handed_over.text
    assert urlsplit(handed_over.headers["location"]).netloc == second_host
    landing = visitor.follow(handed_over)
    assert landing.status_code == 302 and landing.headers["location"] == original
    page = visitor.follow(landing)
    assert page.status_code == 200, page.text
    assert header_values(page.json(), "Cf-Access-Authenticated-User-Email") == ["two.apps@example.com"]
    [assertion] = header_values(page.json(), "Cf-Access-Jwt-Assertion")
    assert verified_claims(server, assertion, second_app)["email"] == "two.apps@example.com"
    assert len(mailbox.messages) == mails, "no second code was sent"


def test_revoking_the_user_shuts_the_proxy_within_a_second(server, admin, account, stack, mailbox):
    host = stack["hosts"][0]
    email = f"revoked.{stack['proxy'].kind}@example.com"
    visitor = signed_in(server, mailbox, stack, email=email)
    original = f"http://{host}/inbox"
    assert visitor.request("GET", original, headers=HTML).status_code == 200

    assert admin.zero_trust.organizations.revoke_users(account_id=account, email=email.lower())
    revoked_at = time.monotonic()
    while True:
        answer = visitor.request("GET", original, headers=HTML)
        if answer.status_code != 200:
            break
        assert time.monotonic() - revoked_at < 1.0, "still let through a second after revocation"
        time.sleep(0.05)
    assert_sent_to_sign_in(server, answer, host, original)


def test_a_policy_refusal_is_a_403_and_logout_on_the_app_host_ends_access(
        server, admin, account, stack, upstream, mailbox):
    host = stack["hosts"][0]
    kind = stack["proxy"].kind
    excluded = f"excluded.{kind}@example.com"
    refused = signed_in(server, mailbox, stack, email=excluded)
    leaver = signed_in(server, mailbox, stack, email=f"leaver.{kind}@example.com")
    staff = stack["staff"]
    admin.zero_trust.access.policies.update(
        staff.id, account_id=account, name=staff.name, decision="allow",
        include=[{"email_domain": {"domain": "example.com"}}], exclude=[{"email": {"email": excluded}}])
    seen = len(upstream.seen)
    denied = refused.request("GET", f"http://{host}/", headers=HTML)
    assert denied.status_code == 403, denied.text
    assert len(upstream.seen) == seen, "the application never saw the refused request"

    assert leaver.request("GET", f"http://{host}/", headers=HTML).status_code == 200
    out = leaver.request("GET", f"http://{host}/cdn-cgi/access/logout")
    assert out.status_code == 200 and leaver.cookies[host]["CF_Authorization"] == ""
    assert_sent_to_sign_in(server, leaver.request("GET", f"http://{host}/", headers=HTML), host, f"http://{host}/")


def test_the_client_cannot_choose_the_address_accessd_sees(server, admin, account, stack, upstream):
    """The recipes replace X-Forwarded-For with the peer's address: a client
    naming another address in it gets nothing for it. Two paths let anyone
    in from an address range: the proxy's own (which works: the rule is
    evaluated through the proxy) and one the client pretends to be in."""
    host = stack["hosts"][0]
    kind = stack["proxy"].kind
    for path, network in [("lobby", "127.0.0.1/32"), ("office", "203.0.113.0/24")]:
        bypass = admin.zero_trust.access.policies.create(
            account_id=account, name=f"{kind} {path}", decision="bypass", include=[{"ip": {"ip": network}}])
        admin.zero_trust.access.applications.create(
            account_id=account, type="self_hosted", name=f"{kind} {path}", domain=f"{host}/{path}",
            policies=[{"id": bypass.id, "precedence": 1}])
    spoofed = {**HTML, "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9"}
    with httpx.Client(transport=LocalhostTransport()) as client:
        lobby = client.get(f"http://{host}/lobby/door", headers=spoofed)
        assert lobby.status_code == 200 and lobby.json()["path"] == "/lobby/door", lobby.text
        seen = len(upstream.seen)
        office = client.get(f"http://{host}/office/desk", headers=spoofed)
    assert_sent_to_sign_in(server, office, f"{host}/office", f"http://{host}/office/desk")
    assert len(upstream.seen) == seen


@pytest.mark.parametrize("recipe", ["nginx.conf", "Caddyfile", "traefik.yml"])
def test_recipes_explain_every_placeholder_in_their_opening_comment(recipe):
    text = (RECIPES / recipe).read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#"))
    names = placeholders(recipe)
    assert names, f"{recipe} has no placeholders"
    for name in names:
        assert name in comments, f"{recipe} does not explain {name}"


def test_the_traefik_recipe_is_a_forward_auth_configuration():
    """Not run (Traefik is not packaged by Debian): its shape is checked."""
    config = yaml.safe_load(render("traefik.yml", {
        "APP_HOST": "app.example.com", "ENTRY_POINT": "web",
        "ACCESSD_URL": "http://127.0.0.1:8787", "UPSTREAM_URL": "http://127.0.0.1:3000"}))["http"]
    auth = config["middlewares"]["accessd"]["forwardAuth"]
    assert auth["address"] == "http://127.0.0.1:8787/cdn-cgi/access/forward-auth"
    assert auth["authResponseHeaders"] == ["Cf-Access-Jwt-Assertion", "Cf-Access-Authenticated-User-Email"]
    assert auth["trustForwardHeader"] is False

    routers = config["routers"]
    access, app = routers["app-access"], routers["app"]
    assert access["rule"] == "Host(`app.example.com`) && PathPrefix(`/cdn-cgi/access/`)"
    assert access["service"] == "accessd" and "middlewares" not in access
    assert app["rule"] == "Host(`app.example.com`)" and app["middlewares"] == ["accessd"]
    assert access["priority"] > app["priority"], "accessd's own paths win over the protected app"
    assert access["entryPoints"] == app["entryPoints"] == ["web"]

    services = config["services"]
    assert services[app["service"]]["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:3000"}]
    assert services["accessd"]["loadBalancer"]["servers"] == [{"url": "http://127.0.0.1:8787"}]
    assert services["accessd"]["loadBalancer"]["passHostHeader"] is True
