"""Forward-auth decisions per second and their p99, side by side with a bare
HTTP handler on the same stack, in one run.

    cargo build --release --bin accessd --example bare_handler
    .venv/bin/python bench/forward_auth.py [--seconds 10] [--connections 32] [--rounds 3] [--postgres URL]

It signs one user in through the PIN pages of a fresh server, then has `wrk`
(installed from Debian's packages when missing and run as root) ask
`/cdn-cgi/access/forward-auth` about the application with that user's
cookie, as nginx's `auth_request` would, and asks the bare handler the same
number of times with the same connections, alternating the two for several
rounds. It reports the median requests per second and p99 latency of each,
and their ratios (absolute figures vary between machines and from minute to
minute on a busy one; ratios less so).
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ACCESSD, BARE_HANDLER, accessd_env, median, require_binaries, start, wrk  # noqa: E402
from signin import protect_app, sign_in_once  # noqa: E402


def run(database: str | None, seconds: int, connections: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        outbox = scratch / "outbox"
        database = database or f"sqlite://{scratch / 'accessd.db'}"
        accessd, base = start([str(ACCESSD), "serve", "--listen", "127.0.0.1:0", "--database", database],
                              accessd_env(scratch / "secret.key", outbox))
        bare_process, bare_base = start([str(BARE_HANDLER)])
        try:
            host = protect_app(base)
            token = sign_in_once(base, host, outbox)
            headers = {"X-Original-URL": f"http://{host}/", "X-Original-Method": "GET",
                       "Cookie": f"CF_Authorization={token}"}
            bare, auth = [], []
            for _ in range(rounds):
                bare.append(wrk(f"{bare_base}/", headers, seconds, connections))
                auth.append(wrk(f"{base}/cdn-cgi/access/forward-auth", headers, seconds, connections))
        finally:
            accessd.terminate()
            bare_process.terminate()
        bare_rate, bare_p99 = median(bare).rate, median(bare).p99
        auth_rate, auth_p99 = median(auth).rate, median(auth).p99
        backend = database.split(":", 1)[0]
        print(f"{backend:<10} bare handler   {bare_rate:>10.0f} req/s   p99 {bare_p99:>8.2f} ms")
        print(f"{backend:<10} forward-auth   {auth_rate:>10.0f} req/s   p99 {auth_p99:>8.2f} ms")
        print(f"{backend:<10} ratio          {auth_rate / bare_rate:>10.1%} of the rate   "
              f"p99 x{auth_p99 / bare_p99:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two; medians are reported")
    parser.add_argument("--postgres", help="also run on this PostgreSQL database URL (it must be empty)")
    args = parser.parse_args()
    require_binaries()
    run(None, args.seconds, args.connections, args.rounds)
    if args.postgres:
        run(args.postgres, args.seconds, args.connections, args.rounds)


if __name__ == "__main__":
    main()
