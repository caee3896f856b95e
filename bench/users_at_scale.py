"""Latency of the Access users API on one large account, on SQLite and
PostgreSQL side by side.

    .venv/bin/python bench/users_at_scale.py [--users 1000000] [--requests 40]

The first run generates the data with `accessd generate` (a few minutes for a
million users) and remembers the account in target/bench/; later runs reuse
it. The server is the binary in target/release if built, else target/debug.
Each operation is timed over the same number of requests, round-robin, and
reported as median and 95th percentile, with its ratio to fetching one user
by id in the same run (absolute times vary between machines; ratios less so).
"""

import argparse
import json
import os
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


def binary() -> Path:
    release = ROOT / "target" / "release" / "accessd"
    return release if release.exists() else ROOT / "target" / "debug" / "accessd"


def ensure_data(backend: str, url: str, users: int) -> str:
    """Returns the id of an account holding `users` users, generating it if needed."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    state_file = STATE_DIR / f"{backend}-{users}.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if state["url"] == url:
            return state["account"]
    print(f"[{backend}] generating {users} users (once; reused by later runs)…", flush=True)
    out = subprocess.run([str(binary()), "generate", "--database", url, "--users", str(users)],
                         check=True, capture_output=True, text=True)
    account = re.search(r"account ([0-9a-f]{32})", out.stdout).group(1)
    state_file.write_text(json.dumps({"url": url, "account": account}))
    return account


def start(url: str):
    env = dict(os.environ, ACCESSD_ADMIN_TOKEN=TOKEN, ACCESSD_LOG="warn")
    proc = subprocess.Popen([str(binary()), "serve", "--listen", "127.0.0.1:0", "--database", url],
                            stdout=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, match.group(1)
    raise RuntimeError("accessd did not start")


def measure(base: str, account: str, users: int, requests: int):
    client = httpx.Client(base_url=f"{base}/client/v4", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120)
    users_path = f"/accounts/{account}/access/users"
    middle = client.get(users_path, params={"per_page": 1, "page": users // 2}).json()["result"][0]
    last_page_100 = -(-users // 100)
    operations = {
        "get user by id": ("/" + middle["id"], {}),
        "list filtered by email": ("", {"email": middle["email"]}),
        "list page 1 (per_page=100)": ("", {"per_page": 100}),
        "list middle page (per_page=100)": ("", {"per_page": 100, "page": last_page_100 // 2}),
        "list last page (per_page=100)": ("", {"per_page": 100, "page": last_page_100}),
        "list page 1 (per_page=1000)": ("", {"per_page": 1000}),
        "list last page (per_page=1000)": ("", {"per_page": 1000, "page": -(-users // 1000)}),
        "search substring (full scan)": ("", {"search": "user00999"}),
    }
    samples = {name: [] for name in operations}
    operations = {name: (users_path + suffix, params) for name, (suffix, params) in operations.items()}
    for name, (path, params) in operations.items():
        client.get(path, params=params).raise_for_status()  # warm up
    for _ in range(requests):
        for name, (path, params) in operations.items():
            started = time.perf_counter()
            response = client.get(path, params=params)
            samples[name].append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return samples


def report(backend: str, samples: dict):
    reference = statistics.median(samples["get user by id"])
    print(f"\n{backend}: median and p95 in ms; ratio = median / median of get by id")
    print(f"  {'operation':<34}{'median':>9}{'p95':>9}{'ratio':>8}")
    for name, values in samples.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        median = statistics.median(values)
        print(f"  {name:<34}{median:>9.2f}{p95:>9.2f}{median / reference:>8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--sqlite", default=str(STATE_DIR / "users.db"))
    pg_admin = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    parser.add_argument("--postgres", default=pg_admin.rsplit("/", 1)[0] + "/accessd_bench",
                        help="database URL; the database must exist ('' to skip PostgreSQL)")
    args = parser.parse_args()
    backends = [("sqlite", f"sqlite://{args.sqlite}")]
    if args.postgres:
        backends.append(("postgres", args.postgres))
    for backend, url in backends:
        account = ensure_data(backend, url, args.users)
        proc, base = start(url)
        try:
            report(backend, measure(base, account, args.users, args.requests))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
