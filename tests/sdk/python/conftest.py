"""Start the real accessd binary for the SDK tests.

Each test module gets a fresh server on a temporary SQLite file and, when
TEST_POSTGRES_URL is set, a second run on a fresh PostgreSQL database.
"""

import json
import os
import re
import secrets
import subprocess
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
from cloudflare import Cloudflare

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("ACCESSD_BIN", ROOT / "target" / "debug" / "accessd"))
ADMIN_TOKEN = "cfut_" + "SdkAdminToken" * 3 + "0123456789"


class Server:
    def __init__(self, database_url: str, extra_env: dict | None = None):
        self.database_url = database_url
        env = dict(os.environ, ACCESSD_ADMIN_TOKEN=ADMIN_TOKEN, ACCESSD_LOG="warn", **(extra_env or {}))
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--listen", "127.0.0.1:0", "--database", database_url],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.base = None
        for line in self.process.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.base = match.group(1)
                break
        if self.base is None:
            raise RuntimeError(f"accessd exited with {self.process.wait()} before listening")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def client(self, token: str = ADMIN_TOKEN, **options) -> Cloudflare:
        return Cloudflare(api_token=token, base_url=f"{self.base}/client/v4", max_retries=0, **options)

    def generate(self, account_id: str, users: int, sessions: int, failed_logins: int) -> dict:
        """Writes users with activity through `accessd generate`; returns what the API should show."""
        output = subprocess.run(
            [str(BINARY), "generate", "--database", self.database_url, "--account", account_id,
             "--users", str(users), "--sessions-per-user", str(sessions),
             "--failed-logins-per-user", str(failed_logins), "--json"],
            check=True, capture_output=True, text=True, env=dict(os.environ, ACCESSD_LOG="warn"),
        )
        return json.loads(output.stdout)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def _backends():
    backends = ["sqlite"]
    if os.environ.get("TEST_POSTGRES_URL"):
        backends.append("postgres")
    elif os.environ.get("CI"):
        raise RuntimeError("TEST_POSTGRES_URL must be set in CI")
    return backends


@pytest.fixture(scope="module")
def server_env():
    """Extra environment for the module's server; modules override it."""
    return {}


@contextmanager
def postgres_database():
    """A fresh database on TEST_POSTGRES_URL's server, dropped afterwards; yields its URL."""
    admin_url = os.environ["TEST_POSTGRES_URL"]
    name = f"accessd_sdk_{secrets.token_hex(6)}"
    subprocess.run(["psql", admin_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=True)


@pytest.fixture(scope="module", params=_backends())
def server(request, tmp_path_factory, server_env):
    if request.param == "sqlite":
        database = nullcontext(f"sqlite://{tmp_path_factory.mktemp('db') / 'accessd.db'}")
    else:
        database = postgres_database()
    with database as url:
        running = Server(url, server_env)
        yield running
        running.stop()


@pytest.fixture(scope="module")
def admin(server) -> Cloudflare:
    return server.client()
