"""Recover (Svix's): queue again the callbacks of a hook that failed for good since a
time, through the REST API, the admin action and the Python API, then deliver them
to a real receiver."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from http_hooks.api import recover_hook, send_callbacks
from http_hooks.exceptions import InvalidFilterError, TooManyCallbacksError
from http_hooks.models import Callback, CallbackStatus, Hook
from shop.models import Customer, Order

from .waiting import wait_until

pytestmark = pytest.mark.django_db


def hooks_settings(**overrides):
    """One try per callback: a failure is final (status ``error``) at once."""
    return override_settings(
        HTTP_HOOKS={**settings.HTTP_HOOKS, "MAX_ATTEMPTS": 1, "RETRY_JITTER": 0.0, **overrides}
    )


@pytest.fixture
def outage(make_hook, receiver):
    """A hook whose receiver answered 500 to both its callbacks (now in status
    ``error``) and is back up: it answers 200 and has received nothing since."""
    receiver.respond(status=500)
    hook = make_hook()
    Order.objects.create(name="Tea")
    Order.objects.create(name="Cake")
    with hooks_settings():
        assert send_callbacks().failed == 2
    receiver.respond(status=200)
    receiver.clear()
    return hook


def an_hour_ago() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=1)


def recover(client, hook_id, data):
    return client.post(f"/api/hooks/{hook_id}/recover/", data, format="json")


def statuses() -> list[str]:
    return list(Callback.objects.order_by("pk").values_list("status", flat=True))


def in_error(count: int) -> list[int]:
    """``count`` more callbacks of the order hook, in status error; all their ids."""
    for index in range(count):
        Order.objects.create(name=f"order {index}")
    Callback.objects.update(status=CallbackStatus.ERROR, attempts=8)
    return list(Callback.objects.order_by("pk").values_list("pk", flat=True))


# --- REST API --------------------------------------------------------------------


def test_recovered_callbacks_are_delivered_again(staff_client, outage, receiver):
    failed = list(Callback.objects.order_by("pk"))
    response = recover(staff_client, outage.pk, {"since": an_hour_ago().isoformat()})
    assert response.status_code == 200, response.content
    assert response.json() == {"count": 2}
    assert set(Callback.objects.values_list("status", "attempts")) == {("waiting", 0)}

    with hooks_settings():
        report = send_callbacks()
    assert report.sent == 2
    assert statuses() == ["sent", "sent"]
    # The same events, as the receiver can tell by their ids.
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        str(callback.event_id) for callback in failed
    )


def test_only_the_hooks_error_callbacks_created_since_then_are_queued(staff_client, make_hook):
    hook = make_hook()
    make_hook(model="shop.customer")
    for index in range(6):
        Order.objects.create(name=f"order {index}")
    Customer.objects.create(name="other hook")
    *mine, others = Callback.objects.order_by("pk")
    since = an_hour_ago()
    later = timezone.now() + datetime.timedelta(hours=1)
    states = [
        {"status": "error", "create_datetime": since - datetime.timedelta(seconds=1)},
        {"status": "error", "create_datetime": since},
        {"status": "error"},
        {"status": "sent"},
        {"status": "waiting", "next_attempt_at": later},
        {"status": "sending"},
    ]
    for callback, state in zip(mine, states, strict=True):
        Callback.objects.filter(pk=callback.pk).update(**state)
    Callback.objects.filter(pk=others.pk).update(status="error")

    response = recover(staff_client, hook.pk, {"since": since.isoformat()})
    assert response.json() == {"count": 2}
    assert statuses() == ["error", "waiting", "waiting", "sent", "waiting", "sending", "error"]
    assert Callback.objects.get(pk=mine[4].pk).next_attempt_at == later


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_a_since_without_offset_is_in_the_current_time_zone(staff_client, outage):
    Callback.objects.update(create_datetime=timezone.now() - datetime.timedelta(hours=2))
    three_hours_ago = timezone.localtime(timezone.now() - datetime.timedelta(hours=3))
    naive = three_hours_ago.replace(tzinfo=None).isoformat()  # read as UTC: 6 h ahead
    response = recover(staff_client, outage.pk, {"since": naive})
    assert response.json() == {"count": 2}


@override_settings(
    HTTP_HOOKS={**settings.HTTP_HOOKS, "RESEND_LIMIT": 3, "BATCH_SIZE": 2},
)
def test_above_resend_limit_it_needs_confirm_like_bulk_resend(staff_client, make_hook):
    hook = make_hook()
    in_error(4)
    body = {"since": an_hour_ago().isoformat()}
    response = recover(staff_client, hook.pk, body)
    assert response.status_code == 400
    bulk = staff_client.post("/api/callbacks/resend/?status=error", {}, format="json")
    assert response.json() == bulk.json()
    assert response.json()["code"] == "too_many_callbacks"
    assert set(statuses()) == {"error"}

    with CaptureQueriesContext(connection) as queries:
        response = recover(staff_client, hook.pk, {**body, "confirm": True})
    assert response.json() == {"count": 4}
    assert set(statuses()) == {"waiting"}
    # BATCH_SIZE at a time, each chunk in a transaction of its own.
    assert len([q for q in queries if q["sql"].startswith("UPDATE")]) == 2


@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "RESEND_LIMIT": 3})
def test_up_to_resend_limit_it_needs_no_confirm(staff_client, make_hook):
    hook = make_hook()
    in_error(3)
    response = recover(staff_client, hook.pk, {"since": an_hour_ago().isoformat()})
    assert response.json() == {"count": 3}


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        pytest.param({}, "since", "required", id="no-since"),
        pytest.param({"since": None}, "since", "null", id="null"),
        pytest.param({"since": "2999-01-01T00:00:00Z"}, "since", "invalid_argument", id="future"),
        pytest.param({"since": "9999-12-31T23:59:59"}, "since", "invalid_argument", id="y9999"),
        pytest.param({"since": "9999-12-31T23:59:59-01:00"}, "since", "overflow", id="past-9999"),
        pytest.param({"since": "0001-01-01T00:00:00"}, "since", "invalid_argument", id="year-1"),
        pytest.param({"since": "0001-01-01T00:00:00+01:00"}, "since", "overflow", id="before-1"),
        pytest.param({"since": "1900-01-01T00:00:00Z"}, "since", "invalid_argument", id="old"),
        pytest.param({"since": "yesterday"}, "since", "invalid", id="words"),
        pytest.param({"since": "2026-02-30T00:00:00Z"}, "since", "invalid", id="no-such-day"),
        pytest.param({"since": 1764403200}, "since", "invalid", id="unix-time"),
        pytest.param({"since": 1.5}, "since", "invalid", id="float"),
        pytest.param({"since": True}, "since", "invalid", id="boolean"),
        pytest.param({"since": ["2026-01-01T00:00:00Z"]}, "since", "invalid", id="list"),
        pytest.param({"since": {"date": "2026-01-01"}}, "since", "invalid", id="object"),
        pytest.param({"since": "2026" * 250_000}, "since", "invalid", id="huge-string"),
        pytest.param(
            {"since": "2026-01-01T00:00:00Z", "confirm": "yes"}, "confirm", "invalid", id="confirm"
        ),
        pytest.param(
            {"since": "2026-01-01T00:00:00Z", "hook": 1}, "hook", "unknown_field", id="unknown"
        ),
        pytest.param([], "non_field_errors", "invalid", id="not-an-object"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(staff_client, outage, data, field, code):
    response = recover(staff_client, outage.pk, data)
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["code"], body["errors"][0]["field"]) == (code, field)
    assert body["detail"].startswith(f"{field}: ")
    assert statuses() == ["error", "error"]


@pytest.mark.parametrize("hook_id", ["999", "abc"])
def test_recover_of_an_unknown_hook_is_a_404(staff_client, hook_id):
    response = recover(staff_client, hook_id, {"since": an_hour_ago().isoformat()})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_recover_does_not_enable_a_hook_http_hooks_disabled(staff_client, outage, receiver):
    Hook.objects.filter(pk=outage.pk).update(
        enabled=False, disabled_reason="gone", disabled_at=timezone.now()
    )
    response = recover(staff_client, outage.pk, {"since": an_hour_ago().isoformat()})
    assert response.json() == {"count": 2}
    outage.refresh_from_db()
    assert (outage.enabled, outage.disabled_reason) == (False, "gone")
    with hooks_settings():
        send_callbacks()
    assert (receiver.requests, statuses()) == ([], ["waiting", "waiting"])

    assert staff_client.post(f"/api/hooks/{outage.pk}/enable/").status_code == 200
    with hooks_settings():
        assert send_callbacks().sent == 2
    assert len(receiver.requests) == 2


def test_a_hook_disabled_by_a_user_gets_its_recovered_callbacks(staff_client, outage, receiver):
    """Disabling a hook stops new events, not the delivery of those already stored."""
    staff_client.patch(f"/api/hooks/{outage.pk}/", {"enabled": False}, format="json")
    response = recover(staff_client, outage.pk, {"since": an_hour_ago().isoformat()})
    assert response.json() == {"count": 2}
    with hooks_settings():
        assert send_callbacks().sent == 2
    assert len(receiver.requests) == 2


# --- Python API ------------------------------------------------------------------


def test_recover_hook_from_python(outage):
    assert recover_hook(outage, since=an_hour_ago()) == 2
    assert statuses() == ["waiting", "waiting"]


@override_settings(TIME_ZONE="Asia/Tokyo")
def test_recover_hook_reads_a_naive_since_in_the_current_time_zone(outage):
    Callback.objects.update(create_datetime=timezone.now() - datetime.timedelta(hours=2))

    def wall_clock(hours_ago: int) -> datetime.datetime:  # read as UTC: 9 h ahead
        moment = timezone.now() - datetime.timedelta(hours=hours_ago)
        return timezone.localtime(moment).replace(tzinfo=None)

    assert recover_hook(outage, since=wall_clock(1)) == 0
    assert recover_hook(outage, since=wall_clock(3)) == 2


@pytest.mark.parametrize(
    "since",
    [
        pytest.param("2026-01-01T00:00:00Z", id="string"),
        pytest.param(None, id="none"),
        pytest.param(datetime.date(2026, 1, 1), id="date"),
        pytest.param(timezone.now() + datetime.timedelta(days=1), id="future"),
        pytest.param(datetime.datetime(1, 1, 1, tzinfo=datetime.UTC), id="year-1"),
    ],
)
def test_recover_hook_refuses_a_bad_since(outage, since):
    with pytest.raises(InvalidFilterError) as error:
        recover_hook(outage, since=since)
    assert error.value.field == "since"
    assert statuses() == ["error", "error"]


@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "RESEND_LIMIT": 1})
def test_recover_hook_above_resend_limit_needs_confirm(outage):
    with pytest.raises(TooManyCallbacksError):
        recover_hook(outage, since=an_hour_ago())
    assert statuses() == ["error", "error"]
    assert recover_hook(outage, since=an_hour_ago(), confirm=True) == 2


# --- admin -----------------------------------------------------------------------

CHANGELIST = "admin:http_hooks_hook_changelist"


def admin_recover(client, hook_ids, **form):
    data = {"action": "recover_failed_callbacks", "_selected_action": hook_ids, **form}
    return client.post(reverse(CHANGELIST), data, follow=True)


def shown(moment: datetime.datetime) -> str:
    """How the form shows a time: in the current time zone, to the second."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


