"""Three accessd processes on one PostgreSQL database behind nginx, configured
with recipes/nginx-load-balancer.conf as written (only its ports replaced),
round-robin: every request may land on another process. Through the
official SDK against the balancer: paging that neither skips nor repeats
while users come and go, sign-in with a one-time PIN, revocation through one
process refused by the others within a second, and SCIM from every side."""

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from cloudflare import Cloudflare

from conftest import ADMIN_TOKEN, Server, postgres_database
from login_helpers import Visitor, start_smtp_sink
from proxy_harness import RECIPES, free_port, run_nginx

RECIPE = "nginx-load-balancer.conf"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def recipe_addresses() -> tuple[str, list]:
    """The recipe's listen address and its upstream servers, in order."""
    text = (RECIPES / RECIPE).read_text()
    [listen] = re.findall(r"^\s*listen\s+(\S+);", text, re.M)
    servers = re.findall(r"^\s*server\s+(\S+);", text, re.M)
    return listen, servers


def render_with_ports(ports: dict) -> str:
    """The recipe with each `127.0.0.1:PORT` it names moved to `ports[PORT]`;
    nothing else changes."""
    text = (RECIPES / RECIPE).read_text()
    named = set(re.findall(r"127\.0\.0\.1:(\d+)", text))
    assert named == set(ports), f"{RECIPE} names ports {sorted(named)}, the test moves {sorted(ports)}"
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: f"127.0.0.1:{ports[m.group(1)]}", text)


class Cluster:
    """accessd processes sharing a database and a secret key file, and nginx
    in front of them at `base`, the address every process names as its
    public URL."""

    def __init__(self, directory: Path, database_url: str, smtp_port: int):
        listen, servers = recipe_addresses()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {"ACCESSD_PUBLIC_URL": self.base, "ACCESSD_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
               "ACCESSD_TRUSTED_PROXY": "127.0.0.1/32",
               "ACCESSD_SECRET_KEY_FILE": str(directory / "accessd-secret.key")}
        # The first process makes the secret key file the others read.
        self.processes = []
        for _ in servers:
            self.processes.append(Server(database_url, env))
        ports = {listen.rsplit(":", 1)[1]: port}
        for address, process in zip(servers, self.processes):
            ports[address.rsplit(":", 1)[1]] = process.base.rsplit(":", 1)[1]
        (directory / RECIPE).write_text(render_with_ports(ports))
        self.nginx = run_nginx(directory, [directory / RECIPE], port, [])

    def client(self, base: str | None = None) -> Cloudflare:
        return Cloudflare(api_token=ADMIN_TOKEN, base_url=f"{base or self.base}/client/v4", max_retries=0)

    def upstreams_of(self, pattern: str) -> set:
        """The processes (host:port) nginx sent requests matching `pattern` to."""
        log = (self.nginx.directory / "access.log").read_text()
        return {line.rsplit(" ", 1)[1] for line in log.splitlines() if re.search(pattern, line)}

    def addresses(self) -> set:
        return {process.base.removeprefix("http://") for process in self.processes}

    def stop(self):
        self.nginx.stop()
        for process in self.processes:
            process.stop()


@pytest.fixture(scope="module")
def smtp_sink():
    controller, mailbox, port = start_smtp_sink()
    yield mailbox, port
    controller.stop()


@pytest.fixture(scope="module")
def cluster(smtp_sink, tmp_path_factory):
    if not os.environ.get("TEST_POSTGRES_URL"):
        # Outside CI only: conftest refuses to run CI without PostgreSQL.
        pytest.skip("several processes need PostgreSQL: set TEST_POSTGRES_URL")
    with postgres_database() as url:
        running = Cluster(tmp_path_factory.mktemp("balanced"), url, smtp_sink[1])
        yield running
        running.stop()


@pytest.fixture(autouse=True)
def nginx_errors(request):
    """Prints nginx's error log after each test; pytest shows it only under a failure."""
    yield
    if "cluster" in request.fixturenames:
        print((request.getfixturevalue("cluster").nginx.directory / "error.log").read_text())


@pytest.fixture(scope="module")
def admin(cluster) -> Cloudflare:
    return cluster.client()


