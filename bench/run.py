"""accessd's throughput, latency, memory and start-up, beside a bare HTTP
handler on the same stack, on SQLite and PostgreSQL, at several sizes.

    .venv/bin/python bench/run.py [--sizes 10k,1m,10m] [--postgres URL] [--rounds 3] [--seconds 10]
                                  [--scim-users 100000] [--restart-per-run] [--no-build]

It builds the release binaries (unless --no-build), makes each dataset once
(target/bench/datasets/, see bench/datasets.py and bench/stores.py), and for
each backend and size starts accessd on a fresh copy of it beside
examples/bare_handler.rs. Each operation (bench/operations.py) is driven
with wrk (2 threads, --connections) on the bare handler, then on accessd,
--rounds times over; one-time-PIN sign-ins are driven end to end from
Python threads. Medians over the rounds are reported, with the ratio of
accessd's rate to the bare handler's, and accessd's start-up time, idle
memory and peak memory under load. Any failed request fails the run (after
the rest has been measured), and so does a run in which no request was
answered. Before each accessd run it waits until accessd is idle, since
requests wrk gave up on may still be running. One accessd process serves
every run of a backend and size, so a server that a run leaves worse off
shows in the runs after it; --restart-per-run starts it anew before each
run instead. The table goes to stdout and to target/bench/results.md.
"""

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
from harness import (ACCESSD, BARE_HANDLER, PeakRss, RequestsFailed, Server, accessd_env, build, ensure_wrk,
                     free_port, median, require_binaries, wrk)
from operations import operations
from report import Process, Row, markdown
from signin import protect_app, sign_in_once, sign_ins_per_second
from stores import BENCH_DIR, WORK, PostgresStore, SqliteStore


class Accessd:
    """accessd on one working copy, on a fixed port so that a restart keeps
    the application's host (localhost:PORT) and the cookies for it."""

    def __init__(self, url: str, key_file: Path, outbox: Path):
        self.command = [str(ACCESSD), "serve", "--listen", f"127.0.0.1:{free_port()}", "--database", url]
        self.env = accessd_env(key_file, outbox)
        self.server = Server(self.command, self.env)

    def restart(self) -> None:
        self.server.stop()
        self.server = Server(self.command, self.env)


def measure(args, store, dataset, bare: Server, tag: str) -> tuple[list[Row], Process, list[str]]:
    rows, failures = [], []
    size = datasets.short(dataset.users)
    url = store.working_copy(dataset.label)
    outbox = WORK / "outbox"
    shutil.rmtree(outbox, ignore_errors=True)
    try:
        subprocess.run([str(ACCESSD), "migrate", "--database", url], check=True, capture_output=True)
        active_user = datasets.add_activity(url, dataset)
        accessd = Accessd(url, Path(dataset.key_file), outbox)
        started_in = accessd.server.started_in
        base = accessd.server.base
        try:
            time.sleep(1)
            idle_rss = accessd.server.rss_mib()
            host = protect_app(base)
            cookie = sign_in_once(base, host, outbox)
            forward_auth = {"X-Original-URL": f"http://{host}/", "X-Original-Method": "GET",
                            "Cookie": f"CF_Authorization={cookie}"}
            with PeakRss(lambda: accessd.server) as peak:
                for op in operations(base, dataset, active_user, forward_auth, WORK, args.rounds, tag):
                    try:
                        bare_runs, served_runs = [], []
                        for n in range(args.rounds):
                            common = (op.headers, args.seconds, op.connections or args.connections, op.script,
                                      op.script_args(n))
                            bare_runs.append(wrk(f"{bare.base}{op.path}", *common))
                            if args.restart_per_run:
                                accessd.restart()
                            accessd.server.wait_idle()
                            served_runs.append(wrk(f"{base}{op.path}", *common))
                        rows.append(Row(store.name, size, op.name, median(served_runs), median(bare_runs)))
                    except RequestsFailed as failure:
                        failures.append(f"{store.name} {size} {op.name}: {failure}")
                        rows.append(Row(store.name, size, op.name, None, None))
                    progress(rows[-1])
                if args.restart_per_run:
                    accessd.restart()
                accessd.server.wait_idle()
                try:
                    sign_ins = [sign_ins_per_second(base, host, outbox, args.seconds, args.signin_threads,
                                                    f"{tag}r{n}") for n in range(args.rounds)]
                    rows.append(Row(store.name, size, "one-time-PIN sign-in (sign-ins/s)", median(sign_ins), None))
                except RequestsFailed as failure:
                    failures.append(f"{store.name} {size} sign-in: {failure}")
                    rows.append(Row(store.name, size, "one-time-PIN sign-in (sign-ins/s)", None, None))
                progress(rows[-1])
            process = Process(store.name, size, started_in * 1000, idle_rss, peak.peak)
        finally:
            accessd.server.stop()
    finally:
        store.drop_working_copy()
    return rows, process, failures


def progress(row: Row) -> None:
    result = "FAILED" if row.served is None else f"{row.served.rate:,.0f}/s p99 {row.served.p99:.2f} ms"
    print(f"  {row.backend} {row.users} {row.operation}: {result}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k", help="users per account, comma-separated (10k,1m,10m)")
    parser.add_argument("--postgres", help="also run on PostgreSQL; a database URL whose role may CREATE DATABASE "
                                           "(the datasets go in databases named after it)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of bare handler and accessd")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--signin-threads", type=int, default=8, help="Python threads signing in at once")
    parser.add_argument("--scim-users", type=int, default=100_000, help="users of the SCIM provider")
    parser.add_argument("--restart-per-run", action="store_true",
                        help="start accessd anew before each of its wrk runs, so that no run inherits what the end "
                             "of the previous one (wrk dropping the requests in flight) did to it")
    parser.add_argument("--no-build", action="store_true", help="use the release binaries as they are")
    args = parser.parse_args()
    # A terminated run still stops its servers and drops its working copy (the `finally` blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    sizes = [datasets.parse_size(size) for size in args.sizes.split(",")]
    if not args.no_build:
        build()
    require_binaries()
    ensure_wrk()
    stores = [SqliteStore()] + ([PostgresStore(args.postgres)] if args.postgres else [])
    tag = f"{int(time.time()):x}"
    rows, processes, failures = [], [], []
    bare = Server([str(BARE_HANDLER)])
    try:
        for store in stores:
            for users in sizes:
                dataset = datasets.ensure(store, users, args.scim_users)
                print(f"[{store.name} {dataset.label}] measuring", file=sys.stderr, flush=True)
                measured, process, failed = measure(args, store, dataset, bare, tag)
                rows += measured
                processes.append(process)
                failures += failed
    finally:
        bare.stop()
    restarts = "accessd started anew before each of its runs" if args.restart_per_run else "one accessd process"
    method = (f"wrk -t2 -c{args.connections}, {args.rounds} round(s) of {args.seconds} s per operation, bare handler "
              f"and accessd alternating, medians, {restarts}; {args.scim_users:,} SCIM users (made through the SCIM API, "
              f"16 threads); sign-ins from {args.signin_threads} Python threads, each sign-in a fresh browser "
              "(login page, e-mail form, code from the outbox, code form); start-up is spawn to 'listening on'; "
              "RSS is VmRSS of accessd, idle 1 s after start and the peak sampled every 100 ms under load")
    text = markdown(rows, processes, method)
    print(text)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    (BENCH_DIR / "results.md").write_text(text)
    if failures:
        print("\nFAILED: requests were answered with errors:\n" + "\n\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
