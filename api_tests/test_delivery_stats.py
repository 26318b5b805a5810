"""Health at a glance: the hourly counts the sender keeps (``DeliveryStats``), the
health endpoint and the admin's overview that read them, with real deliveries to a
local receiver that succeeds, fails and answers slowly."""

import datetime
import re
import threading

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from http_hooks.api import delete_old_callbacks, hooks_health, send_callbacks
from http_hooks.charts import BAR_WIDTH, HEIGHT, hourly_bars
from http_hooks.delivery.stats import MAX_WINDOW_HOURS, hour_start, percentile, record_stats
from http_hooks.exceptions import InvalidFilterError
from http_hooks.models import DURATION_FIELDS, Attempt, Callback, DeliveryStats, Hook
from http_hooks.transport import Outcome
from shop.models import Order

from .waiting import wait_until

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
SLOW = 0.3  # seconds the slow receiver takes to answer
# No breaker, no retry within the test: each callback is tried once per send.
ONCE = {"BREAKER_FAILURES": None, "RETRY_JITTER": 0.0, "RETRY_SCHEDULE": [600]}


def health_url(hook_id, **query):
    return f"/api/hooks/{hook_id}/health/", query


@pytest.fixture
def three_receivers(make_hook, receiver):
    """Hooks on the same model whose receiver answers 200 at once, 500, and 200 late;
    four orders: four callbacks of each, each tried once."""
    receiver.respond("/fail", status=500)
    receiver.respond("/slow", delay=SLOW)
    hooks = {
        name: make_hook(name=name, target_url=receiver.url(f"/{name}"))
        for name in ("ok", "fail", "slow")
    }
    for n in range(4):
        Order.objects.create(name=f"Tea {n}")
    with override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, **ONCE}):
        report = send_callbacks()
    assert (report.sent, report.retried) == (8, 4)
    return hooks


def test_health_endpoint_counts_real_deliveries(staff_client, three_receivers):
    ok, fail, slow = (staff_client.get(*health_url(h.pk)).json() for h in three_receivers.values())

    assert (ok["sent"], ok["failed"], ok["success_rate"]) == (4, 0, 1.0)
    assert ok["last_success_at"] is not None
    assert (ok["last_failure_at"], ok["last_failure_reason"]) == (None, "")
    assert ok["duration_p95_ms"] < SLOW * 1000 / 2  # a local answer, far below the slow one

    assert (fail["sent"], fail["failed"], fail["success_rate"]) == (0, 4, 0.0)
    assert fail["last_success_at"] is None
    assert fail["last_failure_reason"] == "HTTP 500"
    assert fail["last_failure_at"] is not None
    assert (fail["breaker"], fail["consecutive_failures"], fail["paused_reason"]) == (
        "closed",
        4,
        "",
    )

    assert (slow["sent"], slow["failed"]) == (4, 0)
    # Every try took SLOW and a little: all in the 200-500 ms bucket.
    assert 200 <= slow["duration_p50_ms"] <= slow["duration_p95_ms"] <= 500

    for body in (ok, fail, slow):
        assert body["hours"] == 24
        assert [(h["sent"] + h["failed"]) for h in body["hourly"]] == [4]
        assert (body["enabled"], body["disabled_reason"], body["disabled_at"]) == (True, "", None)


def test_stats_agree_with_the_attempt_log(three_receivers):
    for hook in three_receivers.values():
        attempts = Attempt.objects.filter(callback__hook=hook)
        row = DeliveryStats.objects.get(hook=hook)
        assert row.sent == attempts.filter(response_status=200, error="").count()
        assert row.failed == attempts.exclude(response_status=200).count()
        durations = [getattr(row, name) for name in DURATION_FIELDS]
        assert sum(durations) == attempts.count() == 4


def test_the_overview_shows_the_same_health(admin_client, three_receivers):
    response = admin_client.get(reverse("admin:http_hooks_callback_overview"))
    rows = {row["health"].hook.name: row["health"] for row in response.context["rows"]}
    assert {name: (h.sent, h.failed) for name, h in rows.items()} == {
        "ok": (4, 0),
        "fail": (0, 4),
        "slow": (4, 0),
    }
    page = response.content.decode()
    assert "HTTP 500" in page
    assert response.context["totals"] == {"sent": 8, "failed": 4}