@pytest.fixture(scope="module")
def login_setup(cluster, admin):
    """An account with a PIN provider and an application on the balancer's
    own port under another name, letting example.com in."""
    account = admin.accounts.create(name="Balanced sign-in").id
    admin.zero_trust.identity_providers.create(account_id=account, name="PIN", type="onetimepin", config={})
    staff = admin.zero_trust.access.policies.create(
        account_id=account, name="Staff", decision="allow", include=[{"email_domain": {"domain": "example.com"}}])
    host = f"localhost:{cluster.base.rsplit(':', 1)[1]}"
    app = admin.zero_trust.access.applications.create(
        account_id=account, type="self_hosted", name="Wiki", domain=host, policies=[{"id": staff.id}])
    return {"account": account, "host": host, "app": app}


def signed_in(cluster, mailbox, host: str, email: str) -> str:
    """Signs in through the balancer; returns the application token."""
    visitor = Visitor(cluster.base)
    original = f"http://{host}/start"
    verified = visitor.sign_in(mailbox, host, original, email)
    assert verified.status_code == 303, verified.text
    landing = visitor.follow(verified)
    assert landing.status_code == 302 and landing.headers["location"] == original, landing.text
    return visitor.cookies[host]["CF_Authorization"]


def identity_at(base: str, host: str, token: str) -> httpx.Response:
    """get-identity asked of the process (or balancer) at `base` for `host`."""
    return httpx.get(f"{base}/cdn-cgi/access/get-identity",
                     headers={"host": host, "cookie": f"CF_Authorization={token}"})


def forward_auth_at(base: str, host: str, token: str) -> httpx.Response:
    return httpx.get(f"{base}/cdn-cgi/access/forward-auth",
                     headers={"cookie": f"CF_Authorization={token}", "X-Original-URL": f"http://{host}/doc",
                              "X-Original-Method": "GET", "accept": "application/json"})


def test_the_recipe_is_round_robin_over_three_processes():
    listen, servers = recipe_addresses()
    assert listen == "127.0.0.1:8787"
    assert servers == ["127.0.0.1:8788", "127.0.0.1:8789", "127.0.0.1:8790"]
    text = (RECIPES / RECIPE).read_text()
    config = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert not any(word in "\n".join(config) for word in ("ip_hash", "hash ", "least_conn", "sticky"))


def test_paging_through_the_balancer_lists_every_user_once(cluster, admin):
    """Each page comes from the next process; users deleted and created
    between pages neither shift nor join the listing begun before."""
    users = admin.zero_trust.access.users
    account = admin.accounts.create(name="Many users").id
    made = [users.create(account_id=account, email=f"user{i:03}@example.com", name=f"User {i:03}").id
            for i in range(300)]

    pages = users.list(account_id=account, per_page=25).iter_pages()
    first = next(pages)
    listed = [u.id for u in first.result]
    assert listed == made[:25]
    # Meanwhile, on two different processes: ten users of the first page go,
    # five new ones come.
    elsewhere = cluster.client(cluster.processes[1].base).zero_trust.access.users
    for user_id in made[:10]:
        elsewhere.delete(account_id=account, user_id=user_id)
    other = cluster.client(cluster.processes[2].base).zero_trust.access.users
    for i in range(5):
        other.create(account_id=account, email=f"late{i}@example.com", name=f"Late {i}")
    for page in pages:
        listed += [u.id for u in page.result]

    repeated = len(listed) - len(set(listed))
    skipped, later = len(set(made) - set(listed)), len(set(listed) - set(made))
    assert (repeated, skipped, later) == (0, 0, 0), (
        f"{repeated} users listed twice, {skipped} skipped, {later} created meanwhile listed")
    assert listed == made, "in creation order"
    assert cluster.upstreams_of(rf"/accounts/{account}/access/users\?") == cluster.addresses()


def test_signing_in_with_a_pin_through_the_balancer(cluster, admin, login_setup, smtp_sink):
    host = login_setup["host"]
    token = signed_in(cluster, smtp_sink[0], host, "Lee.Balanced@example.com")
    # The sign-in's own steps (page, code, check, hand-over) went to several processes.
    assert len(cluster.upstreams_of(r"/cdn-cgi/access/(login|otp|authorized)")) > 1
    for process in cluster.processes:
        answer = identity_at(process.base, host, token)
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == "Lee.Balanced@example.com"
    user = list(admin.zero_trust.access.users.list(account_id=login_setup["account"],
                                                   email="lee.balanced@example.com"))[0]
    assert user.access_seat is True and user.last_successful_login is not None


