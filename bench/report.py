"""The results as Markdown: the machine, the command, one table of
operations and one of the accessd process."""

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, Measurement


@dataclass
class Row:
    backend: str
    users: str
    operation: str
    served: Measurement | None  # None: the operation failed
    bare: Measurement | None  # None: no bare-handler baseline


@dataclass
class Process:
    backend: str
    users: str
    started_ms: float
    idle_rss_mib: float
    peak_rss_mib: float


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    memory = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({model.group(1) if model else 'unknown model'}), "
            f"{memory / 1024 / 1024:.1f} GiB memory; accessd at {commit or 'unknown commit'}")


def command() -> str:
    """The command line as typed from the repository's root."""
    python = Path(sys.executable)
    python = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    script = Path(sys.argv[0]).resolve()
    script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join([str(python), str(script), *sys.argv[1:]])


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def markdown(rows: list[Row], processes: list[Process], method: str) -> str:
    lines = [
        "# accessd benchmark",
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {machine()}",
        f"- command: `{command()}`",
        f"- method: {method}",
        "",
        "| backend | users | operation | req/s | p50 ms | p99 ms | bare req/s | bare p99 ms | rate / bare |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row.served is None:
            lines.append(f"| {row.backend} | {row.users} | {row.operation} | **FAILED** | | | | | |")
            continue
        s, b = row.served, row.bare
        bare = (f"{_number(b.rate)} | {_number(b.p99)} | {s.rate / b.rate:.1%}" if b else "— | — | —")
        lines.append(f"| {row.backend} | {row.users} | {row.operation} | {_number(s.rate)} | "
                     f"{_number(s.p50)} | {_number(s.p99)} | {bare} |")
    lines += ["", "| backend | users | start-up ms | idle RSS MiB | peak RSS under load MiB |",
              "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {p.backend} | {p.users} | {p.started_ms:,.0f} | {p.idle_rss_mib:,.0f} | {p.peak_rss_mib:,.0f} |"
              for p in processes]
    return "\n".join(lines) + "\n"
