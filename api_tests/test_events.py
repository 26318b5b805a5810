"""From a signal to stored Callbacks: which hooks fire, with what, and what never breaks a save."""

import asyncio
import threading

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from http_hooks import disable_hooks
from http_hooks.api import create_signal
from http_hooks.context import hooks_disabled
from http_hooks.models import Callback, CallbackStatus, Hook
from shop.models import Customer, Order, Parcel
from shop.signals import order_shipped

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"
POST_DELETE = "django.db.models.signals.post_delete"


def test_post_save_on_user_creates_one_waiting_callback_created_then_updated(make_hook):
    hook = make_hook(model="auth.user")
    user = User.objects.create_user("ada")
    callback = Callback.objects.get()
    assert (callback.hook, callback.status, callback.event_type) == (hook, "waiting", "created")
    assert (callback.object_type, callback.object_id) == ("auth.user", str(user.pk))
    user.first_name = "Ada"
    user.save()
    assert list(Callback.objects.order_by("id").values_list("event_type", flat=True)) == [
        "created",
        "updated",
    ]


def test_model_given_by_name_only_or_class(make_hook):
    make_hook(model="user")
    make_hook(model=User)
    User.objects.create_user("ada")
    assert Callback.objects.count() == 2


def test_saving_a_model_without_hooks_creates_nothing(make_hook):
    make_hook(model="auth.user")
    Permission.objects.create(
        codename="x", name="x", content_type=ContentType.objects.get_for_model(Group)
    )
    assert Callback.objects.count() == 0


def test_post_delete_hook_on_group_fires_with_the_signal_path(make_hook):
    make_hook(model="auth.group", signals=[POST_DELETE])
    group = Group.objects.create(name="staff")
    assert Callback.objects.count() == 0
    group.delete()
    callback = Callback.objects.get()
    assert callback.event_type == POST_DELETE


def test_one_hook_with_two_signals_gives_two_callbacks(make_hook):
    make_hook(model="sessions.session", signals=[POST_SAVE, POST_DELETE])
    session = Session.objects.create(
        session_key="k" * 32, session_data="", expire_date=timezone.now()
    )
    session.delete()
    assert list(Callback.objects.order_by("id").values_list("event_type", flat=True)) == [
        "created",
        POST_DELETE,
    ]


def test_two_hooks_on_the_same_model_and_signal_both_fire_a_disabled_one_does_not(make_hook):
    first, second = make_hook(), make_hook()
    make_hook(enabled=False)
    Order.objects.create(name="x")
    assert sorted(Callback.objects.values_list("hook_id", flat=True)) == [first.pk, second.pk]


def test_hooks_of_one_event_each_get_the_payload_of_their_own_settings(make_hook):
    """Hooks that render alike share one rendering; the others render their own."""
    first, second = make_hook(), make_hook()
    json_template = make_hook(
        content_type="application/json", payload_template='{"n": "{{ instance.name }}"}'
    )
    template = make_hook(content_type="text/plain", payload_template="order {{ instance.name }}")
    on_customer = make_hook(model="shop.customer")
    order = Order.objects.create(name="ada")
    Customer.objects.create(name="grace")
    payloads = dict(Callback.objects.values_list("hook_id", "payload"))
    assert payloads[first.pk] == payloads[second.pk]
    assert '"name": "ada"' in payloads[first.pk]
    assert payloads[json_template.pk] == '{"n": "ada"}'
    assert payloads[template.pk] == "order ada"
    assert '"name": "grace"' in payloads[on_customer.pk]
    assert str(order.pk) in payloads[first.pk]


