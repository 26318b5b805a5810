"""A database out of reach while the API answers: a 503 in the API's error body
(``database_unavailable``), one log line, nothing written, and the next request
served once the database is back; never the project's HTML 500 page."""

from __future__ import annotations

import base64
import datetime
import io
import json
import logging
import sqlite3
import threading
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.db import OperationalError, connection
from django.utils import timezone

from http_hooks.models import Hook

from .backends import (
    database_read_only,
    outage_on_call,
    sqlite_locked,
    terminate_this_backend,
)

UNAVAILABLE = {
    "code": "database_unavailable",
    "detail": "The database did not answer; try again.",
    "errors": [],
}
# The read of a hook's answer (``hook.signals.all()``), not the one of ``signals.set()``.
SIGNALS_OF_A_HOOK = 'SELECT "http_hooks_signal"."id", "http_hooks_signal"."signal"'
BASIC_AUTH = "Basic " + base64.b64encode(b"api:api-password").decode()


@pytest.mark.django_db(transaction=True)
def test_a_locked_database_is_a_503_and_changes_nothing(staff_client, receiver, caplog):
    if connection.vendor != "sqlite":
        pytest.skip("an SQLite file lock; PostgreSQL's dropped connection is the next test")
    body = {
        "target_url": receiver.url(),
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
    }
    with caplog.at_level(logging.ERROR, logger="http_hooks.api.errors"), sqlite_locked():
        response = staff_client.post("/api/hooks/", body, format="json")
    assert response.status_code == 503, response.content
    assert response.json() == UNAVAILABLE
    (record,) = [r for r in caplog.records if r.name == "http_hooks.api.errors"]
    assert record.getMessage() == "HookViewSet: the database did not answer (database is locked)"
    assert record.exc_info is None
    assert not Hook.objects.exists()
    created = staff_client.post("/api/hooks/", body, format="json")
    assert created.status_code == 201, created.content


