"""Prometheus metrics: scraped from ``GET /api/metrics/`` after real deliveries and read
with prometheus_client's own parser; who may scrape; the short cache of the database
figures; the registry they go in; many sender processes; and no prometheus_client."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.checks import run_checks
from django.db import OperationalError, connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from http_hooks.api import send_callbacks
from http_hooks.models import Callback, DisabledReason, Hook
from shop.models import Order

from .backends import sqlite_locked

ROOT = Path(__file__).resolve().parent.parent
URL = "/api/metrics/"
FAST = {"TIMEOUT": (1.0, 0.5), "RETRY_JITTER": 0.0, "RETRY_SCHEDULE": [60, 600]}
# A project's own registry, named by METRICS_REGISTRY in a test.
PROJECT_REGISTRY = CollectorRegistry()

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

pytestmark = pytest.mark.django_db


def hooks_settings(**overrides):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **FAST, **overrides})


@pytest.fixture(autouse=True)
def fresh_figures():
    """Every scrape reads the database, unless a test says otherwise."""
    with hooks_settings(METRICS_CACHE_SECONDS=0):
        yield


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client: APIClient) -> Samples:
    response = client.get(URL)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.content.decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """Counters and histograms live as long as the process: tests compare scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def orders(count: int) -> None:
    for n in range(count):
        Order.objects.create(name=f"order {n}")


# --- after real deliveries ---------------------------------------------------------


def test_tries_are_counted_by_hook_and_outcome_with_their_durations(
    make_hook, receiver, staff_client
):
    sent = make_hook(target_url=receiver.url("/sent"))
    retried = make_hook(target_url=receiver.url("/retried"))
    failed = make_hook(target_url=receiver.url("/failed"))
    receiver.respond("/retried", status=500)
    receiver.respond("/failed", status=500)
    orders(3)
    # The last try of the third hook's callbacks: their failure is final.
    Callback.objects.filter(hook=failed).update(attempts=1)
    before = scrape(staff_client)
    with hooks_settings(MAX_ATTEMPTS=2, BREAKER_FAILURES=None):
        report = send_callbacks()
    after = scrape(staff_client)

    assert (report.sent, report.retried, report.failed) == (3, 3, 3)
    deliveries = "http_hooks_deliveries_total"
    counted = {
        (hook.pk, outcome): delta(before, after, deliveries, hook=str(hook.pk), outcome=outcome)
        for hook in (sent, retried, failed)
        for outcome in ("sent", "retried", "failed")
    }
    assert counted == {
        (sent.pk, "sent"): 3, (sent.pk, "retried"): 0, (sent.pk, "failed"): 0,
        (retried.pk, "sent"): 0, (retried.pk, "retried"): 3, (retried.pk, "failed"): 0,
        (failed.pk, "sent"): 0, (failed.pk, "retried"): 0, (failed.pk, "failed"): 3,
    }  # fmt: skip
    for hook in (sent, retried, failed):
        labels = {"hook": str(hook.pk)}
        assert delta(before, after, "http_hooks_attempt_duration_seconds_count", **labels) == 3
        assert (
            delta(before, after, "http_hooks_attempt_duration_seconds_bucket", le="+Inf", **labels)
            == 3
        )
    assert value(after, "http_hooks_callbacks", status="sent") == 3
    assert value(after, "http_hooks_callbacks", status="waiting") == 3
    assert value(after, "http_hooks_callbacks", status="error") == 3
    assert value(after, "http_hooks_callbacks", status="sending") == 0
    # The retries are due in a minute: nothing is due now.
    assert value(after, "http_hooks_oldest_due_callback_age_seconds") == 0


def test_without_metrics_by_hook_all_hooks_are_counted_together(make_hook, receiver, staff_client):
    """Many hooks (one per tenant) must not make a dozen series each."""
    first = make_hook(target_url=receiver.url("/first"))
    second = make_hook(target_url=receiver.url("/second"))
    orders(2)
    before = scrape(staff_client)
    with hooks_settings(METRICS_BY_HOOK=False):
        assert send_callbacks().sent == 4
    after = scrape(staff_client)
    deliveries = "http_hooks_deliveries_total"
    assert delta(before, after, deliveries, hook="", outcome="sent") == 4
    assert delta(before, after, "http_hooks_attempt_duration_seconds_count", hook="") == 4
    for hook in (first, second):
        labels = {"hook": str(hook.pk)}
        assert delta(before, after, deliveries, outcome="sent", **labels) == 0
        assert delta(before, after, "http_hooks_attempt_duration_seconds_count", **labels) == 0


