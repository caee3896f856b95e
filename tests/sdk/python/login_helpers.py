"""Drive the sign-in pages over plain HTTP, as a browser without JavaScript would."""

import email
import re
import socket
import time
from urllib.parse import quote

import httpx
from aiosmtpd.controller import Controller


class Mailbox:
    """An SMTP server that keeps every message it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"

    def code_for(self, address: str, after: int = 0, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rcpts, message in self.messages[after:]:
                if address in rcpts:
                    return re.search(r"\b(\d{6})\b", message["Subject"]).group(1)
            time.sleep(0.05)
        raise AssertionError(f"no sign-in code reached {address}")


def start_smtp_sink():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, mailbox, port


def set_cookies(response) -> dict:
    jar = {}
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]
    return jar


def field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


class Visitor:
    """One browser: its own cookies per host."""

    def __init__(self, public_url: str):
        self.public_url = public_url
        self.http = httpx.Client(timeout=30, follow_redirects=False)
        self.cookies = {}

    def _cookie_header(self, host: str) -> dict:
        jar = self.cookies.get(host, {})
        return {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}

    def request(self, method: str, url: str, **kwargs):
        host = httpx.URL(url).netloc.decode()
        headers = {**self._cookie_header(host), **kwargs.pop("headers", {})}
        response = self.http.request(method, url, headers=headers, **kwargs)
        self.cookies.setdefault(host, {}).update(set_cookies(response))
        return response

    def open_login(self, app_domain: str, redirect_url: str):
        return self.request("GET", f"{self.public_url}/cdn-cgi/access/login/{app_domain}?redirect_url={quote(redirect_url, safe='')}")

    def send_code(self, login_page: str, address: str):
        return self.request("POST", f"{self.public_url}/cdn-cgi/access/otp/send", data={
            "app": field(login_page, "app"), "redirect_url": field(login_page, "redirect_url"),
            "email": address, "csrf": field(login_page, "csrf")})

    def verify(self, code_page: str, code: str, headers: dict | None = None):
        return self.request("POST", f"{self.public_url}/cdn-cgi/access/otp/verify", data={
            "challenge": field(code_page, "challenge"), "code": code, "csrf": field(code_page, "csrf")},
            headers=headers or {})

    def sign_in(self, mailbox: Mailbox, app_domain: str, redirect_url: str, address: str,
                headers: dict | None = None):
        """The whole flow; returns the final redirect response from the application's host."""
        login = self.open_login(app_domain, redirect_url)
        assert login.status_code == 200, login.text
        seen = len(mailbox.messages)
        code_page = self.send_code(login.text, address)
        assert code_page.status_code == 200, code_page.text
        verified = self.verify(code_page.text, mailbox.code_for(address, after=seen), headers)
        return verified

    def follow(self, response):
        return self.request("GET", response.headers["location"])