@pytest.mark.django_db(transaction=True)
def test_a_write_during_another_connection_s_write_waits_its_turn(make_hook, staff_client):
    """SQLite: a transaction that reads, then writes (a rotation reads the hook's row
    first) could not wait for another connection's write, as the sender makes all the
    time: its upgrade to a writer was refused at once, whatever the busy timeout, and
    the request a 503 "database is locked". The demo's transactions begin
    ``IMMEDIATE`` (as the README advises), so they queue for the write lock."""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's locks; PostgreSQL's rows wait for each other already")
    hook = make_hook()
    other = sqlite3.connect(
        connection.settings_dict["NAME"], isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE http_hooks_hook SET name = 'renamed' WHERE id = ?", [hook.pk])
    commit = threading.Timer(0.5, other.execute, ["COMMIT"])
    commit.start()
    try:
        response = staff_client.post(f"/api/hooks/{hook.pk}/rotate-secret/", format="json")
    finally:
        commit.join()
        other.close()
    assert response.status_code == 200, response.content
    hook.refresh_from_db()
    assert (hook.name, hook.secret) == ("renamed", response.json()["secret"])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("health_checks", [False, True])
def test_a_dropped_connection_is_a_503_and_the_next_request_reconnects(
    make_hook, settings, monkeypatch, health_checks
):
    """Through Django's WSGI handler, as a server calls it, with the connection kept
    between requests (``CONN_MAX_AGE``), as in production: a restarted PostgreSQL
    leaves it dead. (Django's test client never closes a broken connection between
    requests; the handler does, at the end of the failed one.) With Django's
    ``CONN_HEALTH_CHECKS`` not even that one request fails, as the README says."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("api", password="api-password", is_staff=True)
    hook = make_hook()
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    monkeypatch.setitem(connection.settings_dict, "CONN_HEALTH_CHECKS", health_checks)
    connection.close()
    path = f"/api/hooks/{hook.pk}/"
    assert served(path)[0] == 200
    terminate_this_backend()
    if not health_checks:
        assert served(path) == (503, UNAVAILABLE)
    status, body = served(path)
    assert (status, body["id"]) == (200, hook.pk)


@pytest.mark.django_db(transaction=True)
def test_a_standby_refusing_a_write_is_a_503_and_changes_nothing(staff_client, receiver, caplog):
    """A failover: the API's new connection lands on a standby, which refuses the write
    (read_only_sql_transaction, an InternalError), as a later request's may not: a 503
    "try again" in the API's body, said in one line, as for the database away. It was
    an error the API did not handle, the project's 500 page. (SQLite's read-only
    database, SQLITE_READONLY, is an OperationalError: a 503 already.)"""
    body = {
        "target_url": receiver.url(),
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
    }
    with caplog.at_level(logging.ERROR, logger="http_hooks.api.errors"):
        with database_read_only():
            response = staff_client.post("/api/hooks/", body, format="json")
        connection.close()
    assert response.status_code == 503, response.content
    assert response.json() == UNAVAILABLE
    (record,) = [r for r in caplog.records if r.name == "http_hooks.api.errors"]
    refused = {
        "postgresql": "cannot execute INSERT in a read-only transaction",
        "sqlite": "attempt to write a readonly database",
    }[connection.vendor]
    assert record.getMessage() == f"HookViewSet: the database did not answer ({refused})"
    assert record.exc_info is None
    assert not Hook.objects.exists()
    created = staff_client.post("/api/hooks/", body, format="json")
    assert created.status_code == 201, created.content


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_kept_connection_that_met_a_standby_is_closed_after_the_request(
    receiver, settings, monkeypatch
):
    """Through Django's WSGI handler with connections kept (``CONN_MAX_AGE``): the
    connection that met a standby was kept (it answers, so Django found it usable), and
    every later write went to that standby, a 503, until it grew old, never with
    ``CONN_MAX_AGE = None``; a new connection may reach the new primary."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("api", password="api-password", is_staff=True)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    body = {
        "target_url": receiver.url(),
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
    }
    with database_read_only() as new_primary:
        assert served("/api/hooks/", body) == (503, UNAVAILABLE)
        new_primary()
        status, created = served("/api/hooks/", body)
    assert status == 201, created
    assert Hook.objects.get().pk == created["id"]


def served(path: str, body: Any = None) -> tuple[int, Any]:
    """A GET of ``path`` (a POST of ``body`` in JSON) through ``WSGIHandler``, closed as
    a server closes it."""
    environ = {"PATH_INFO": path, "HTTP_AUTHORIZATION": BASIC_AUTH}
    if body is not None:
        data = json.dumps(body).encode()
        environ.update(
            REQUEST_METHOD="POST",
            CONTENT_TYPE="application/json",
            CONTENT_LENGTH=str(len(data)),
            **{"wsgi.input": io.BytesIO(data)},
        )
    setup_testing_defaults(environ)
    started = []
    result = WSGIHandler()(environ, lambda status, headers: started.append(status))
    try:
        body = b"".join(result)
    finally:
        result.close()
    return int(started[0].split()[0]), json.loads(body)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/api/hooks/", "/api/callbacks/", "/api/signals/"])