def test_a_slow_answer_lands_in_its_duration_bucket(make_hook, receiver, staff_client):
    hook = make_hook()
    receiver.respond(delay=0.15)
    orders(1)
    before = scrape(staff_client)
    send_callbacks()
    after = scrape(staff_client)
    labels = {"hook": str(hook.pk)}
    bucket = "http_hooks_attempt_duration_seconds_bucket"
    assert delta(before, after, bucket, le="0.1", **labels) == 0
    assert delta(before, after, bucket, le="0.5", **labels) == 1
    # A difference of two sums of floats: 0.15 may come out as 0.14999999999999858.
    spent = delta(before, after, "http_hooks_attempt_duration_seconds_sum", **labels)
    assert 0.15 - 1e-9 <= spent < 0.5


def test_an_open_breaker_and_a_410_show_in_the_hooks_gauges(make_hook, receiver, staff_client):
    make_hook(target_url=receiver.url("/down"))
    make_hook(target_url=receiver.url("/gone"))
    make_hook(target_url=receiver.url("/ok"))
    receiver.respond("/down", status=500)
    receiver.respond("/gone", status=410)
    orders(3)
    with hooks_settings(BREAKER_FAILURES=3):
        send_callbacks()
    after = scrape(staff_client)
    assert value(after, "http_hooks_hooks_breaker_open") == 1
    assert value(after, "http_hooks_hooks_paused") == 1
    assert value(after, "http_hooks_hooks_disabled", reason="gone") == 1
    assert value(after, "http_hooks_hooks_disabled", reason="failing") == 0
    assert value(after, "http_hooks_hooks_disabled", reason="user") == 0


# --- the database figures ------------------------------------------------------------


def test_hooks_gauges_count_each_state_of_health(make_hook, staff_client):
    now = timezone.now()
    states = [
        {"paused_until": now + datetime.timedelta(minutes=5), "breaker_trips": 1},
        {"paused_until": now + datetime.timedelta(minutes=5)},  # a Retry-After
        {"paused_until": now - datetime.timedelta(seconds=1), "breaker_trips": 2},  # probe due
        {"enabled": False, "disabled_reason": DisabledReason.FAILING, "breaker_trips": 3},
        {"enabled": False, "disabled_reason": DisabledReason.GONE},
        {"enabled": False},
        {},
    ]
    for state in states:
        Hook.objects.filter(pk=make_hook().pk).update(**state)
    samples = scrape(staff_client)
    assert value(samples, "http_hooks_hooks_paused") == 2
    assert value(samples, "http_hooks_hooks_breaker_open") == 2
    assert value(samples, "http_hooks_hooks_disabled", reason="failing") == 1
    assert value(samples, "http_hooks_hooks_disabled", reason="gone") == 1
    assert value(samples, "http_hooks_hooks_disabled", reason="user") == 1


def test_the_oldest_due_age_leaves_out_what_senders_leave(make_hook, staff_client):
    now = timezone.now()
    running, paused, disabled = make_hook(), make_hook(), make_hook()
    orders(2)
    callbacks = Callback.objects.order_by("pk")
    Callback.objects.filter(hook=running).update(
        next_attempt_at=now - datetime.timedelta(seconds=60)
    )
    first = callbacks.filter(hook=running).first()
    Callback.objects.filter(pk=first.pk).update(
        next_attempt_at=now - datetime.timedelta(seconds=120)
    )
    # Older, but held back: a paused hook, and a hook http_hooks disabled.
    Callback.objects.filter(hook__in=[paused, disabled]).update(
        next_attempt_at=now - datetime.timedelta(days=3)
    )
    Hook.objects.filter(pk=paused.pk).update(paused_until=now + datetime.timedelta(minutes=5))
    Hook.objects.filter(pk=disabled.pk).update(
        enabled=False, disabled_reason=DisabledReason.FAILING
    )
    age = value(scrape(staff_client), "http_hooks_oldest_due_callback_age_seconds")
    assert 120 <= age < 150