@pytest.mark.django_db(transaction=True)
def test_a_save_in_autocommit_stores_its_callbacks_in_one_statement(make_hook):
    """No BEGIN and COMMIT around it: one statement commits alone, in one round trip."""
    hooks = [make_hook() for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        Order.objects.create(name="x")
    # (On PostgreSQL a NOTIFY follows, at most once per NOTIFY_INTERVAL.)
    statements = [q["sql"] for q in queries.captured_queries if "pg_notify" not in q["sql"]]
    assert [sql.split()[0] for sql in statements] == ["INSERT", "INSERT"], statements
    assert "http_hooks_callback" in statements[1]
    assert sorted(Callback.objects.values_list("hook_id", flat=True)) == [h.pk for h in hooks]


def test_the_callbacks_of_one_event_get_their_own_rows_ids_in_order():
    """One multi-row INSERT: each callback object gets the id of its own row back."""
    from http_hooks.api import create_hook, send_event

    hooks = [
        create_hook(event_types=["order.paid"], target_url=f"http://127.0.0.1:9/{n}")
        for n in range(4)
    ]
    callbacks = send_event("order.paid", {"n": 1})
    assert len({c.pk for c in callbacks}) == 4
    stored = {c.pk: (c.hook_id, c.target_url, c.event_id) for c in Callback.objects.all()}
    assert stored == {c.pk: (c.hook_id, c.target_url, c.event_id) for c in callbacks}
    assert sorted(c.hook_id for c in callbacks) == sorted(h.pk for h in hooks)


@pytest.mark.django_db(transaction=True)
def test_text_no_database_can_store_fails_the_save_and_stores_nothing(make_hook):
    """Two halves of a surrogate pair are not text: they must not come out joined
    (JSON's escapes would join them into one character) in a callback of a save
    that failed."""
    make_hook(
        signals=["django.db.models.signals.pre_save"],
        content_type="text/plain",
        payload_template="{{ instance.name }}",
    )
    with pytest.raises(UnicodeEncodeError):
        Order.objects.create(name="\ud83d" + "\ude00")
    assert not Callback.objects.exists()
    assert not Order.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_nul_in_a_callback_is_refused_by_the_driver_and_nothing_is_stored(make_hook):
    """As before the one-statement insert: psycopg refuses the NUL before anything
    reaches the server (a JSON error would speak of escapes, with the text quoted)."""
    from django.db import DataError

    make_hook(
        signals=["django.db.models.signals.pre_save"],
        content_type="text/plain",
        payload_template="{{ instance.notes }}",
    )
    with pytest.raises(DataError, match="cannot contain NUL"):
        Order(name="x", notes="a\x00b").save()
    assert not Callback.objects.exists()


@pytest.mark.postgres
def test_an_event_over_what_one_jsonb_takes_is_stored_all_the_same(make_hook, monkeypatch):
    from http_hooks import bulk

    monkeypatch.setattr(bulk, "MAX_JSON_CHARACTERS", 1000)
    hooks = [make_hook(target_url=f"http://127.0.0.1:9/{n}") for n in range(3)]
    order = Order.objects.create(name="x", notes="x" * 500)
    stored = Callback.objects.filter(object_id=str(order.pk))
    assert sorted(stored.values_list("hook_id", flat=True)) == [h.pk for h in hooks]
    assert all("x" * 500 in payload for payload in stored.values_list("payload", flat=True))


@override_settings(TIME_ZONE="America/New_York")
def test_a_naive_date_is_read_in_the_current_time_zone_as_django_reads_it(make_hook):
    import datetime

    from http_hooks.outbox import insert_callbacks

    hook = make_hook()
    callback = Callback(hook=hook, target_url=hook.target_url, http_method="POST")
    callback.next_attempt_at = datetime.datetime(2026, 3, 1, 12, 0)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        insert_callbacks([callback], using="default")
    stored = Callback.objects.get(pk=callback.pk).next_attempt_at
    assert stored == datetime.datetime(2026, 3, 1, 17, 0, tzinfo=datetime.UTC)


def test_the_date_preparation_is_shared_by_the_same_object_only():
    """Equal datetimes may be different instants (``fold``): each is prepared."""
    import datetime
    import zoneinfo

    from http_hooks.bulk import row_preparer
    from http_hooks.models import Attempt

    new_york = zoneinfo.ZoneInfo("America/New_York")
    first = datetime.datetime(2021, 11, 7, 1, 30, tzinfo=new_york)
    second = first.replace(fold=1)  # an hour later, and == first
    assert first == second
    prepare = row_preparer([Attempt._meta.get_field("attempted_at")], connection)
    (earlier,), (later,) = prepare([first]), prepare([second])
    assert str(earlier) != str(later)
    assert prepare([first]) == prepare([first]) == [earlier]


def test_instances_made_by_position_are_those_made_by_keyword():
    """``bulk.instance_maker``: the fields given, every other one at its default, a
    callable default (the event id, the dates) called for each instance; a name the
    model does not have is refused."""
    import datetime

    from http_hooks.bulk import instance_maker

    now = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    given = {"hook_id": 7, "object_id": "42", "next_attempt_at": now, "status": "error"}
    make = instance_maker(Callback, tuple(given))
    first, second = make(*given.values()), make(*given.values())
    by_keyword = Callback(**given)
    called = {"event_id", "create_datetime", "update_datetime"}  # uuid7, timezone.now
    for field in Callback._meta.concrete_fields:
        if field.attname not in called:
            assert getattr(first, field.attname) == getattr(by_keyword, field.attname), field
        else:
            assert getattr(first, field.attname) != getattr(second, field.attname), field
    assert first.event_id.version == 7
    assert first._state.adding and first.pk is None
    with pytest.raises(ValueError, match="Callback has no field nope"):
        instance_maker(Callback, ("hook_id", "nope"))


def test_event_ids_are_version_7_uuids_ordered_by_creation_time(make_hook, monkeypatch):
    """RFC 9562 version 7: the first 48 bits are the creation time in milliseconds,
    so that their unique index grows at its end."""
    import time

    from http_hooks import models
    from http_hooks.models import uuid7

    make_hook()
    before = time.time_ns() // 1_000_000
    Order.objects.create(name="x")
    after = time.time_ns() // 1_000_000
    event_id = Callback.objects.get().event_id
    assert (event_id.version, event_id.variant) == (7, "specified in RFC 4122")
    assert before <= event_id.int >> 80 <= after
    # One id a millisecond, three milliseconds in turn: their order is the clock's.
    clock = iter([1_700_000_000_000_999_999, 1_700_000_000_001_000_000, 1_700_000_000_002_000_000])
    monkeypatch.setattr(models.time, "time_ns", lambda: next(clock))
    ids = [uuid7() for _ in range(3)]
    monkeypatch.undo()
    assert ids == sorted(ids)
    assert [i.int >> 80 for i in ids] == [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002]
    assert len({uuid7() for _ in range(10_000)}) == 10_000


def test_hooks_for_other_models_never_fire(make_hook):
    make_hook(model="shop.customer")
    Order.objects.create(name="x")
    assert Callback.objects.count() == 0


def test_pre_save_event_type_comes_from_adding(make_hook):
    make_hook(signals=["django.db.models.signals.pre_save"])
    order = Order.objects.create(name="x")
    order.save()
    assert list(Callback.objects.order_by("id").values_list("event_type", flat=True)) == [
        "created",
        "updated",
    ]


def test_post_init_hook_fires_when_an_instance_is_loaded(make_hook):
    Order.objects.create(name="x")
    make_hook(signals=["django.db.models.signals.post_init"])
    Order.objects.get()
    assert Callback.objects.get().event_type == "django.db.models.signals.post_init"


def test_m2m_changed_hook_on_the_owning_model_fires(make_hook):
    make_hook(model="auth.user", signals=["django.db.models.signals.m2m_changed"])
    user = User.objects.create_user("ada")
    user.groups.add(Group.objects.create(name="g"))
    callbacks = Callback.objects.all()
    assert [c.event_type for c in callbacks] == ["django.db.models.signals.m2m_changed"] * 2
    assert {c.object_id for c in callbacks} == {str(user.pk)}  # pre_add and post_add


def test_custom_signal_sent_by_user_code_fires_a_hook(make_hook):
    make_hook(
        signals=["shop.signals.order_shipped"],
        content_type="application/json",
        payload_template='{"id": {{instance.id}}, "carrier": "{{carrier}}", "e": "{{event_type}}"}',
    )
    order = Order.objects.create(name="x")
    order_shipped.send(sender=Order, instance=order, carrier="DHL")
    callback = Callback.objects.get()
    assert callback.event_type == "shop.signals.order_shipped"
    assert callback.payload == (
        f'{{"id": {order.pk}, "carrier": "DHL", "e": "shop.signals.order_shipped"}}'
    )


def test_a_template_names_the_sending_model_as_sender(make_hook):
    make_hook(content_type="application/json", payload_template='{"s": "{{sender}}"}')
    Order.objects.create(name="x")
    assert Callback.objects.get().payload == '{"s": "shop.order"}'


def test_a_stored_template_with_an_unknown_name_records_an_error_not_an_empty_value(make_hook):
    hook = make_hook(content_type="application/json", payload_template='{"e": "{{event_type}}"}')
    Hook.objects.filter(pk=hook.pk).update(
        payload_template='{"e": "{{evnt_type}}"}', update_datetime=timezone.now()
    )
    Order.objects.create(name="x")
    callback = Callback.objects.get()
    assert callback.status == CallbackStatus.ERROR
    assert "cannot render evnt_type" in callback.status_details


def test_custom_signal_can_be_registered_first(make_hook):
    signal = create_signal(signal="shop.signals.order_shipped")
    assert create_signal(signal="shop.signals.order_shipped") == signal


def test_a_rolled_back_change_leaves_no_callback(make_hook):
    make_hook()
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(name="x")
        assert Callback.objects.count() == 1
        raise RuntimeError("roll back")
    assert Callback.objects.count() == 0


def test_callback_keeps_the_url_method_and_content_type_of_the_event(make_hook):
    hook = make_hook(
        headers="test-token: 12345", http_method="PUT", content_type="application/json"
    )
    Order.objects.create(name="x")
    hook.target_url = "http://127.0.0.1:1/elsewhere"
    hook.save()
    callback = Callback.objects.get()
    assert not hasattr(callback, "headers")  # the hook's, read when a try goes out
    assert callback.http_method == "PUT"
    assert callback.content_type == "application/json"
    assert callback.target_url != hook.target_url


# --- hooks that cannot build their request -------------------------------------


def _store_raw(hook, **fields):
    """Write fields straight through the ORM, as an older version might have."""
    Hook.objects.filter(pk=hook.pk).update(**fields)
    Hook.objects.get(pk=hook.pk).save()  # a save tells the registry


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"headers": "token 1234"}, "invalid headers"),
        (
            {"content_type": "application/json", "payload_template": '"id": {{instance.id}}}'},
            "invalid JSON",
        ),
        (
            {"content_type": "application/xml", "payload_template": "<id>{{instance.id}}"},
            "invalid XML",
        ),
        ({"serializer_class": "shop.serializers.Missing"}, "cannot import"),
        ({"payload_template": "{{instance.delete}}"}, "cannot render"),
    ],
    ids=["bad-headers", "bad-json", "bad-xml", "bad-serializer", "callable-in-template"],
)
@pytest.mark.parametrize("raise_exceptions", [False, True], ids=["default", "raise"])
def test_a_broken_hook_in_the_database_stores_an_error_callback_and_the_save_succeeds(
    make_hook, settings, fields, words, raise_exceptions
):
    """Whatever DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS says, as in the old package."""
    settings.DJANGO_HTTP_HOOKS_RAISE_EXCEPTIONS = raise_exceptions
    hook = make_hook()
    _store_raw(hook, **fields)
    order = Order.objects.create(name="x")
    assert Order.objects.filter(pk=order.pk).exists()
    callback = Callback.objects.get()
    assert callback.status == "error"
    assert words in callback.status_details