def test_the_health_of_a_dead_receiver_shows_its_breaker(staff_client, make_hook):
    hook = make_hook(target_url="http://127.0.0.1:9/hook")  # nothing listens on port 9
    for n in range(5):
        Order.objects.create(name=f"Tea {n}")
    with override_settings(
        HTTP_HOOKS={**settings.HTTP_HOOKS, "BREAKER_FAILURES": 2, "HOOK_CONCURRENCY": 1}
    ):
        send_callbacks()
    body = staff_client.get(*health_url(hook.pk)).json()
    hook.refresh_from_db()
    assert (body["breaker"], body["paused_reason"]) == ("open", "breaker")
    assert body["paused_until"] is not None
    assert body["failed"] == 2
    assert body["last_failure_reason"].startswith("connection error")

    Hook.objects.filter(pk=hook.pk).update(
        paused_until=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert staff_client.get(*health_url(hook.pk)).json()["breaker"] == "half_open"


def test_a_retry_after_pause_is_told_apart_from_the_breaker(staff_client, make_hook, receiver):
    receiver.respond(status=503, headers={"Retry-After": "120"})
    hook = make_hook()
    Order.objects.create(name="Tea")
    send_callbacks()
    body = staff_client.get(*health_url(hook.pk)).json()
    assert (body["breaker"], body["paused_reason"]) == ("closed", "retry_after")
    assert body["last_failure_reason"] == "HTTP 503"


# --- hours ------------------------------------------------------------------------


def outcome(ok=True, duration_ms=5):
    return Outcome(
        status_code=200 if ok else 500, error="" if ok else "HTTP 500", duration_ms=duration_ms
    )


def at(hour, minute=0, second=0):
    return datetime.datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC)


def record(hook, moment, *outcomes):
    callbacks = [Callback(hook_id=hook.pk) for _ in outcomes]
    record_stats(callbacks, list(outcomes), moment)


def test_tries_are_counted_in_the_hour_they_happen(make_hook):
    hook, other = make_hook(), make_hook()
    record(hook, at(10, 59, 59), outcome(), outcome(ok=False, duration_ms=1500))
    record(hook, at(11), outcome())
    # Added to the hour's row, whichever hooks share the window.
    record_stats(
        [Callback(hook_id=hook.pk), Callback(hook_id=other.pk), Callback(hook_id=hook.pk)],
        [outcome(), outcome(ok=False), outcome(duration_ms=0)],
        at(11, 30),
    )
    rows = DeliveryStats.objects.order_by("hook_id", "hour")
    assert [(r.hook_id, hour_start(r.hour), r.sent, r.failed) for r in rows] == [
        (hook.pk, at(10), 1, 1),
        (hook.pk, at(11), 3, 0),
        (other.pk, at(11), 0, 1),
    ]
    ten, eleven = rows[0], rows[1]
    assert (ten.under_10ms, ten.under_2000ms) == (1, 1)
    assert (eleven.under_1ms, eleven.under_10ms) == (1, 2)


def test_the_window_counts_whole_hours_back_from_the_current_one(make_hook):
    hook = make_hook()
    record(hook, at(8, 30), outcome())
    record(hook, at(9, 10), outcome(ok=False))
    record(hook, at(10, 5), outcome(), outcome())
    now = at(10, 45)
    by_hours = {
        hours: (h.sent, h.failed, [c.start for c in h.hourly])
        for hours in (1, 2, 3)
        for h in hooks_health(hours=hours, hooks=[hook], now=now)
    }
    assert by_hours == {
        1: (2, 0, [at(10)]),
        2: (2, 1, [at(9), at(10)]),
        3: (3, 1, [at(8), at(9), at(10)]),
    }


def test_percentiles_interpolate_inside_their_bucket():
    buckets = [0] * len(DURATION_FIELDS)
    assert percentile(buckets, 0.5) is None
    buckets[DURATION_FIELDS.index("under_500ms")] = 10  # 200 to 500 ms
    assert percentile(buckets, 0.5) == 350
    assert percentile(buckets, 0.95) == 485
    buckets[-1] = 90  # 50 s and more: the lower bound is all that is known
    assert percentile(buckets, 0.95) == 50_000


def test_health_reads_the_stats_not_the_callbacks(make_hook):
    hooks = [make_hook() for _ in range(3)]
    for hour in range(5):
        for hook in hooks:
            record(hook, timezone.now() - datetime.timedelta(hours=hour), outcome())
    with CaptureQueriesContext(connection) as queries:
        health = hooks_health(hours=MAX_WINDOW_HOURS)
    assert [h.sent for h in health] == [5, 5, 5]
    assert len(queries) == 3
    tables = {Callback._meta.db_table, Attempt._meta.db_table}
    assert not any(table in query["sql"] for query in queries for table in tables)


