"""One-time-PIN sign-in through the pages a browser sees: one protected
application, one sign-in (for a forward-auth cookie), and many sign-ins at
once from Python threads to measure sign-ins per second end to end.
"""

import re
import threading
import time
from pathlib import Path

import httpx

from harness import TOKEN, Measurement, RequestsFailed


def protect_app(base: str) -> str:
    """A new account with a PIN provider, an allow-everyone policy and an
    application at localhost:<port>; returns that host."""
    api = httpx.Client(base_url=f"{base}/client/v4", headers={"Authorization": f"Bearer {TOKEN}"})
    account = api.post("/accounts", json={"name": "Bench"}).raise_for_status().json()["result"]["id"]
    access = f"/accounts/{account}/access"
    api.post(f"{access}/identity_providers",
             json={"name": "PIN", "type": "onetimepin", "config": {}}).raise_for_status()
    policy = api.post(f"{access}/policies", json={"name": "Everyone", "decision": "allow",
                                                   "include": [{"everyone": {}}]}).raise_for_status()
    host = f"localhost:{base.rsplit(':', 1)[1]}"
    api.post(f"{access}/apps", json={"type": "self_hosted", "name": "Bench", "domain": host,
                                     "policies": [policy.json()["result"]["id"]]}).raise_for_status()
    return host


class Outbox:
    """Sign-in codes from accessd's outbox folder, by recipient; each
    message is read once and deleted, so the folder stays small."""

    def __init__(self, folder: Path):
        self.folder, self.codes, self.lock = folder, {}, threading.Lock()

    def code_for(self, email: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if email not in self.codes:
                    self._read_new()
                if email in self.codes:
                    return self.codes.pop(email)
            time.sleep(0.001)
        raise RequestsFailed(f"no sign-in code for {email} in {self.folder}")

    def _read_new(self) -> None:
        if not self.folder.exists():
            return
        for message in self.folder.iterdir():
            text = message.read_text()
            to = re.search(r"^To: (\S+)\s*$", text, re.MULTILINE)
            code = re.search(r"^Subject: (\d{6})", text, re.MULTILINE)
            if to and code and text.endswith("\n"):  # else still being written: read it next time
                self.codes[to.group(1)] = code.group(1)
                message.unlink()


def _ok(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        raise RequestsFailed(f"{response.request.method} {response.request.url.path} answered "
                             f"{response.status_code}: {response.text[:300]}")
    return response


def _field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def sign_in(browser: httpx.Client, host: str, email: str, outbox: Outbox) -> str:
    """The login page, the e-mail form, the code form; returns the application token."""
    page = _ok(browser.get(f"/cdn-cgi/access/login/{host}", params={"redirect_url": f"http://{host}/"}))
    sent = _ok(browser.post("/cdn-cgi/access/otp/send", data={
        "app": _field(page.text, "app"), "redirect_url": _field(page.text, "redirect_url"),
        "email": email, "csrf": _field(page.text, "csrf")}))
    done = browser.post("/cdn-cgi/access/otp/verify", data={
        "challenge": _field(sent.text, "challenge"), "code": outbox.code_for(email),
        "csrf": _field(sent.text, "csrf")})
    token = re.search(r"token=([^&]+)", done.headers.get("location", ""))
    if done.status_code not in (302, 303) or not token:
        raise RequestsFailed(f"sign-in of {email} ended with {done.status_code}: {done.text[:300]}")
    return token.group(1)


def sign_in_once(base: str, host: str, outbox: Path, email: str = "bench@example.com") -> str:
    with httpx.Client(base_url=base, follow_redirects=False) as browser:
        return sign_in(browser, host, email, Outbox(outbox))


def sign_ins_per_second(base: str, host: str, outbox: Path, seconds: int, threads: int, tag: str) -> Measurement:
    """Signs new e-mail addresses in from `threads` threads for `seconds`;
    each sign-in is a fresh browser (no cookies) on a kept-alive connection."""
    mail = Outbox(outbox)
    latencies, failures = [], []
    deadline = time.monotonic() + seconds

    def worker(number: int) -> None:
        with httpx.Client(base_url=base, follow_redirects=False, timeout=30) as browser:
            count = 0
            while time.monotonic() < deadline and not failures:
                browser.cookies.clear()
                started = time.perf_counter()
                try:
                    sign_in(browser, host, f"signin-{tag}-{number}-{count}@bench.example", mail)
                except Exception as error:  # noqa: BLE001 (reported below, whatever it was)
                    failures.append(error)
                    return
                latencies.append((time.perf_counter() - started) * 1000)
                count += 1

    began = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise RequestsFailed(f"sign-in failed: {failures[0]!r}")
    latencies.sort()
    return Measurement(len(latencies) / elapsed, latencies[len(latencies) // 2],
                       latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))])