def test_a_template_failing_on_one_instance_only_gives_an_error_callback(make_hook):
    make_hook(
        content_type="application/json",
        payload_template='{"rate": {{instance.discount_rate}}}',
    )
    Order.objects.create(name="vip", customer=Customer.objects.create(name="a", is_vip=True))
    Order.objects.create(name="no customer")
    statuses = list(Callback.objects.order_by("id").values_list("status", "status_details"))
    assert statuses[0] == ("waiting", "")
    assert statuses[1][0] == "error"
    assert "cannot render instance.discount_rate" in statuses[1][1]


@override_settings(DJANGO_HTTP_HOOKS_SHUT_DOWN=True)
def test_shut_down_creates_no_callbacks(make_hook):
    make_hook()
    Order.objects.create(name="x")
    assert Callback.objects.count() == 0


# --- disable_hooks --------------------------------------------------------------


def test_disable_hooks_switches_hooks_off_inside_the_block_only(make_hook):
    make_hook()
    with disable_hooks():
        Order.objects.create(name="bulk")
    assert Callback.objects.count() == 0
    Order.objects.create(name="normal")
    assert Callback.objects.count() == 1


def test_disable_hooks_is_per_thread(make_hook):
    make_hook()
    inside = threading.Event()
    release = threading.Event()
    seen = {}

    def other_thread():
        seen["inside_the_block"] = inside.wait(60)
        seen["disabled_elsewhere"] = hooks_disabled()
        release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with disable_hooks():
        inside.set()
        assert release.wait(60), "the other thread never looked"
    thread.join()
    assert seen == {"inside_the_block": True, "disabled_elsewhere": False}


def test_disable_hooks_is_per_async_task():
    async def quiet(started, proceed):
        with disable_hooks():
            started.set()
            await proceed.wait()
            return hooks_disabled()

    async def loud(started, proceed):
        await started.wait()
        state = hooks_disabled()
        proceed.set()
        return state

    async def main():
        started, proceed = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(quiet(started, proceed), loud(started, proceed))

    assert asyncio.run(main()) == [True, False]


def test_parcel_seed_template_end_to_end_callback(make_hook):
    make_hook(
        model="shop.parcel",
        content_type="application/json",
        payload_template=(
            '{"instance_id": {{instance.id}}, "event_type": "{{event_type}}", '
            '"instance_name": "{{instance.name}}", "nested_attribute": '
            '"{{instance.nested_attribute.name}}"}'
        ),
    )
    parcel = Parcel.objects.create(name="Box", nested_attribute=Customer.objects.create(name="Ada"))
    assert Callback.objects.get().payload == (
        f'{{"instance_id": {parcel.pk}, "event_type": "created", "instance_name": "Box", '
        '"nested_attribute": "Ada"}'
    )