# --- retention and cascade --------------------------------------------------------


def test_old_stats_go_with_old_callbacks(make_hook):
    hook = make_hook()
    now = timezone.now()
    record(hook, now - datetime.timedelta(hours=MAX_WINDOW_HOURS + 1), outcome())
    record(hook, now - datetime.timedelta(hours=MAX_WINDOW_HOURS - 1), outcome())
    record(hook, now, outcome())
    delete_old_callbacks(days=90)
    assert DeliveryStats.objects.count() == 2


def test_deleting_a_hook_deletes_its_stats(staff_client, make_hook):
    hook, kept = make_hook(), make_hook()
    record(hook, timezone.now(), outcome())
    record(kept, timezone.now(), outcome())
    assert staff_client.delete(f"/api/hooks/{hook.pk}/").status_code == 204
    assert list(DeliveryStats.objects.values_list("hook_id", flat=True)) == [kept.pk]


# --- the endpoint's input, permissions and errors ------------------------------------


@pytest.mark.parametrize(
    ("query", "hours"),
    [
        ({}, 24),
        ({"window": "1h"}, 1),
        ({"window": "7d"}, 168),
        ({"window": "30d"}, 720),
        ({"hours": "5"}, 5),
        ({"hours": "720"}, 720),
    ],
)
def test_the_window_is_named_or_in_hours(staff_client, make_hook, query, hours):
    hook = make_hook()
    response = staff_client.get(*health_url(hook.pk, **query))
    assert response.status_code == 200, response.json()
    assert response.json()["hours"] == hours


@pytest.mark.parametrize(
    "query",
    [
        {"window": "1y"},
        {"window": "24H"},
        {"window": "24h\x00"},
        {"hours": "0"},
        {"hours": "-1"},
        {"hours": "721"},
        {"hours": "1.5"},
        {"hours": "1e3"},
        {"hours": "abc"},
        {"hours": "9" * 5000},
        {"hours": "+1"},
        {"hours": " 1"},
        {"hours": "1.0"},
        {"hours": "\u0661"},  # an Arabic-Indic 1
        {"hours": ""},
        {"window": ""},
        {"window": "7d", "hours": "5"},
    ],
)
def test_bad_windows_are_400s_in_the_error_body(staff_client, make_hook, query):
    hook = make_hook()
    response = staff_client.get(*health_url(hook.pk, **query))
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"code", "detail", "errors"}
    assert body["errors"] and all(
        set(error) == {"field", "code", "message"} for error in body["errors"]
    )


