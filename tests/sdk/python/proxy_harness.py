"""nginx and Caddy, run from the configurations in recipes/ exactly as written,
in front of an upstream that echoes what it received.

Each proxy runs as an ordinary process on an ephemeral port, with everything
it writes in a temporary directory. The recipe files are only templated by
replacing their marked placeholders; the few settings a test run needs on top
(pid and log files, no admin endpoint) are in a small main file that includes
them, as a server's own main configuration would.
"""

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[3]
RECIPES = ROOT / "recipes"
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def placeholders(recipe: str) -> set:
    """The placeholders the recipe's configuration (not its comments) uses."""
    lines = (RECIPES / recipe).read_text().splitlines()
    return set(PLACEHOLDER.findall("\n".join(line for line in lines if not line.lstrip().startswith("#"))))


def render(recipe: str, values: dict) -> str:
    """The recipe with each placeholder replaced; every placeholder the recipe
    uses must be given and every value given must be used."""
    text = (RECIPES / recipe).read_text()
    used = placeholders(recipe)
    if used != set(values):
        raise AssertionError(f"{recipe} uses placeholders {sorted(used)}, the test gives {sorted(values)}")
    for name, value in values.items():
        text = re.sub(rf"\b{name}\b", value, text)
    return text


def require_tool(name: str) -> str:
    """The tool's path. A missing tool is an error, never a skip: CI must run these tests."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed: run scripts/setup-test-tools")
    return found


class Echo:
    """An upstream application that answers every request with what it
    received, as JSON: method, path and the headers as [name, value] pairs."""

    def __init__(self):
        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                record = {"method": self.command, "path": self.path, "headers": list(self.headers.items())}
                seen.append(record)
                body = json.dumps(record).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def header_values(echoed: dict, name: str) -> list:
    return [value for key, value in echoed["headers"] if key.lower() == name.lower()]


class Proxy:
    """A running proxy; `hosts` are the application host names (with port)."""

    def __init__(self, kind: str, directory: Path, command: list, env: dict, port: int, hosts: list):
        self.kind = kind
        self.directory = directory
        self.port = port
        self.hosts = hosts
        self.log = open(directory / "output.log", "w")
        self.process = subprocess.Popen(command, cwd=directory, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{kind} exited with {self.process.returncode}:\n{self.logs()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{kind} did not listen on {port}:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')}"
                         for p in sorted(self.directory.glob("*.log")))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def app_hosts(port: int, names=("app1", "app2")) -> list:
    return [f"{name}.localhost:{port}" for name in names]


def start_nginx(directory: Path, accessd_base: str, upstream: str, names=("app1", "app2")) -> Proxy:
    port = free_port()
    hosts = app_hosts(port, names)
    files = []
    for host in hosts:
        files.append(directory / f"{host.split('.', 1)[0]}.conf")
        files[-1].write_text(render("nginx.conf", {
            "APP_LISTEN": f"127.0.0.1:{port}", "APP_HOST": host.split(":")[0],
            "ACCESSD_URL": accessd_base, "UPSTREAM_URL": f"http://{upstream}"}))
    return run_nginx(directory, files, port, hosts)


def run_nginx(directory: Path, recipe_files: list, port: int, hosts: list) -> Proxy:
    """nginx with a main file that includes `recipe_files` into its http
    block; its access log names the upstream that answered each request."""
    nginx = require_tool("nginx")
    temp = directory / "temp"
    temp.mkdir()
    # As root, nginx would hand its workers to "nobody", who cannot enter
    # the private temporary directory.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    includes = "\n".join(f"    include {path};" for path in recipe_files)
    (directory / "nginx.conf").write_text(f"""
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_method $request_uri $status $upstream_addr';
    access_log {directory}/access.log upstreams;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{includes}
}}
""")
    command = [nginx, "-p", str(directory), "-e", str(directory / "error.log"),
               "-c", str(directory / "nginx.conf"), "-g", "daemon off;"]
    return Proxy("nginx", directory, command, dict(os.environ), port, hosts)


def start_caddy(directory: Path, accessd_base: str, upstream: str, names=("app1", "app2")) -> Proxy:
    caddy = require_tool("caddy")
    port = free_port()
    hosts = app_hosts(port, names)
    imports = []
    for host in hosts:
        name = host.split(".", 1)[0]
        (directory / f"{name}.Caddyfile").write_text(render("Caddyfile", {
            "APP_SITE": f"http://{host}", "ACCESSD_ADDRESS": accessd_base.removeprefix("http://"),
            "UPSTREAM_ADDRESS": upstream}))
        imports.append(f"import {directory / name}.Caddyfile")
    imports_text = "\n".join(imports)
    (directory / "Caddyfile").write_text(f"{{\n\tadmin off\n}}\n\n{imports_text}\n")
    home = directory / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               XDG_CONFIG_HOME=str(home / "config"))
    command = [caddy, "run", "--config", str(directory / "Caddyfile"), "--adapter", "caddyfile"]
    return Proxy("caddy", directory, command, env, port, hosts)


START = {"nginx": start_nginx, "caddy": start_caddy}


class LocalhostTransport(httpx.HTTPTransport):
    """Sends requests for *.localhost to 127.0.0.1, keeping their Host header
    (this resolver, unlike browsers, does not map *.localhost to loopback)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".localhost"):
            request.url = request.url.copy_with(host="127.0.0.1")
        return super().handle_request(request)
