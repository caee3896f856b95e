"""What every benchmark here shares: the release binaries, starting a
server and reading the address it prints, and driving it with `wrk`.
"""

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "target" / "release"
ACCESSD = RELEASE / "accessd"
BARE_HANDLER = RELEASE / "examples" / "bare_handler"
LUA = Path(__file__).resolve().parent / "lua"
TOKEN = "cfut_" + "BenchAdminToken" * 3 + "0123456"
BUILD = ["cargo", "build", "--release", "--bin", "accessd", "--example", "bare_handler"]


def build() -> None:
    subprocess.run(BUILD, cwd=ROOT, check=True)


def require_binaries() -> None:
    for binary in (ACCESSD, BARE_HANDLER):
        if not binary.exists():
            sys.exit(f"{binary} is missing: {' '.join(BUILD)}")


class Server:
    """A process that prints `listening on http://ADDRESS`; `started_in` is
    the time from spawn to that line, in seconds."""

    def __init__(self, command: list[str], env: dict | None = None):
        spawned = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        for line in self.process.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                self.started_in = time.perf_counter() - spawned
                self.base = match.group(1)
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                return
        raise RuntimeError(f"{command[0]} exited ({self.process.wait()}) before listening")

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS of /proc/PID/status)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def wait_idle(self, limit: float = 120.0) -> None:
        """Waits (up to `limit` s) until the process uses under 5% of a CPU:
        work a previous run left behind (requests wrk gave up on that still
        run to their end) must not count against the next one."""
        deadline = time.monotonic() + limit
        before = self.cpu_seconds()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.cpu_seconds()
            if now - before < 0.025:
                return
            before = now

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    server = Server(command, env)
    return server.process, server.base


def accessd_env(key_file: Path, outbox: Path | None = None) -> dict:
    env = {"ACCESSD_ADMIN_TOKEN": TOKEN, "ACCESSD_SECRET_KEY_FILE": str(key_file), "ACCESSD_LOG": "warn",
           # Sign-ins come from one address, many per second: lift the per-client and per-application caps.
           "ACCESSD_CODES_PER_CLIENT": "1000000000", "ACCESSD_CODES_PER_APPLICATION": "1000000000"}
    if outbox:
        env["ACCESSD_OUTBOX"] = str(outbox)
    return env


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return "wrk"
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return "wrk"


@dataclass
class Measurement:
    rate: float  # requests (or sign-ins) per second
    p50: float  # milliseconds
    p99: float


def median(measurements: list[Measurement]) -> Measurement:
    return Measurement(*(statistics.median(getattr(m, field) for m in measurements)
                         for field in ("rate", "p50", "p99")))


class RequestsFailed(RuntimeError):
    pass


def _millis(output: str, percentile: str) -> float:
    number, unit = re.search(rf"{percentile}%\s+([\d.]+)(us|ms|s)", output).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def _script(script: str | None, *more: str):
    """The request script (after the thread numbering it relies on) and
    `more` scripts, as one file for wrk; None for none at all."""
    names = (["numbered_threads.lua", script] if script else []) + list(more)
    if not names:
        yield None
        return
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as combined:
        combined.write("\n".join((LUA / name).read_text() for name in names))
        combined.flush()
        yield Path(combined.name)


def _run_wrk(url: str, headers: dict, seconds: int, connections: int, script: Path | None,
             script_args: list[str]) -> str:
    command = [ensure_wrk(), "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def wrk(url: str, headers: dict, seconds: int, connections: int = 32,
        script: str | None = None, script_args: list[str] | None = None) -> Measurement:
    """Runs wrk (2 threads); raises RequestsFailed on any non-2xx answer or socket error."""
    with _script(script) as lua:
        output = _run_wrk(url, headers, seconds, connections, lua, script_args or [])
    if "Non-2xx" in output or "Socket errors" in output:
        # Once more, briefly, with the script printing what the errors were.
        with _script(script, "report_errors.lua") as lua:
            again = _run_wrk(url, headers, 1, connections, lua, script_args or [])
        errors = "".join(line + "\n" for line in again.splitlines() if line.startswith("answered "))
        raise RequestsFailed(f"{url} answered errors:\n{output}\nA second run saw:\n{errors or again}")
    if re.search(r"^\s+0 requests in", output, re.MULTILINE):
        raise RequestsFailed(f"{url}: no request was answered within the {seconds} s run")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return Measurement(rate, _millis(output, "50"), _millis(output, "99"))


class PeakRss:
    """Samples the resident memory of `current()` (a server) every 100 ms while in use."""

    def __init__(self, current):
        self.current, self.peak, self._stop = current, 0.0, threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.current().rss_mib())
            except (OSError, AttributeError):  # between two processes, or one that ended and is reported elsewhere
                continue

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