@pytest.mark.parametrize("pk", ["999999", "abc", "9" * 30])
def test_no_such_hook_is_a_404_in_the_error_body(staff_client, pk):
    response = staff_client.get(f"/api/hooks/{pk}/health/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_health_takes_the_permission_to_view_hooks(make_hook):
    user = User.objects.create_user("viewer")
    hook = make_hook(owner=user)
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(*health_url(hook.pk)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_hook"))
    client.force_authenticate(User.objects.get(pk=user.pk))
    assert client.get(*health_url(hook.pk)).status_code == 200
    assert APIClient().get(*health_url(hook.pk)).status_code in (401, 403)


# --- the overview's chart ---------------------------------------------------------


def bars(path):
    """{hour slot: (base, height)} of the bars of an SVG path."""
    found = re.findall(rf"M(\d+) ([\d.]+)v-([\d.]+)h{BAR_WIDTH}v\3z", path)
    return {int(x): (float(base), float(height)) for x, base, height in found}


def test_the_overview_draws_each_hour_to_scale(admin_client, make_hook):
    hook, idle = make_hook(name="busy"), make_hook(name="idle")
    now = timezone.now()
    record(hook, now - datetime.timedelta(hours=2), *[outcome()] * 3, outcome(ok=False))
    record(hook, now - datetime.timedelta(hours=1), outcome(ok=False), outcome(ok=False))
    record(hook, now, outcome())
    response = admin_client.get(reverse("admin:http_hooks_callback_overview"), {"hours": 24})
    charts = {row["health"].hook.pk: row["chart"] for row in response.context["rows"]}
    chart = charts[hook.pk]
    assert (chart.width, chart.height, chart.hours_per_bar, chart.peak) == (24, HEIGHT, 1, 4)
    # The busiest hour (4 tries) is full height; bar 23 is the current hour.
    assert bars(chart.sent_path) == {21: (400, 300), 23: (400, 100)}
    assert bars(chart.failed_path) == {21: (100, 100), 22: (400, 200)}
    assert (charts[idle.pk].peak, charts[idle.pk].sent_path) == (0, "")

    page = response.content.decode()
    svg = re.search(rf'<svg[^>]*id="chart-{hook.pk}".*?</svg>', page, flags=re.DOTALL).group()
    assert 'role="img"' in svg
    assert f'aria-labelledby="chart-{hook.pk}-title chart-{hook.pk}-desc"' in svg
    assert 'viewBox="0 0 24 400"' in svg
    assert "busy: tries per hour over the last 24 h</title>" in svg
    assert "4 succeeded and 3 failed; at most 4 tries in one bar." in svg
    assert f'd="{chart.sent_path}"' in svg
    assert "<script" not in page.split('id="content"')[1]


@pytest.mark.parametrize("hours", ["nope", "0", "100000", "9" * 5000])
def test_the_overview_keeps_a_bad_window_in_bounds(admin_client, make_hook, hours):
    make_hook()
    response = admin_client.get(reverse("admin:http_hooks_callback_overview"), {"hours": hours})
    assert response.status_code == 200
    assert 1 <= response.context["hours"] <= MAX_WINDOW_HOURS


@pytest.mark.parametrize("hours", [0, MAX_WINDOW_HOURS + 1, True, 1.5, "24"])
def test_the_python_api_refuses_a_bad_window(hours):
    with pytest.raises(InvalidFilterError) as caught:
        hooks_health(hours=hours)
    assert caught.value.field == "hours"


def test_a_long_window_draws_a_bar_per_few_hours(make_hook):
    hook = make_hook()
    now = at(23, 30)
    record(hook, at(23), outcome())  # the window's last hour: the last bar's
    record(hook, at(18), outcome(ok=False))  # the same bar: hours 18 to 23
    record(hook, at(17), outcome(), outcome())  # the bar before
    [health] = hooks_health(hours=MAX_WINDOW_HOURS, hooks=[hook], now=now)
    chart = hourly_bars(health)
    assert (chart.width, chart.hours_per_bar, chart.peak) == (MAX_WINDOW_HOURS // 6, 6, 2)
    last = chart.width - 1
    assert bars(chart.sent_path) == {last - 1: (400, 400), last: (400, 200)}
    assert bars(chart.failed_path) == {last: (200, 200)}


def test_an_hour_after_now_is_left_out_not_a_500(admin_client, make_hook):
    # A sender whose clock is ahead (or that records its outcomes just after the hour
    # turns, between the overview's now and its query) writes the next hour's row.
    hook = make_hook()
    now = timezone.now()
    record(hook, now, outcome())
    record(hook, now + datetime.timedelta(hours=1), outcome(ok=False))
    [health] = hooks_health(hours=24, hooks=[hook], now=now)
    assert (health.sent, health.failed, len(health.hourly)) == (1, 0, 1)
    assert hourly_bars(health).peak == 1
    response = admin_client.get(reverse("admin:http_hooks_callback_overview"), {"hours": 24})
    assert response.status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_senders_adding_to_the_same_hours_never_deadlock(make_hook):
    """Each sender's window adds to its hooks' rows of the hour in one statement; two
    windows holding the same hooks in opposite orders must lock the rows in one order,
    or each takes one and waits for the other's (PostgreSQL breaks it: a 1 s stall,
    an error and a reconnect)."""
    first, second = sorted([make_hook(), make_hook()], key=lambda hook: hook.pk)
    now = timezone.now()
    record(first, now, outcome())
    record(second, now, outcome())
    errors: list[Exception] = []

    def sender(hooks: list[Hook]) -> None:
        try:
            with transaction.atomic():
                record_stats([Callback(hook_id=h.pk) for h in hooks], [outcome()] * 2, now)
        except Exception as exc:  # the deadlock, reported below
            errors.append(exc)
        finally:
            connection.close()

    def waiting(count: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return cursor.fetchone()[0] >= count

    threads = []
    with transaction.atomic():  # another sender holds the first hook's row meanwhile
        DeliveryStats.objects.select_for_update().get(hook=first)
        for order, waiters in (([first, second], 1), ([second, first], 2)):
            threads.append(threading.Thread(target=sender, args=(order,)))
            threads[-1].start()
            wait_until(lambda waiters=waiters: waiting(waiters), timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(DeliveryStats.objects.values_list("sent", flat=True)) == [3, 3]
