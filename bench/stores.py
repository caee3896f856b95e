"""Where a dataset lives on each backend: a pristine copy, kept across runs,
and a working copy made from it for each run (so that the writes of one
run never grow the next one's data).

SQLite: files under target/bench/datasets/, copied to target/bench/work/.
PostgreSQL: databases named after the one in `--postgres` (`<db>_<label>`
for each dataset, `<db>_work` for the run), made with CREATE DATABASE …
TEMPLATE through psql; the role needs CREATEDB. The database named in the
URL itself is only where psql connects, and is left as it is.
"""

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness import ROOT

BENCH_DIR = ROOT / "target" / "bench"
DATASETS = BENCH_DIR / "datasets"
WORK = BENCH_DIR / "work"


class SqliteStore:
    name = "sqlite"

    def __init__(self):
        self.key = "sqlite"

    def _path(self, label: str) -> Path:
        return DATASETS / f"sqlite-{label}.db"

    def pristine_url(self, label: str) -> str:
        return f"sqlite://{self._path(label)}"

    def exists(self, label: str) -> bool:
        return self._path(label).exists()

    def create_empty(self, label: str) -> None:
        DATASETS.mkdir(parents=True, exist_ok=True)
        for file in DATASETS.glob(f"sqlite-{label}.db*"):
            file.unlink()

    def finish(self, label: str) -> None:
        pass

    def working_copy(self, label: str) -> str:
        WORK.mkdir(parents=True, exist_ok=True)
        for file in WORK.glob("sqlite.db*"):
            file.unlink()
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self._path(label)}{suffix}")
            if source.exists():
                shutil.copyfile(source, WORK / f"sqlite.db{suffix}")
        return f"sqlite://{WORK / 'sqlite.db'}"

    def drop_working_copy(self) -> None:
        for file in WORK.glob("sqlite.db*"):
            file.unlink()


class PostgresStore:
    name = "postgres"

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        self.database = parts.path.lstrip("/")
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.database):
            raise SystemExit(f"--postgres: the database name {self.database!r} must be lower-case letters, "
                             "digits and underscores")
        self._parts = parts
        self.key = re.sub(r"[^A-Za-z0-9]+", "-", f"postgres-{parts.hostname}-{parts.port}-{self.database}")

    def _url_of(self, database: str) -> str:
        return urlunsplit(self._parts._replace(path=f"/{database}"))

    def _psql(self, sql: str, database: str | None = None) -> str:
        return subprocess.run(["psql", self._url_of(database or self.database), "-v", "ON_ERROR_STOP=1",
                               "-qAt", "-c", sql], check=True, capture_output=True, text=True).stdout

    def _name(self, label: str) -> str:
        return f"{self.database}_{label.replace('-', '_')}"

    def pristine_url(self, label: str) -> str:
        return self._url_of(self._name(label))

    def exists(self, label: str) -> bool:
        return bool(self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{self._name(label)}'").strip())

    def create_empty(self, label: str) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self._name(label)} WITH (FORCE)")
        self._psql(f"CREATE DATABASE {self._name(label)}")

    def finish(self, label: str) -> None:
        """Statistics for the planner, which every copy inherits (right after
        a bulk load PostgreSQL would otherwise pick poor plans)."""
        self._psql("VACUUM ANALYZE", database=self._name(label))

    def working_copy(self, label: str) -> str:
        self.drop_working_copy()
        self._psql(f"CREATE DATABASE {self.database}_work TEMPLATE {self._name(label)} STRATEGY FILE_COPY")
        return self._url_of(f"{self.database}_work")

    def drop_working_copy(self) -> None:
        self._psql(f"DROP DATABASE IF EXISTS {self.database}_work WITH (FORCE)")
