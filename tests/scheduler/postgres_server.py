"""A real PostgreSQL for the scheduler tests: the one running on 127.0.0.1:5432 when it
admits ``postgres`` without a password (or ``SFU_TEST_POSTGRES_URL``), else a private cluster
started here from Debian's binaries (initdb as the ``postgres`` user, trust auth, a free port),
stopped at the end. Each test database is created fresh and dropped after."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _works(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_cluster() -> Iterator[str]:
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh --test installs "
                           "Debian's postgresql)")
    bindir = os.path.dirname(binaries[-1])
    folder = tempfile.mkdtemp(prefix="sfu-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(folder, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = os.path.join(folder, "data")
    subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-w", "-l",
                    os.path.join(folder, "log"), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "start"], check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    url = os.environ.get("SFU_TEST_POSTGRES_URL", DEFAULT)
    if _works(url):
        yield url
        return
    with private_cluster() as started:
        yield started


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database; yields its SQLAlchemy URL (psycopg 3 driver)."""
    name = "sfu_test_" + secrets.token_hex(5)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