def test_admin_recover_asks_since_when_a_day_ago_for_a_hook_that_is_not_failing(
    admin_client, outage
):
    Hook.objects.filter(pk=outage.pk).update(failing_since=None)
    before = timezone.now() - datetime.timedelta(hours=24)
    page = admin_recover(admin_client, [outage.pk]).content.decode()
    after = timezone.now() - datetime.timedelta(hours=24)
    assert "Recover failed callbacks of" in page
    assert f'value="{shown(before)}"' in page or f'value="{shown(after)}"' in page
    assert statuses() == ["error", "error"]


def test_admin_recover_by_default_takes_every_callback_the_outage_cost(admin_client, outage):
    """The callbacks that failed for good in an outage were created before the hook was
    disabled (their retries took hours): the default starts at the oldest of them."""
    now = timezone.now()
    created = now - datetime.timedelta(hours=5)
    Callback.objects.update(create_datetime=created)
    # Older, but failed for good before this outage began: not the default's.
    Order.objects.create(name="last week")
    assert Callback.objects.filter(status="waiting").update(
        status="error",
        create_datetime=now - datetime.timedelta(days=7),
        update_datetime=now - datetime.timedelta(days=6),
    )
    Hook.objects.filter(pk=outage.pk).update(
        enabled=False,
        disabled_reason="failing",
        disabled_at=now - datetime.timedelta(minutes=1),
        failing_since=now - datetime.timedelta(hours=2),
    )
    page = admin_recover(admin_client, [outage.pk]).content.decode()
    assert f'value="{shown(created)}"' in page
    assert "they wait until it is enabled again" in page

    page = admin_recover(
        admin_client, [outage.pk], recover="Recover", since=shown(created)
    ).content.decode()
    assert f"2 failed callbacks of {outage} queued again." in page
    assert statuses() == ["waiting", "waiting", "error"]


