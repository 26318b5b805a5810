"""What the kind of event id costs an insert into a big table: random (version 4)
against time-ordered (version 7, ``http_hooks.models.uuid7``) UUIDs.

Every stored callback enters the unique index on ``event_id``. A random id lands
on a random page of that index: once the index outgrows PostgreSQL's buffers, an
insert reads a page back and dirties one of its own, and the first change of a
page after a checkpoint writes the whole page to the WAL. A time-ordered id
lands on the last pages, as the primary key does.

On PostgreSQL (``HTTP_HOOKS_PG_*``, a throwaway database named
``http_hooks_bench_event_ids``): two tables of ``--rows`` rows (5 million),
each a key, a unique ``uuid`` and a little text, one filled with random
UUIDs and one with time-ordered ones; then ``--inserts`` (5,000) single-row
inserts in autocommit into each, the tables taking turns over ``--rounds`` (4)
rounds with a ``CHECKPOINT`` before each (so that each round starts alike).
Prints each index's size, the median time an insert took and the WAL it wrote,
and the ratio of the two::

    .venv/bin/python bench/event_ids.py [--rows 5000000] [--inserts 5000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from benchdb import database_env, drop_postgres, setup_django

PG_NAME = "http_hooks_bench_event_ids"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--inserts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    setup_django(database_env("postgres", name=PG_NAME))
    from django.db import connection

    from http_hooks.models import uuid7

    kinds = {
        "version 4 (random)": ("random_ids", uuid.uuid4),
        "version 7 (ours)": ("v7_ids", uuid7),
    }
    started = time.monotonic()
    with connection.cursor() as cursor:
        for table, _ in kinds.values():
            cursor.execute(
                f"CREATE TABLE {table} (id bigserial PRIMARY KEY, event_id uuid UNIQUE NOT NULL, "
                "pad text)"
            )
        # Version 7 ids written by the server: 48 bits of time, then bits of a hash.
        cursor.execute(
            "INSERT INTO random_ids (event_id, pad) SELECT gen_random_uuid(), 'x' "
            "FROM generate_series(1, %s)",
            [args.rows],
        )
        cursor.execute(
            "INSERT INTO v7_ids (event_id, pad) SELECT (lpad(to_hex(1700000000000 + i), 12, '0') "
            "|| '7' || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid, "
            "'x' FROM generate_series(1, %s) AS i",
            [args.rows],
        )
        for table, _ in kinds.values():
            cursor.execute(f"VACUUM ANALYZE {table}")
        print(f"filled {args.rows} rows in each table in {time.monotonic() - started:.0f} s")
        for kind, (table, _) in kinds.items():
            cursor.execute("SELECT pg_relation_size(%s)", [f"{table}_event_id_key"])
            print(f"    index of {kind:<20} {cursor.fetchone()[0] / 2**20:6.0f} MB")
        spent: dict[str, list[float]] = {kind: [] for kind in kinds}
        wal: dict[str, list[float]] = {kind: [] for kind in kinds}
        for round_number in range(args.rounds):
            order = list(kinds)[:: 1 if round_number % 2 == 0 else -1]
            for kind in order:
                table, make = kinds[kind]
                cursor.execute("CHECKPOINT")
                cursor.execute("SELECT pg_current_wal_lsn()")
                (start_lsn,) = cursor.fetchone()
                begun = time.perf_counter()
                for _ in range(args.inserts):
                    cursor.execute(
                        f"INSERT INTO {table} (event_id, pad) VALUES (%s, 'x')", [make()]
                    )
                spent[kind].append((time.perf_counter() - begun) / args.inserts * 1e6)
                cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [start_lsn])
                wal[kind].append(float(cursor.fetchone()[0]) / args.inserts)
    print(
        f"{args.inserts} inserts in autocommit per table and round, {args.rounds} rounds, "
        "a CHECKPOINT before each; medians of the rounds"
    )
    for kind in kinds:
        rounds_text = ", ".join(f"{value:.0f}" for value in spent[kind])
        print(
            f"    {kind:<20} {statistics.median(spent[kind]):6.0f} us an insert "
            f"(rounds: {rounds_text}), {statistics.median(wal[kind]):6.0f} bytes of WAL"
        )
    time_ratio, wal_ratio = (
        statistics.median(values["version 7 (ours)"])
        / statistics.median(values["version 4 (random)"])
        for values in (spent, wal)
    )
    print(f"    ours / random: {time_ratio:.2f}x the time, {wal_ratio:.2f}x the WAL")
    drop_postgres(PG_NAME)


if __name__ == "__main__":
    main()
