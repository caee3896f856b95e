"""The requests measured with wrk against a running accessd, each asked of
the bare handler too (same path, headers and script) as the baseline.
Reads come first, so that the writes (which add users) cannot change them.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import httpx

from datasets import Dataset
from harness import TOKEN


@dataclass
class Operation:
    name: str
    path: str
    headers: dict
    script: str | None = None
    # The Lua script's arguments for round number n (0-based).
    script_args: Callable[[int], list[str]] = field(default=lambda _: [])
    connections: int | None = None  # instead of --connections


def operations(base: str, dataset: Dataset, active_user: str, forward_auth: dict,
               work: Path, rounds: int, tag: str) -> list[Operation]:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    users = f"/client/v4/accounts/{dataset.account}/access/users"
    api = httpx.Client(base_url=base, headers=admin, timeout=60)
    middle = api.get(users, params={"per_page": 1, "page": dataset.users // 2}).raise_for_status().json()["result"][0]
    pages = -(-dataset.users // 50)
    some_users = work / "users.txt"
    listed = api.get(users, params={"per_page": 1000}).raise_for_status().json()["result"]
    some_users.write_text("".join(f"{u['id']} {u['email']}\n" for u in listed))

    scim = {"Authorization": f"Bearer {dataset.scim_secret}"}
    scim_users = f"/scim/v2/{dataset.idp}/Users"
    scim_ids = Path(dataset.scim_ids).read_text().splitlines()
    user_name_eq = quote('userName eq "%s"' % scim_ids[len(scim_ids) // 2].split()[1])
    share = len(scim_ids) // max(rounds, 1)  # each round deactivates users of its own share
    return [
        Operation("get user by id", f"{users}/{middle['id']}", admin),
        Operation("list first page of 50", f"{users}?per_page=50", admin),
        Operation("list middle page of 50", f"{users}?per_page=50&page={pages // 2}", admin),
        Operation("list last page of 50", f"{users}?per_page=50&page={pages}", admin),
        Operation("email filter", f"{users}?email={quote(middle['email'])}", admin),
        Operation("search substring", f"{users}?per_page=50&search={middle['email'].split('.')[0]}", admin),
        Operation("active sessions of a user", f"{users}/{active_user}/active_sessions", admin),
        Operation("failed logins of a user", f"{users}/{active_user}/failed_logins", admin),
        # Seconds per request at 100k SCIM users (the filter reads every user of the provider): with 32
        # connections no request would finish within a run, so two connections measure its latency.
        Operation("SCIM userName eq (2 connections)", f"{scim_users}?filter={user_name_eq}", scim, connections=2),
        Operation("forward-auth decision", "/cdn-cgi/access/forward-auth", forward_auth),
        Operation("create user", users, admin, "create_user.lua", lambda n: [f"{tag}r{n}"]),
        Operation("update user", users, admin, "update_user.lua", lambda _: [str(some_users)]),
        Operation("SCIM PATCH deactivate", scim_users, scim, "scim_deactivate.lua",
                  lambda n: [dataset.scim_ids, str(n * share)]),
    ]