def test_admin_recover_of_a_disabled_hook_with_nothing_failed_since_starts_there(
    admin_client, outage
):
    disabled_at = timezone.now() - datetime.timedelta(days=3)
    Hook.objects.filter(pk=outage.pk).update(
        enabled=False, disabled_reason="gone", disabled_at=disabled_at, failing_since=None
    )
    Callback.objects.update(update_datetime=disabled_at - datetime.timedelta(hours=1))
    page = admin_recover(admin_client, [outage.pk]).content.decode()
    assert f'value="{shown(disabled_at)}"' in page


def test_admin_recover_queues_and_says_how_many(admin_client, outage):
    page = admin_recover(
        admin_client, [outage.pk], recover="Recover", since=shown(an_hour_ago())
    ).content.decode()
    assert f"2 failed callbacks of {outage} queued again." in page
    assert statuses() == ["waiting", "waiting"]


@pytest.mark.parametrize(
    ("since", "message"),
    [
        pytest.param("", "This field is required.", id="empty"),
        pytest.param("last week", "Enter a valid date/time.", id="words"),
        pytest.param("2999-01-01 00:00:00", "since must not be in the future", id="future"),
        pytest.param("0001-01-01 00:00:00", "since must be within the last", id="year-1"),
    ],
)
def test_admin_recover_shows_a_bad_since_as_a_form_error(admin_client, outage, since, message):
    page = admin_recover(admin_client, [outage.pk], recover="Recover", since=since)
    assert page.status_code == 200
    assert 'class="errorlist' in page.content.decode()
    assert message in page.content.decode()
    assert statuses() == ["error", "error"]