def test_the_browsable_api_answers_a_locked_database_in_json(client, path):
    """A browser's ``Accept: text/html``: the 503 in the API's JSON body, not the
    browsable page, whose rendering (the user, the forms) asked the database again
    and failed outside the view as the project's HTML 500 page."""
    if connection.vendor != "sqlite":
        pytest.skip("an SQLite file lock")
    client.raise_request_exception = False
    client.force_login(User.objects.create_superuser("root"))
    with sqlite_locked():
        response = client.get(path, HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Content-Type"]) == (503, "application/json")
    assert response.json() == UNAVAILABLE
    assert client.get(path, HTTP_ACCEPT="text/html").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_hook_whose_answer_the_database_failed_to_read_is_not_created(staff_client, receiver):
    """The database lost once the hook is stored, before its answer (the signals) is
    read: the 503 says "try again", so nothing may stay behind; a retry would make a
    second hook, and the first one's secret would never be shown."""
    body = {
        "target_url": receiver.url(),
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
    }
    stored = []

    def lost_after_the_insert(execute, sql, params, many, context):
        if sql.startswith('INSERT INTO "http_hooks_hook"'):
            stored.append(sql)
        elif stored and sql.startswith(SIGNALS_OF_A_HOOK) and "JOIN" in sql:
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(lost_after_the_insert):
        response = staff_client.post("/api/hooks/", body, format="json")
    assert stored, "the hook was not inserted"
    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    assert not Hook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_missing_table_is_no_outage_to_try_again(staff_client):
    """SQLite says "no such table" (a migration not run) with an ``OperationalError``,
    as it says "database is locked": that one is the project's error, whenever it is
    tried, not a 503 "try again"."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's missing table is a ProgrammingError, never taken for one")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE http_hooks_signal RENAME TO http_hooks_signal_away")
    try:
        with pytest.raises(OperationalError, match="no such table"):
            staff_client.get("/api/signals/")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE http_hooks_signal_away RENAME TO http_hooks_signal")


@pytest.mark.django_db
def test_text_sqlite_cannot_decode_is_no_outage_to_try_again(staff_client, make_hook):
    """A row whose text is no UTF-8 (written by another program, or copied from an old
    table as bytes) is an ``OperationalError`` that Python's sqlite3 raises itself,
    without SQLite's error code: it fails whenever it is read, so it is no 503 "try
    again", and nothing reconnects on it (8 s of retries at each read)."""
    from http_hooks.delivery.reconnect import out_of_reach

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's text is whatever bytes were stored; PostgreSQL checks it")
    hook = make_hook()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE http_hooks_hook SET name = CAST(X'FF80' AS TEXT) WHERE id = %s", [hook.pk]
        )
    with pytest.raises(OperationalError, match="Could not decode") as raised:
        Hook.objects.get(pk=hook.pk)
    assert not out_of_reach(raised.value)
    with pytest.raises(OperationalError, match="Could not decode"):
        staff_client.get(f"/api/hooks/{hook.pk}/")


@pytest.mark.django_db(transaction=True)
def test_a_send_whose_database_goes_away_after_its_requests_leaves_nothing_stuck(
    staff_client, make_hook, receiver, settings, monkeypatch, caplog
):
    """``POST /callbacks/send/``: the database goes away once the first request is out.
    The answer is a 503, and what the batch held (the outcomes of the requests that went
    out, the claims of those not started) is left to the lease, in one line of the log:
    once it has run out, the next sender takes each callback over, and nothing stays
    ``sending``."""
    from http_hooks.api import send_callbacks
    from http_hooks.delivery import reconnect
    from http_hooks.models import Callback
    from shop.models import Order

    from .receiver import Behaviour

    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01,))
    if connection.vendor == "sqlite":
        # The sender's connection waits 10 ms for the lock, as ``sqlite_locked``'s does.
        monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.01)
        connection.close()
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "CONCURRENCY": 1, "HOOK_CONCURRENCY": 1}
    make_hook()
    for n in range(3):
        Order.objects.create(name=f"order {n}")
    with outage_on_call() as go_away:
        receiver.respond(pick=lambda request: go_away() or Behaviour())
        response = staff_client.post("/api/callbacks/send/", {}, format="json")
        receiver.respond()
    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    went_out = len(receiver.requests)
    assert set(Callback.objects.values_list("status", flat=True)) == {"sending"}
    said = [r.getMessage() for r in caplog.records if "ending without writing" in r.getMessage()]
    assert len(said) == 1 and f"{went_out} outcome(s) and {3 - went_out} claimed" in said[0]
    Callback.objects.update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))
    assert send_callbacks().sent == 3
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    assert len(receiver.requests) == went_out + 3
