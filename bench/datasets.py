"""The data a run measures, made once per backend and size and reused:

- `accessd generate` writes the account's users (all but the active ones);
- a SCIM-enabled OIDC provider gets `--scim-users` users through its SCIM
  API, from 16 threads in parallel (the first ones carry the e-mails of
  the account's users, so that they link to them as a directory would);
- each run then works on a copy, where `accessd generate` adds the active
  users (with sessions and failed logins dated now, so they are never
  expired however old the dataset is), bringing the account to its size.
"""

import json
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from harness import ACCESSD, TOKEN, Server, accessd_env
from stores import DATASETS

SESSIONS_PER_USER = 5
FAILED_LOGINS_PER_USER = 5
SCIM_THREADS = 16
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"


def parse_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([km]?)", text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 10k, 1m or 2500")
    return int(match.group(1)) * {"": 1, "k": 1000, "m": 1_000_000}[match.group(2)]


def short(number: int) -> str:
    for unit, size in (("m", 1_000_000), ("k", 1000)):
        if number >= size and number % size == 0:
            return f"{number // size}{unit}"
    return str(number)


def active_users(users: int) -> int:
    """How many users of the account have sessions and failed logins."""
    return max(1, min(1000, users // 10))


@dataclass
class Dataset:
    label: str
    users: int
    scim_users: int
    account: str
    idp: str
    scim_secret: str
    scim_ids: str  # file of "id userName" lines, in creation order
    key_file: str


def generate(url: str, users: int, *extra: str) -> str:
    return subprocess.run([str(ACCESSD), "generate", "--database", url, "--users", str(users), *extra],
                          check=True, stdout=subprocess.PIPE, text=True,
                          env={"ACCESSD_LOG": "warn", "PATH": "/usr/bin:/bin"}).stdout


def ensure(store, users: int, scim_users: int) -> Dataset:
    label = f"{short(users)}-scim{short(scim_users)}"
    state = DATASETS / f"{store.key}-{label}.json"
    if state.exists() and store.exists(label):
        return Dataset(**json.loads(state.read_text()))
    print(f"[{store.name} {label}] making the dataset (once; later runs reuse it)", file=sys.stderr, flush=True)
    state.unlink(missing_ok=True)
    store.create_empty(label)
    url = store.pristine_url(label)
    base_users = users - active_users(users)
    account = re.search(r"account ([0-9a-f]{32})", generate(url, base_users)).group(1)
    key_file = DATASETS / f"{store.key}-{label}.key"
    key_file.unlink(missing_ok=True)
    server = Server([str(ACCESSD), "serve", "--listen", "127.0.0.1:0", "--database", url], accessd_env(key_file))
    try:
        idp, secret = _scim_provider(server.base, account)
        ids_file = DATASETS / f"{store.key}-{label}-scim-ids.txt"
        emails = _scim_emails(server.base, account, base_users, scim_users)
        _create_scim_users(f"{server.base}/scim/v2/{idp}", secret, emails, ids_file)
    finally:
        server.stop()
    store.finish(label)
    dataset = Dataset(label, users, scim_users, account, idp, secret, str(ids_file), str(key_file))
    state.write_text(json.dumps(asdict(dataset), indent=1))
    return dataset


def _scim_provider(base: str, account: str) -> tuple[str, str]:
    made = httpx.post(f"{base}/client/v4/accounts/{account}/access/identity_providers",
                      headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"name": "Directory", "type": "oidc", "config": {
                          "client_id": "bench", "client_secret": "bench",
                          "auth_url": "https://idp.example.com/auth", "token_url": "https://idp.example.com/token",
                          "certs_url": "https://idp.example.com/keys"},
                          "scim_config": {"enabled": True, "user_deprovision": True, "seat_deprovision": True}})
    result = made.raise_for_status().json()["result"]
    return result["id"], result["scim_config"]["secret"]


def _scim_emails(base: str, account: str, base_users: int, scim_users: int) -> list[str]:
    """The account's users' e-mails (`accessd generate` numbers them), then made-up ones."""
    first = httpx.get(f"{base}/client/v4/accounts/{account}/access/users", params={"per_page": 1},
                      headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status().json()["result"][0]
    suffix = first["email"].removeprefix("user00000000")
    return [f"user{n:08}{suffix}" if n < base_users else f"scim{n:08}@scim.example" for n in range(scim_users)]


def _create_scim_users(scim_base: str, secret: str, emails: list[str], ids_file: Path) -> None:
    ids: list[str | None] = [None] * len(emails)
    failures = []

    def worker(first: int) -> None:
        with httpx.Client(base_url=scim_base, headers={"Authorization": f"Bearer {secret}"}, timeout=60) as scim:
            for n in range(first, len(emails), SCIM_THREADS):
                if failures:
                    return
                email = emails[n]
                made = scim.post("/Users", json={
                    "schemas": [USER_SCHEMA], "userName": email, "externalId": f"ext-{n}", "active": True,
                    "name": {"givenName": "Directory", "familyName": f"User {n}"},
                    "displayName": f"Directory User {n}", "emails": [{"value": email, "type": "work", "primary": True}]})
                if made.status_code != 201:
                    failures.append(f"SCIM create of {email}: {made.status_code} {made.text[:300]}")
                    return
                ids[n] = made.json()["id"]
                if first == 0 and n % (SCIM_THREADS * 5000) == 0:
                    print(f"  SCIM users: {n}/{len(emails)}", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(SCIM_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(failures[0])
    ids_file.write_text("".join(f"{i} {e}\n" for i, e in zip(ids, emails)))


def add_activity(url: str, dataset: Dataset) -> str:
    """Adds the active users to a working copy (see the module's doc);
    returns the id of one of them."""
    out = generate(url, active_users(dataset.users), "--account", dataset.account,
                   "--sessions-per-user", str(SESSIONS_PER_USER),
                   "--failed-logins-per-user", str(FAILED_LOGINS_PER_USER), "--json")
    return json.loads(out)["users"][0]["user"]["id"]