def test_admin_recover_refuses_text_after_the_time(admin_client, outage):
    """Django's field read ``...Z\\x00junk`` as the time before the NUL."""
    since = an_hour_ago().astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ") + "\x00junk"
    page = admin_recover(admin_client, [outage.pk], recover="Recover", since=since)
    assert page.status_code == 200
    assert "with nothing after it" in page.content.decode()
    assert statuses() == ["error", "error"]


@override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "RESEND_LIMIT": 1})
def test_admin_recover_above_resend_limit_asks_to_confirm(admin_client, outage):
    form = {"recover": "Recover", "since": shown(an_hour_ago())}
    page = admin_recover(admin_client, [outage.pk], **form).content.decode()
    assert "more than 1 callbacks match (RESEND_LIMIT)" in page
    assert statuses() == ["error", "error"]
    page = admin_recover(admin_client, [outage.pk], confirm="on", **form).content.decode()
    assert "2 failed callbacks of" in page
    assert statuses() == ["waiting", "waiting"]


def test_admin_recover_takes_one_hook_at_a_time(admin_client, outage, make_hook):
    other = make_hook(name="other")
    page = admin_recover(admin_client, [outage.pk, other.pk]).content.decode()
    assert "Select one hook to recover." in page
    assert statuses() == ["error", "error"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_recovers_at_once_queue_each_callback_once(outage):
    """Each chunk picks the failed callbacks, then updates them: a recover whose update
    waited for another's must not queue again what the other just queued."""
    counts: list[int] = []

    def recover_now() -> None:
        try:
            counts.append(recover_hook(outage, since=an_hour_ago()))
        finally:
            connection.close()

    def waiting(count: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            return cursor.fetchone()[0] >= count

    threads = [threading.Thread(target=recover_now) for _ in range(2)]
    with transaction.atomic():  # both have picked the callbacks when the rows free up
        list(Callback.objects.select_for_update())
        for count, thread in enumerate(threads, start=1):
            thread.start()
            wait_until(lambda count=count: waiting(count), timeout=30)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(counts) == [0, 2]
    assert statuses() == ["waiting", "waiting"]
