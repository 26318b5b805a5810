"""The throwaway databases the benchmarks run on, and Django set up on them.

SQLite: a new file in a temporary folder (on ``/dev/shm`` where there is one,
so that the disk's flushes do not drown what is measured). PostgreSQL: a
database dropped and created anew on the server of ``HTTP_HOOKS_PG_*``
(127.0.0.1, user ``postgres``, trust auth by default).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "demo"), str(ROOT)]


def _server_connection():
    import psycopg

    return psycopg.connect(
        host=os.environ.get("HTTP_HOOKS_PG_HOST", "127.0.0.1"),
        port=os.environ.get("HTTP_HOOKS_PG_PORT", "5432"),
        user=os.environ.get("HTTP_HOOKS_PG_USER", "postgres"),
        password=os.environ.get("HTTP_HOOKS_PG_PASSWORD", ""),
        dbname="postgres",
        autocommit=True,
    )


def drop_postgres(name: str) -> None:
    from django.db import connections

    connections.close_all()
    with _server_connection() as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")


def database_env(db: str, *, name: str) -> dict[str, str]:
    """Environment naming a new, empty database: ``db`` is ``sqlite`` or ``postgres``."""
    if db == "postgres":
        with _server_connection() as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name}")
            connection.execute(f"CREATE DATABASE {name}")
        return {"HTTP_HOOKS_DB": "postgres", "HTTP_HOOKS_PG_NAME": name}
    folder = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    return {"HTTP_HOOKS_DB": "sqlite", "HTTP_HOOKS_SQLITE_PATH": str(Path(folder) / f"{name}.db")}


def setup_django(env: dict[str, str]) -> None:
    """Set Django up on the database of ``env`` (DEBUG off, as in production) and migrate it."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "demo.settings"
    os.environ["DJANGO_DEBUG"] = "0"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