def test_revoking_through_one_process_is_refused_by_the_others_within_a_second(
        cluster, login_setup, smtp_sink):
    host, account = login_setup["host"], login_setup["account"]
    email = "revoked.balanced@example.com"
    token = signed_in(cluster, smtp_sink[0], host, email)
    one, two, three = cluster.processes
    assert identity_at(two.base, host, token).status_code == 200
    assert forward_auth_at(three.base, host, token).status_code == 200

    assert cluster.client(one.base).zero_trust.organizations.revoke_users(account_id=account, email=email)
    revoked_at = time.monotonic()
    refused = {}
    while len(refused) < 2:
        if "identity" not in refused and identity_at(two.base, host, token).status_code == 401:
            refused["identity"] = time.monotonic() - revoked_at
        if "forward-auth" not in refused and forward_auth_at(three.base, host, token).status_code != 200:
            refused["forward-auth"] = time.monotonic() - revoked_at
        assert time.monotonic() - revoked_at < 1.0, f"still let through a second after revocation: {refused}"
        time.sleep(0.02)
    print(f"refused after (seconds): {refused}")
    assert identity_at(cluster.base, host, token).status_code == 401


def test_scim_writes_on_one_process_are_read_on_the_others(cluster, admin):
    account = admin.accounts.create(name="SCIM everywhere").id
    idp = admin.zero_trust.identity_providers.create(
        account_id=account, name="Okta", type="oidc",
        config={"client_id": "c", "client_secret": "s", "auth_url": "https://okta.example.com/a",
                "token_url": "https://okta.example.com/t", "certs_url": "https://okta.example.com/k"},
        scim_config={"enabled": True, "user_deprovision": True, "seat_deprovision": True})
    assert idp.scim_config.scim_base_url == f"{cluster.base}/scim/v2/{idp.id}"
    headers = {"Authorization": f"Bearer {idp.scim_config.secret}", "Content-Type": "application/scim+json"}
    one, two, three, balanced = (
        httpx.Client(base_url=f"{base}/scim/v2/{idp.id}", headers=headers, timeout=30)
        for base in [p.base for p in cluster.processes] + [cluster.base])

    def user(i: int) -> dict:
        return {"schemas": [USER], "userName": f"scim{i}@example.com", "externalId": f"00u{i}",
                "displayName": f"Person {i}", "active": True,
                "emails": [{"value": f"scim{i}@example.com", "type": "work", "primary": True}]}

    first = one.post("/Users", json=user(1))
    assert first.status_code == 201, first.text
    second = two.post("/Users", json=user(2))
    assert second.status_code == 201, second.text
    first_id, second_id = first.json()["id"], second.json()["id"]
    renamed = two.patch(f"/Users/{first_id}", json={
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]})
    assert renamed.status_code == 200, renamed.text
    deactivated = one.patch(f"/Users/{second_id}", json={
        "schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]})
    assert deactivated.status_code == 200, deactivated.text
    assert three.get(f"/Users/{first_id}").json()["displayName"] == "Renamed"

    group = three.post("/Groups", json={"schemas": [GROUP], "displayName": "Ops", "members": [{"value": first_id}]})
    assert group.status_code == 201, group.text
    added = one.patch(f"/Groups/{group.json()['id']}", json={
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": second_id}]}]})
    assert added.status_code in (200, 204), added.text

    for client in (one, two, three, balanced):
        listed = client.get("/Users").json()
        assert listed["totalResults"] == 2
        assert {(u["id"], u["displayName"], u["active"]) for u in listed["Resources"]} == {
            (first_id, "Renamed", True), (second_id, "Person 2", False)}
        members = client.get(f"/Groups/{group.json()['id']}").json()["members"]
        assert {m["value"] for m in members} == {first_id, second_id}
    listed = list(admin.zero_trust.identity_providers.scim.users.list(idp.id, account_id=account))
    assert [(u.id, u.display_name) for u in listed] == [(first_id, "Renamed"), (second_id, "Person 2")]
