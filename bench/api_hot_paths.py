"""Requests per second and p99 of the users API's hot reads, side by side
with a bare HTTP handler on the same stack, in one run.

    cargo build --release --bin accessd --example bare_handler
    .venv/bin/python bench/api_hot_paths.py [--users 5000] [--seconds 10] [--rounds 3] [--postgres URL]

It generates one account of `--users` users with `accessd generate` into a
fresh SQLite file (and, with `--postgres`, into that empty database), starts
accessd and `examples/bare_handler.rs`, and drives each with `wrk` (2
threads, 32 connections), alternating the two for several rounds. It
prints the median requests per second and p99 of each operation and their
ratio to the bare handler's.
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ACCESSD, BARE_HANDLER, TOKEN, accessd_env, median, require_binaries, start, wrk  # noqa: E402


def generate(database: str, users: int) -> str:
    out = subprocess.run([str(ACCESSD), "generate", "--database", database,
                          "--users", str(users)], check=True, capture_output=True, text=True,
                         env={"ACCESSD_LOG": "warn", "PATH": "/usr/bin:/bin"})
    return re.search(r"account ([0-9a-f]{32})", out.stdout).group(1)


def operations(base: str, account: str, users: int) -> dict[str, str]:
    api = httpx.Client(base_url=f"{base}/client/v4", headers={"Authorization": f"Bearer {TOKEN}"})
    path = f"/client/v4/accounts/{account}/access/users"
    middle = api.get(path.removeprefix("/client/v4"), params={"per_page": 1, "page": users // 2}).json()["result"][0]
    pages = -(-users // 50)
    return {
        "get user by id": f"{path}/{middle['id']}",
        "email filter": f"{path}?email={middle['email']}",
        "list page 1 of 50": f"{path}?per_page=50",
        "list middle page of 50": f"{path}?per_page=50&page={pages // 2}",
        "list last page of 50": f"{path}?per_page=50&page={pages}",
    }


def run(database: str, scratch: Path, users: int, seconds: int, rounds: int) -> None:
    account = generate(database, users)
    accessd, base = start([str(ACCESSD), "serve", "--listen", "127.0.0.1:0", "--database", database],
                          accessd_env(scratch / "secret.key"))
    bare_process, bare_base = start([str(BARE_HANDLER)])
    headers = {"Authorization": f"Bearer {TOKEN}"}
    backend = database.split(":", 1)[0]
    try:
        for name, path in operations(base, account, users).items():
            bare, served = [], []
            for _ in range(rounds):
                bare.append(wrk(f"{bare_base}{path}", headers, seconds, 32))
                served.append(wrk(f"{base}{path}", headers, seconds, 32))
            bare_rate, bare_p99 = median(bare).rate, median(bare).p99
            rate, p99 = median(served).rate, median(served).p99
            print(f"{backend:<9} {name:<24} {rate:>9.0f} req/s  p99 {p99:>7.2f} ms   "
                  f"bare {bare_rate:>9.0f} req/s  p99 {bare_p99:>6.2f} ms   "
                  f"{rate / bare_rate:>6.1%} of the rate, p99 x{p99 / bare_p99:.1f}", flush=True)
    finally:
        accessd.terminate()
        bare_process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database URL (it must be empty)")
    args = parser.parse_args()
    require_binaries()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run(f"sqlite://{scratch / 'accessd.db'}", scratch, args.users, args.seconds, args.rounds)
        if args.postgres:
            run(args.postgres, scratch, args.users, args.seconds, args.rounds)


if __name__ == "__main__":
    main()