def test_a_sending_callback_whose_lease_ran_out_is_due(make_hook, staff_client):
    make_hook()
    orders(1)
    expired = timezone.now() - datetime.timedelta(seconds=300)
    Callback.objects.update(status="sending", claimed_until=expired)
    samples = scrape(staff_client)
    assert value(samples, "http_hooks_callbacks", status="sending") == 1
    assert 300 <= value(samples, "http_hooks_oldest_due_callback_age_seconds") < 330


def test_statuses_past_the_count_limit_are_counted_or_estimated(make_hook, staff_client):
    make_hook()
    orders(12)
    with hooks_settings(METRICS_COUNT_LIMIT=5):
        waiting = value(scrape(staff_client), "http_hooks_callbacks", status="waiting")
    if connection.vendor == "postgresql":
        assert waiting > 5  # the planner's estimate: at least what was counted
    else:
        assert waiting == 12


def test_the_database_figures_are_kept_for_metrics_cache_seconds(make_hook, staff_client):
    make_hook()
    orders(2)
    first = scrape(staff_client)  # read now (the fixture's cache of 0 seconds) ...
    with hooks_settings(METRICS_CACHE_SECONDS=3600):  # ... and kept for an hour
        orders(3)
        with CaptureQueriesContext(connection) as queries:
            cached = scrape(staff_client)
    assert value(first, "http_hooks_callbacks", status="waiting") == 2
    assert value(cached, "http_hooks_callbacks", status="waiting") == 2
    assert [q["sql"] for q in queries.captured_queries] == []
    assert value(scrape(staff_client), "http_hooks_callbacks", status="waiting") == 5


def test_a_database_that_cannot_be_read_leaves_out_the_gauges_only(
    make_hook, receiver, staff_client, monkeypatch
):
    hook = make_hook()
    orders(1)
    send_callbacks()

    def unreadable(**kwargs):
        raise OperationalError("the database is down")

    monkeypatch.setattr("http_hooks.metrics.prometheus.delivery_state", unreadable)
    default = parse(generate_latest(REGISTRY).decode())
    ours = scrape(staff_client)
    for samples in (default, ours):
        assert value(samples, "http_hooks_deliveries_total", hook=str(hook.pk), outcome="sent")
        assert not any(name == "http_hooks_callbacks" for name, _ in samples)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_locked_callbacks_table_never_holds_a_scrape(make_hook, staff_client):
    """A lock on the callbacks table (a migration, a long transaction) once held every
    scrape, and django-prometheus's whole registry, for as long as it lasted: each
    statement of the read now waits ``STATE_TIMEOUT`` at most, and the gauges are
    left out of that scrape."""
    make_hook()
    orders(2)
    other = connection.copy()
    scraped: list[Samples] = []
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("LOCK TABLE http_hooks_callback IN ACCESS EXCLUSIVE MODE")
            reader = threading.Thread(target=lambda: scraped.append(scrape(staff_client)))
            reader.start()
            reader.join(timeout=30)
            assert not reader.is_alive(), "the scrape waited for the lock"
    finally:
        other.close()  # ends its transaction, and the lock
    assert not any(name == "http_hooks_callbacks" for name, _ in scraped[0])
    assert value(scrape(staff_client), "http_hooks_callbacks", status="waiting") == 2


@pytest.mark.django_db(transaction=True)
def test_a_write_in_progress_on_sqlite_does_not_hold_a_scrape(make_hook, staff_client):
    """The read was in a transaction of its own, which SQLite begins ``IMMEDIATE`` (the
    demo's setting, as the README advises): it waited for the write lock that another
    connection's write held, up to the busy timeout, and then left out the gauges,
    where a read goes on beside a write. (Here the timeout is cut to 0.2 s.)"""
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock; PostgreSQL's test is the locked table above")
    make_hook()
    orders(2)
    with sqlite_locked(begin="IMMEDIATE", timeout=0.2):
        samples = scrape(staff_client)
    assert value(samples, "http_hooks_callbacks", status="waiting") == 2


