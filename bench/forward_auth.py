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
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
TOKEN = "cfut_" + "BenchAdminToken" * 3 + "0123456"


def start(command: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                               env={**__import__("os").environ, **(env or {})})
    for line in process.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(1)
    raise RuntimeError(f"{command[0]} exited before listening")


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return "wrk"
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return "wrk"


def sign_in(base: str, outbox: Path) -> tuple[str, str]:
    """An account with an application at localhost:<port>; returns (host, app token)."""
    api = httpx.Client(base_url=f"{base}/client/v4", headers={"Authorization": f"Bearer {TOKEN}"})
    account = api.post("/accounts", json={"name": "Bench"}).json()["result"]["id"]
    access = f"/accounts/{account}/access"
    api.post(f"{access}/identity_providers", json={"name": "PIN", "type": "onetimepin", "config": {}})
    policy = api.post(f"{access}/policies", json={"name": "Everyone", "decision": "allow",
                                                   "include": [{"everyone": {}}]}).json()["result"]["id"]
    host = f"localhost:{base.rsplit(':', 1)[1]}"
    api.post(f"{access}/apps", json={"type": "self_hosted", "name": "Bench", "domain": host,
                                     "policies": [policy]})
    browser = httpx.Client(base_url=base, follow_redirects=False)
    page = browser.get(f"/cdn-cgi/access/login/{host}", params={"redirect_url": f"http://{host}/"}).text
    field = lambda html, name: re.search(rf'name="{name}" value="([^"]*)"', html).group(1)
    sent = browser.post("/cdn-cgi/access/otp/send", data={
        "app": field(page, "app"), "redirect_url": field(page, "redirect_url"),
        "email": "bench@example.com", "csrf": field(page, "csrf")}).text
    message = sorted(outbox.iterdir())[-1].read_text()
    code = re.search(r"Subject: (\d{6})", message).group(1)
    done = browser.post("/cdn-cgi/access/otp/verify", data={
        "challenge": field(sent, "challenge"), "code": code, "csrf": field(sent, "csrf")})
    token = re.search(r"token=([^&]+)", done.headers["location"]).group(1)
    return host, token


def wrk(url: str, headers: dict, seconds: int, connections: int) -> tuple[float, float]:
    """Requests per second and p99 latency in milliseconds."""
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run(command + [url], check=True, capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    number, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()
    p99 = float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    if "Non-2xx" in output:
        raise RuntimeError(f"{url} answered errors:\n{output}")
    return rate, p99


def run(database: str | None, seconds: int, connections: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        outbox = scratch / "outbox"
        database = database or f"sqlite://{scratch / 'accessd.db'}"
        accessd, base = start([str(RELEASE / "accessd"), "serve", "--listen", "127.0.0.1:0",
                               "--database", database],
                              {"ACCESSD_ADMIN_TOKEN": TOKEN, "ACCESSD_OUTBOX": str(outbox),
                               "ACCESSD_SECRET_KEY_FILE": str(scratch / "secret.key"),
                               "ACCESSD_LOG": "warn"})
        bare_process, bare_base = start([str(RELEASE / "examples" / "bare_handler")])
        try:
            host, token = sign_in(base, outbox)
            headers = {"X-Original-URL": f"http://{host}/", "X-Original-Method": "GET",
                       "Cookie": f"CF_Authorization={token}"}
            bare, auth = [], []
            for _ in range(rounds):
                bare.append(wrk(f"{bare_base}/", headers, seconds, connections))
                auth.append(wrk(f"{base}/cdn-cgi/access/forward-auth", headers, seconds, connections))
        finally:
            accessd.terminate()
            bare_process.terminate()
        bare_rate, bare_p99 = (statistics.median(m[i] for m in bare) for i in (0, 1))
        auth_rate, auth_p99 = (statistics.median(m[i] for m in auth) for i in (0, 1))
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
    for binary in (RELEASE / "accessd", RELEASE / "examples" / "bare_handler"):
        if not binary.exists():
            sys.exit(f"{binary} is missing: cargo build --release --bin accessd --example bare_handler")
    run(None, args.seconds, args.connections, args.rounds)
    if args.postgres:
        run(args.postgres, args.seconds, args.connections, args.rounds)


if __name__ == "__main__":
    main()
