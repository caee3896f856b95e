"""Latency of SCIM lookups on one provider with many users, on SQLite and
PostgreSQL.

    /path/to/python bench/scim_lookup.py [--users 20000] [--requests 30] [--sqlite] [--postgres]

The first run creates an account, a SCIM provider and its users through the
SCIM API (eight at a time) and remembers them in target/bench/; later runs
reuse them, so a newer build can be timed on the data an older one made.
The server is the binary in target/release if built, else target/debug.
Each operation is timed over the same number of requests and reported as
median and 95th percentile.
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = ROOT / "target" / "bench"
TOKEN = "cfut_" + "BenchAdminToken" * 3 + "0123456"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def binary() -> Path:
    release = ROOT / "target" / "release" / "accessd"
    return release if release.exists() else ROOT / "target" / "debug" / "accessd"


def start(url: str):
    env = dict(os.environ, ACCESSD_ADMIN_TOKEN=TOKEN, ACCESSD_LOG="warn",
               ACCESSD_SECRET_KEY_FILE=str(STATE_DIR / "scim-bench.key"))
    proc = subprocess.Popen([str(binary()), "serve", "--listen", "127.0.0.1:0", "--database", url],
                            stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, match.group(1)
    raise RuntimeError("the server did not start")


def ensure_data(backend: str, url: str, base: str, users: int) -> dict:
    state_file = STATE_DIR / f"scim-{backend}-{users}.json"
    if state_file.exists():
        return json.loads(state_file.read_text())
    api = httpx.Client(base_url=f"{base}/client/v4", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    account = api.post("/accounts", json={"name": "SCIM bench"}).json()["result"]["id"]
    idp = api.post(f"/accounts/{account}/access/identity_providers", json={
        "name": "Bench", "type": "oidc", "scim_config": {"enabled": True},
        "config": {"client_id": "c", "client_secret": "s", "auth_url": "https://idp.example.com/a",
                   "token_url": "https://idp.example.com/t", "certs_url": "https://idp.example.com/k"}}).json()["result"]
    scim_base, secret = idp["scim_config"]["scim_base_url"], idp["scim_config"]["secret"]
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/scim+json"}
    print(f"[{backend}] creating {users} SCIM users (once; reused by later runs)…", flush=True)
    started = time.perf_counter()
    local = threading.local()

    def create(i: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(headers=headers, timeout=60)
        name = f"user{i:06d}@example.com"
        reply = local.client.post(f"{scim_base}/Users", json={
            "userName": name, "externalId": f"ext{i}", "displayName": f"User {i}",
            "emails": [{"value": name, "type": "work", "primary": True}]})
        reply.raise_for_status()
        return reply.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(users)))
    client = httpx.Client(headers=headers, timeout=60)
    group = client.post(f"{scim_base}/Groups", json={
        "displayName": "Everyone in the first thousand",
        "members": [{"value": i} for i in ids[:1000]]}).json()["id"]
    print(f"[{backend}] created in {time.perf_counter() - started:.0f} s", flush=True)
    state = {"url": url, "scim_base": scim_base.replace(base, "{base}"), "secret": secret,
             "users": users, "member": ids[500], "group": group}
    state_file.write_text(json.dumps(state))
    return state


def timed(client: httpx.Client, path: str, params: dict) -> float:
    started = time.perf_counter()
    reply = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    reply.raise_for_status()
    return elapsed * 1000


def run(backend: str, url: str, users: int, requests: int):
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    proc, base = start(url)
    try:
        state = ensure_data(backend, url, base, users)
        scim_base = state["scim_base"].replace("{base}", base)
        client = httpx.Client(headers={"Authorization": f"Bearer {state['secret']}"}, timeout=120)
        rng = random.Random(7)
        operations = {
            "userName eq": lambda: ("/Users", {
                "filter": f'userName eq "user{rng.randrange(users):06d}@example.com"'}),
            "emails.value eq": lambda: ("/Users", {
                "filter": f'emails.value eq "USER{rng.randrange(users):06d}@example.com"'}),
            "externalId eq": lambda: ("/Users", {"filter": f'externalId eq "ext{rng.randrange(users)}"'}),
            "unfiltered page 1 (count=100)": lambda: ("/Users", {"count": 100}),
            "unfiltered last page (count=100)": lambda: ("/Users", {"startIndex": users - 99, "count": 100}),
            "groups: members.value eq": lambda: ("/Groups", {
                "filter": f'members.value eq "{state["member"]}"', "excludedAttributes": "members"}),
        }
        times = {name: [] for name in operations}
        for _ in range(requests):
            for name, make in operations.items():
                path, params = make()
                times[name].append(timed(client, f"{scim_base}{path}", params))
        print(f"\n[{backend}] {users} SCIM users, {requests} requests per operation, {binary().parent.name} build")
        print(f"| operation | median ms | p95 ms |\n| --- | ---: | ---: |")
        for name, samples in times.items():
            samples.sort()
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            print(f"| {name} | {statistics.median(samples):.1f} | {p95:.1f} |")
    finally:
        proc.terminate()
        proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--sqlite", action="store_true")
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    backends = []
    if args.sqlite or not args.postgres:
        backends.append(("sqlite", f"sqlite://{STATE_DIR / f'scim-{args.users}.db'}"))
    if args.postgres or not args.sqlite:
        name = f"accessd_bench_scim_{args.users}"
        admin = PG_ADMIN
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], capture_output=True)
        backends.append(("postgres", admin.rsplit("/", 1)[0] + f"/{name}"))
    for backend, url in backends:
        run(backend, url, args.users, args.requests)


if __name__ == "__main__":
    main()