def test_a_scrape_during_another_s_read_shows_the_last_figures_without_a_query(
    make_hook, staff_client
):
    from http_hooks.metrics.prometheus import STATE

    make_hook()
    orders(2)
    scrape(staff_client)
    orders(1)
    with STATE._reading, CaptureQueriesContext(connection) as queries:  # another scrape reads
        during = scrape(staff_client)
    assert value(during, "http_hooks_callbacks", status="waiting") == 2
    assert [q["sql"] for q in queries.captured_queries] == []
    assert value(scrape(staff_client), "http_hooks_callbacks", status="waiting") == 3


# --- who may scrape, and what ------------------------------------------------------


def test_anonymous_users_get_the_api_error_body():
    response = APIClient().get(URL, HTTP_ACCEPT="text/plain")
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"


def test_users_need_the_view_metrics_permission():
    user = User.objects.create_user("prometheus")
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    user.user_permissions.add(Permission.objects.get(codename="view_metrics"))
    client.force_authenticate(User.objects.get(pk=user.pk))  # permissions are cached
    assert "http_hooks_callbacks" in client.get(URL).content.decode()


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(staff_client):
    response = staff_client.get(URL, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.content.decode().endswith("# EOF\n")


def test_metrics_switched_off_are_a_404(staff_client):
    with hooks_settings(METRICS=False):
        response = staff_client.get(URL)
    assert response.status_code == 404
    assert response.json()["code"] == "metrics_off"


def test_the_metrics_are_not_in_the_openapi_schema():
    """Not JSON: nothing for a generated SDK (test_openapi keeps the file up to date)."""
    assert "/api/metrics/" not in (ROOT / "openapi.yaml").read_text()


# --- registries --------------------------------------------------------------------


def test_the_default_registry_shows_the_same_metrics(make_hook, receiver, staff_client):
    """What django-prometheus's ``/metrics`` serves, from ``prometheus_client.REGISTRY``."""
    hook = make_hook()
    orders(2)
    send_callbacks()
    ours = scrape(staff_client)
    default = parse(generate_latest(REGISTRY).decode())
    labels = {"hook": str(hook.pk), "outcome": "sent"}
    assert value(default, "http_hooks_deliveries_total", **labels) >= 2
    assert value(default, "http_hooks_deliveries_total", **labels) == value(
        ours, "http_hooks_deliveries_total", **labels
    )
    assert value(default, "http_hooks_callbacks", status="sent") == 2


def test_the_project_chooses_the_registry(make_hook, receiver):
    make_hook()
    orders(1)
    with hooks_settings(METRICS_REGISTRY="api_tests.test_metrics.PROJECT_REGISTRY"):
        send_callbacks()
    names = {family.name for family in PROJECT_REGISTRY.collect()}
    assert {"http_hooks_deliveries", "http_hooks_callbacks", "http_hooks_hooks_paused"} <= names


@pytest.mark.parametrize(
    ("overrides", "code", "hint"),
    [
        pytest.param({"METRICS": "yes"}, "E017", "True or False", id="metrics-not-a-bool"),
        pytest.param({"METRICS_BY_HOOK": 1}, "E017", "True or False", id="by-hook-not-a-bool"),
        pytest.param({"METRICS_CACHE_SECONDS": -1}, "E017", "seconds >= 0", id="negative-cache"),
        pytest.param({"METRICS_COUNT_LIMIT": 0}, "E004", "number >= 1", id="zero-count-limit"),
        pytest.param(
            {"METRICS_REGISTRY": "nowhere.REGISTRY"}, "E017", "Cannot import", id="no-module"
        ),
        pytest.param(
            {"METRICS_REGISTRY": "api_tests.test_metrics.URL"},
            "E017",
            "not a prometheus_client CollectorRegistry",
            id="not-a-registry",
        ),
    ],
)
def test_bad_metrics_settings_fail_the_checks(overrides, code, hint):
    with hooks_settings(**overrides):
        errors = [error for error in run_checks() if error.id.startswith("http_hooks.")]
    assert [error.id for error in errors] == [f"http_hooks.{code}"]
    assert hint in errors[0].hint


# --- other processes -----------------------------------------------------------------


def run_python(script: str, env: dict, **overrides) -> dict:
    """Run ``script`` in a new Python process with Django set up on this test's
    database (``HTTP_HOOKS`` overridden by ``overrides``); return what it prints as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**env, "HTTP_HOOKS_OVERRIDES": json.dumps(overrides)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


SETUP = """
    import json, sys
    {block}
    import django
    django.setup()
"""


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_without_prometheus_client_nothing_breaks_and_nothing_is_imported(
    make_hook, receiver, same_db_env
):
    make_hook()
    orders(2)
    User.objects.create_user("staff", password="pw", is_staff=True)
    script = (
        SETUP.format(block='sys.modules["prometheus_client"] = None')
        + """
    from django.core.management import call_command
    from django.test import Client
    from http_hooks.api import send_callbacks

    call_command("check")
    report = send_callbacks()
    client = Client()
    client.login(username="staff", password="pw")
    response = client.get("/api/metrics/")
    print(json.dumps({
        "sent": report.sent,
        "status": response.status_code,
        "code": response.json()["code"],
        "imported": sorted(
            name for name, module in sys.modules.items()
            if module is not None and "prometheus" in name
        ),
    }))
    """
    )
    outcome = run_python(script, same_db_env)
    assert outcome == {"sent": 2, "status": 404, "code": "metrics_off", "imported": []}
    assert Callback.objects.filter(status="sent").count() == 2


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("overrides", "registered"),
    [
        pytest.param({}, True, id="default-registry"),
        pytest.param({"METRICS_REGISTRY": None}, False, id="registry-none"),
        pytest.param({"METRICS": False}, False, id="metrics-off"),
    ],
)
def test_startup_registers_the_metrics_in_the_default_registry_unless_told_not_to(
    same_db_env, overrides, registered
):
    script = (
        SETUP.format(block="")
        + """
    from prometheus_client import REGISTRY

    names = {family.name for family in REGISTRY.collect()}
    print(json.dumps({"registered": "http_hooks_callbacks" in names}))
    """
    )
    assert run_python(script, same_db_env, **overrides) == {"registered": registered}


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_many_sender_processes_are_added_up_in_multiprocess_mode(
    make_hook, receiver, same_db_env, tmp_path, staff_client, monkeypatch
):
    hook = make_hook()
    env = {**same_db_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    manage = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]
    for count in (3, 2):
        orders(count)
        result = subprocess.run(manage, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(staff_client)
    labels = {"hook": str(hook.pk)}
    assert value(samples, "http_hooks_deliveries_total", outcome="sent", **labels) == 5
    assert value(samples, "http_hooks_attempt_duration_seconds_count", **labels) == 5
    assert value(samples, "http_hooks_callbacks", status="sent") == 5


@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_a_sender_whose_metrics_files_cannot_be_written_still_sends_everything(
    make_hook, receiver, same_db_env, tmp_path
):
    """A ``PROMETHEUS_MULTIPROC_DIR`` that is missing (not created yet, removed, a
    typo) made the sender stop with a traceback after its first window of outcomes.
    The counting is left out, said once, and the run goes on."""
    make_hook()
    orders(3)
    env = {
        **same_db_env,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "gone"),
        "HTTP_HOOKS_OVERRIDES": json.dumps({"BATCH_SIZE": 1, "CONCURRENCY": 1}),
    }
    manage = [sys.executable, str(ROOT / "demo" / "manage.py"), "send_callbacks"]
    result = subprocess.run(manage, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "not counted" in line]
    assert len(warnings) == 1, result.stderr
    assert "gone" in warnings[0]
    assert sorted(Callback.objects.values_list("status", flat=True)) == ["sent"] * 3
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("fault", ["directory-gone", "truncated-file"])
def test_metrics_files_that_cannot_be_read_leave_out_the_counters_only(
    fault, make_hook, staff_client, tmp_path, monkeypatch, caplog
):
    """The endpoint answered these with the project's HTML 500 page; now, as for a
    database that fails, the scrape shows what it could read, with a warning."""
    make_hook()
    orders(2)
    directory = tmp_path / "metrics"
    if fault == "truncated-file":
        directory.mkdir()
        (directory / "counter_4242.db").write_bytes(b"\x10\x00\x00\x00")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    samples = scrape(staff_client)
    assert value(samples, "http_hooks_callbacks", status="waiting") == 2
    assert not any(name.startswith("http_hooks_deliveries") for name, _ in samples)
    (record,) = [r for r in caplog.records if "PROMETHEUS_MULTIPROC_DIR" in r.getMessage()]
    assert record.levelname == "WARNING"
