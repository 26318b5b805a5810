"""create_hook / create_signal / update_hook: validation at once, nothing half-written."""

import itertools

import pytest
from django.contrib.auth.models import User

from http_hooks.api import (
    create_hook,
    create_signal,
    resend_callbacks,
    send_callbacks,
    send_event,
    update_hook,
)
from http_hooks.exceptions import (
    BlockedNetworkError,
    HttpHooksError,
    InvalidFilterError,
    InvalidHeadersError,
    InvalidHookError,
    InvalidModelError,
    InvalidPayloadError,
    InvalidSignalError,
    InvalidTargetURLError,
)
from http_hooks.models import Callback, CallbackStatus, Hook, Signal

from .backends import outage_on_call

pytestmark = pytest.mark.django_db

GOOD = {
    "signals": ["django.db.models.signals.post_save"],
    "model": "auth.user",
    "target_url": "https://example.com/hook",
}


def test_create_hook_stores_every_field():
    hook = create_hook(
        **GOOD,
        name="users",
        http_method="put",
        content_type="application/json",
        headers="test-token: 12345\r\nX-Other: a:b",
        payload_template='{"id": {{instance.id}}}',
        serializer_class="shop.serializers.OrderSerializer",
        enabled=False,
    )
    hook.refresh_from_db()
    assert hook.name == "users"
    assert hook.model.model_class() is User
    assert [s.signal for s in hook.signals.all()] == GOOD["signals"]
    assert hook.http_method == "PUT"
    assert hook.headers == {"test-token": "12345", "X-Other": "a:b"}
    assert hook.enabled is False


def test_create_signal_validates_the_path():
    assert create_signal(signal="shop.signals.order_shipped").signal == "shop.signals.order_shipped"
    with pytest.raises(InvalidSignalError):
        create_signal(signal="dummy.signal")
    assert not Signal.objects.filter(signal="dummy.signal").exists()


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"signals": ["dummy.signal"]}, InvalidSignalError, "cannot import"),
        ({"signals": ["shop.models.Order"]}, InvalidSignalError, "not a django.dispatch.Signal"),
        ({"signals": ["post_save"]}, InvalidSignalError, "full dotted import path"),
        ({"signals": []}, InvalidSignalError, "at least one signal"),
        ({"headers": "token 1234"}, InvalidHeadersError, "invalid headers"),
        ({"headers": {"X": "a\r\nb"}}, InvalidHeadersError, "line break"),
        (
            {"content_type": "application/json", "payload_template": '"id": {{instance.id}}}'},
            InvalidPayloadError,
            "invalid JSON",
        ),
        (
            {
                "content_type": "application/xml",
                "payload_template": "<?xml version='1.0' encoding='utf-8'?><id>{{instance.id}}",
            },
            InvalidPayloadError,
            "invalid XML",
        ),
        ({"content_type": "text/xml"}, InvalidPayloadError, "without a payload template"),
        ({"payload_template": "{{instance.delete}}"}, InvalidPayloadError, "no field"),
        ({"payload_template": "{{instance._state}}"}, InvalidPayloadError, "private"),
        ({"serializer_class": "shop.serializers.Nope"}, InvalidPayloadError, "cannot import"),
        ({"serializer_class": "shop.models.Order"}, InvalidPayloadError, "not a DRF serializer"),
        ({"model": "shop.nothing"}, InvalidModelError, "no such model"),
        ({"model": "nothing"}, InvalidModelError, "no such model"),
        ({"model": "http_hooks.hook"}, InvalidModelError, "would loop"),
        ({"model": "http_hooks.callback"}, InvalidModelError, "would loop"),
        ({"model": 42}, InvalidModelError, "app_label.model"),
        ({"target_url": "ftp://example.com/x"}, InvalidTargetURLError, "http"),
        ({"target_url": "/relative"}, InvalidTargetURLError, "absolute"),
        ({"target_url": "https://u:p@example.com/"}, InvalidTargetURLError, "credentials"),
        ({"target_url": "http://[::1"}, InvalidTargetURLError, "invalid target URL"),
        ({"http_method": "TRACE"}, InvalidHookError, "invalid HTTP method"),
        ({"content_type": "image/png"}, InvalidHookError, "invalid content type"),
        ({"name": "x" * 201}, InvalidHookError, "at most 200"),
        ({"secret": "not-a-secret"}, InvalidHookError, "whsec_"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_input_raises_and_writes_nothing(changes, error, words):
    with pytest.raises(error, match=words):
        create_hook(**{**GOOD, **changes})
    assert Hook.objects.count() == 0


def test_all_errors_share_one_base_class_and_name_their_field():
    with pytest.raises(HttpHooksError) as info:
        create_hook(**{**GOOD, "headers": "token 1234"})
    assert info.value.field == "headers"


def test_blocked_network_is_refused_when_the_policy_is_on(settings):
    settings.HTTP_HOOKS = {"BLOCK_PRIVATE_NETWORKS": True}
    for url in (
        "http://127.0.0.1/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/",
        "http://[::1]/",
    ):
        with pytest.raises(BlockedNetworkError):
            create_hook(**{**GOOD, "target_url": url})
    assert Hook.objects.count() == 0


def test_update_hook_validates_the_whole_hook_and_keeps_it_on_error():
    hook = create_hook(**GOOD, headers="A: 1")
    with pytest.raises(InvalidHeadersError):
        update_hook(hook, headers="broken")
    hook.refresh_from_db()
    assert hook.headers == {"A": "1"}
    update_hook(hook, target_url="https://example.org/new", signals=["shop.signals.order_shipped"])
    hook.refresh_from_db()
    assert hook.target_url == "https://example.org/new"
    assert [s.signal for s in hook.signals.all()] == ["shop.signals.order_shipped"]


def test_update_hook_refuses_unknown_fields():
    hook = create_hook(**GOOD)
    with pytest.raises(TypeError, match="unknown fields"):
        update_hook(hook, colour="red")


# --- the old package's calling conventions ------------------------------------------


def test_create_hook_takes_signals_and_model_by_position_as_the_old_package_did():
    hook = create_hook(
        ["django.db.models.signals.post_save"], "user", target_url="https://example.com/hook"
    )
    hook.refresh_from_db()
    assert hook.model.model_class() is User
    assert [s.signal for s in hook.signals.all()] == ["django.db.models.signals.post_save"]
    assert (hook.http_method, hook.name, hook.enabled) == ("POST", "", True)


@pytest.mark.parametrize(
    ("arguments", "error", "field"),
    [
        pytest.param({"model": "user"}, InvalidHookError, "target_url", id="no-target-url"),
        pytest.param(
            {"target_url": "https://example.com/hook"}, InvalidModelError, "model", id="no-model"
        ),
        pytest.param(
            {"model": "user", "target_url": "https://example.com/hook", "name": None},
            None,
            None,
            id="name-none-is-empty",
        ),
    ],
)
def test_create_hook_without_what_the_old_package_defaulted(arguments, error, field):
    """The old package filled in ``target_url='http://demo_url'``, a hook that could never
    deliver: a hook without a target is refused, with the field named."""
    signals = ["django.db.models.signals.post_save"]
    if error is None:
        assert create_hook(signals, **arguments).name == ""
        return
    with pytest.raises(error) as info:
        create_hook(signals, **arguments)
    assert info.value.field == field
    assert not Hook.objects.exists()


def test_create_hook_refuses_keywords_it_does_not_know():
    """The old package ignored them (``user=...``): a typo there lost a setting silently."""
    with pytest.raises(TypeError, match="user"):
        create_hook(**GOOD, user=None)
    assert not Hook.objects.exists()


def test_create_hook_parameters_are_the_hook_fields():
    import inspect

    from http_hooks.validators import HOOK_FIELDS

    parameters = set(inspect.signature(create_hook).parameters)
    assert parameters == {*HOOK_FIELDS, "enabled", "secret", "owner"}


def test_create_signal_by_position_and_create_false_stores_nothing():
    from django.db.models.signals import post_delete

    from shop.signals import order_shipped

    assert create_signal("shop.signals.order_shipped").signal == "shop.signals.order_shipped"
    Signal.objects.filter(signal="shop.signals.order_shipped").delete()
    assert create_signal("shop.signals.order_shipped", create=False) is order_shipped
    assert create_signal("django.db.models.signals.post_delete", False) is post_delete
    assert not Signal.objects.filter(signal="shop.signals.order_shipped").exists()
    with pytest.raises(InvalidSignalError):
        create_signal("dummy.signal", create=False)


@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("name", "{}", InvalidHookError),
        ("target_url", "https://example.com/{}", InvalidTargetURLError),
        ("payload_template", '{{"a": "{}"}}', InvalidPayloadError),
        ("ordering_key", "{{{{instance.pk}}}}{}", InvalidHookError),
    ],
)
def test_text_no_database_can_store_is_refused_before_the_insert(field, value, error, bad):
    """A NUL (PostgreSQL) or a lone surrogate (any driver) reached the insert: a
    DataError or a UnicodeEncodeError, or on SQLite a NUL stored as given."""
    hook = create_hook(**GOOD, name="kept")
    with pytest.raises(error) as raised:
        create_hook(**{**GOOD, field: value.format(bad)})
    assert raised.value.field == field
    with pytest.raises(error):
        update_hook(hook, **{field: value.format(bad)})
    assert list(Hook.objects.values_list("name", flat=True)) == ["kept"]


@pytest.mark.parametrize(
    "arguments",
    [
        {"limit": float("nan")},  # was no limit: every due callback went
        {"limit": 1.5},  # was Django's EmptyResultSet
        {"limit": 0},
        {"limit": -1},
        {"limit": True},
        {"ids": [2**63]},  # was the driver's OverflowError
        {"ids": [10**100]},
        {"ids": [True]},  # was callback 1
        {"ids": [1.0]},
        {"ids": ["1"]},
        {"ids": 1},  # was a TypeError
        {"ids": "12"},
        {"hook_id": True},  # was hook 1
        {"hook_id": 1.0},
        {"hook_id": "1"},
        {"hook_id": 2**63},
    ],
    ids=repr,
)
def test_send_callbacks_refuses_what_is_no_id_or_limit(receiver, arguments):
    # On SQLite (ids start at 1 in each test) True, 1.0 and "1" named this hook.
    create_hook(event_types=["order.paid"], target_url=receiver.url())
    for _ in range(2):
        send_event("order.paid", {})
    with pytest.raises(InvalidFilterError) as raised:
        send_callbacks(**arguments)
    assert raised.value.field == next(iter(arguments))
    assert receiver.requests == []
    assert set(Callback.objects.values_list("status", flat=True)) == {CallbackStatus.WAITING}


@pytest.mark.parametrize("ids", [[2**63], [True], ["1"], 1, "1"], ids=repr)
def test_resend_callbacks_refuses_what_is_no_id(ids):
    create_hook(event_types=["order.paid"], target_url="https://example.com/hook")
    send_event("order.paid", {})
    Callback.objects.update(status=CallbackStatus.ERROR)
    with pytest.raises(InvalidFilterError):
        resend_callbacks(ids=ids)
    assert set(Callback.objects.values_list("status", flat=True)) == {CallbackStatus.ERROR}


def _hook_calls():
    from django.utils import timezone

    from http_hooks.api import delete_hook, enable_hook, recover_hook, rotate_secret
    from http_hooks.api import send_test_event as test_event

    return {
        "update_hook": lambda hook: update_hook(hook, name="changed"),
        "update_hook enabled": lambda hook: update_hook(hook, enabled=False),
        "enable_hook": enable_hook,
        "rotate_secret": rotate_secret,
        "recover_hook": lambda hook: recover_hook(hook, since=timezone.now()),
        "send_test_event": test_event,
        "delete_hook": delete_hook,
    }


@pytest.mark.parametrize("call", list(_hook_calls()))
def test_a_hook_argument_of_another_model_changes_nothing(call):
    """delete_hook(user) deleted the user; the others failed deep inside
    (AttributeError, ValueError)."""
    user = User.objects.create(username="not-a-hook")
    for wrong in (user, User(username="unsaved"), Hook(target_url="https://example.com/")):
        with pytest.raises(InvalidHookError) as raised:
            _hook_calls()[call](wrong)
        assert raised.value.field == "hook"
    assert User.objects.filter(pk=user.pk).exists()


@pytest.mark.parametrize("call", ["update_hook", "update_hook enabled", "enable_hook"])
def test_a_deleted_hook_is_a_hook_that_changed_hands(call):
    """Was Django's DatabaseError ("Save with update_fields did not affect any rows"),
    DoesNotExist, or a hook on a model 'needs at least one signal' (its signals went
    with it)."""
    from http_hooks.exceptions import HookChangedHandsError

    hook = create_hook(**GOOD)
    Hook.objects.filter(pk=hook.pk).delete()
    with pytest.raises(HookChangedHandsError):
        _hook_calls()[call](hook)
    assert not Hook.objects.exists()


@pytest.mark.parametrize("secret", [False, 0, [], b""], ids=repr)
def test_a_secret_that_is_no_text_does_not_make_the_hook_unsigned(secret):
    """A falsy secret of another type was read as "": the hook lost its signature."""
    from http_hooks.api import rotate_secret

    hook = create_hook(**GOOD, name="kept")
    signed_with = hook.secret
    with pytest.raises(InvalidHookError) as raised:
        create_hook(**GOOD, secret=secret)
    assert raised.value.field == "secret"
    with pytest.raises(InvalidHookError):
        update_hook(Hook.objects.get(pk=hook.pk), secret=secret)
    with pytest.raises(InvalidHookError):
        rotate_secret(Hook.objects.get(pk=hook.pk), secret=secret)
    assert list(Hook.objects.values_list("name", "secret")) == [("kept", signed_with)]


@pytest.mark.parametrize("enabled", ["false", "no", None, 0, 1], ids=repr)
def test_enabled_that_is_no_bool_is_refused(enabled):
    """bool() of it was taken: "false" and "no" enabled the hook."""
    hook = create_hook(**GOOD, name="kept", enabled=False)
    with pytest.raises(InvalidHookError) as raised:
        create_hook(**GOOD, enabled=enabled)
    assert raised.value.field == "enabled"
    with pytest.raises(InvalidHookError):
        update_hook(Hook.objects.get(pk=hook.pk), enabled=enabled)
    assert list(Hook.objects.values_list("name", "enabled")) == [("kept", False)]


@pytest.mark.parametrize("owners", ["12", b"12", 12, {"12": True}, [None], [1.5], [True]], ids=repr)
def test_owners_that_are_no_collection_of_keys_are_refused(owners):
    """A string was read as its characters: owners="12" counted, resent and deleted
    the callbacks of owners "1" and "2", and left owner "12"'s."""
    from http_hooks.api import delete_old_callbacks, monitor_callbacks

    users = [User.objects.create(username=f"user{i}") for i in range(12)]
    for user in users:
        create_hook(event_types=["order.paid"], target_url="https://example.com/", owner=user)
        send_event("order.paid", {}, owner=user)
    Callback.objects.update(status=CallbackStatus.ERROR)
    for call in (
        lambda: monitor_callbacks(status="error", owners=owners),
        lambda: resend_callbacks(owners=owners),
        lambda: delete_old_callbacks(days=0, owners=owners),
    ):
        with pytest.raises(InvalidFilterError) as raised:
            call()
        assert raised.value.field == "owners"
    assert Callback.objects.filter(status=CallbackStatus.ERROR).count() == 12


@pytest.mark.parametrize(
    ("owners", "message"),
    [
        pytest.param(itertools.count(), "owners lists at most 10,000 owners", id="endless"),
        pytest.param(["1\x00"], "an owner key holds a NUL", id="nul"),
        pytest.param(["\ud800"], "an owner key holds a NUL or a lone surrogate", id="surrogate"),
    ],
)
def test_owners_are_read_to_a_bound_and_must_be_storable_keys(owners, message):
    """An endless iterable of owners hung the call; a NUL failed in PostgreSQL's driver."""
    from http_hooks.api import delete_old_callbacks, monitor_callbacks

    create_hook(event_types=["order.paid"], target_url="https://example.com/")
    send_event("order.paid", {})
    for call in (
        lambda: monitor_callbacks(status="waiting", owners=owners),
        lambda: resend_callbacks(owners=owners),
        lambda: delete_old_callbacks(days=0, include_undelivered=True, owners=owners),
    ):
        with pytest.raises(InvalidFilterError, match=message) as raised:
            call()
        assert raised.value.field == "owners"
    assert Callback.objects.count() == 1


@pytest.mark.parametrize(
    "queryset",
    [
        pytest.param([1], id="list"),
        pytest.param(lambda: Hook.objects.all(), id="hooks"),
    ],
)
def test_resend_callbacks_refuses_a_queryset_that_is_no_queryset_of_callbacks(queryset):
    """A list was an AttributeError, a queryset of hooks a FieldError."""
    if callable(queryset):
        queryset = queryset()
    with pytest.raises(InvalidFilterError, match=r"^queryset must be a QuerySet of callbacks"):
        resend_callbacks(queryset=queryset)


def test_set_hook_enabled_refuses_what_is_no_bool():
    from http_hooks.services import set_hook_enabled

    hook = create_hook(**GOOD, enabled=False)
    with pytest.raises(InvalidHookError):
        set_hook_enabled(hook, "no")
    assert Hook.objects.get().enabled is False


def test_import_legacy_hooks_refuses_flags_and_databases_that_are_wrong():
    from http_hooks.legacy import import_legacy_hooks

    for flags in ({"dry_run": "no"}, {"waiting_callbacks": 1}):
        with pytest.raises(InvalidFilterError, match="must be True or False"):
            import_legacy_hooks(**flags)
    for using in ("x" * 1_000_000, ["default"]):
        with pytest.raises(InvalidFilterError, match=r"^no database ") as raised:
            import_legacy_hooks(using=using)
        assert len(raised.value.message) < 200


HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        pytest.param({"model": "app.Model" * 100_000}, InvalidModelError, id="model"),
        pytest.param({"model": "Model" * 200_000}, InvalidModelError, id="model-name"),
        pytest.param({"model": [HUGE]}, InvalidModelError, id="model-list"),
        pytest.param({"http_method": HUGE}, InvalidHookError, id="http-method"),
        pytest.param({"content_type": HUGE}, InvalidHookError, id="content-type"),
        pytest.param({"changed_fields": [HUGE]}, InvalidHookError, id="changed-field"),
        pytest.param({"headers": {"a b" * 3000: "x"}}, InvalidHeadersError, id="header-name"),
        pytest.param({"headers": "a" * 10_000}, InvalidHeadersError, id="header-line"),
        pytest.param({"secret_headers": ["a b" * 300_000]}, InvalidHeadersError, id="secret"),
        pytest.param({"conditions": {"placed_on": HUGE}}, InvalidHookError, id="condition"),
        pytest.param(
            {"payload_template": "{{instance." + "a" * 99_000 + "}}"},
            InvalidPayloadError,
            id="template",
        ),
        pytest.param(
            {"target_url": "http://" + "%41" * 600 + "/"}, InvalidTargetURLError, id="host"
        ),
    ],
)
def test_an_error_quotes_what_it_refuses_cut_short(changes, error):
    """The whole value was in the message: a megabyte of model name came back in the
    400, the log line and the command's error line."""
    arguments = {**GOOD, "model": "shop.order", **changes}
    with pytest.raises(error) as raised:
        create_hook(**arguments)
    assert len(raised.value.message) <= 1000
    assert len(str(raised.value)) <= 1000
    assert not Hook.objects.exists()


def test_monitor_callbacks_quotes_a_status_it_refuses_cut_short():
    from http_hooks.api import monitor_callbacks

    with pytest.raises(InvalidFilterError) as raised:
        monitor_callbacks(status=HUGE)
    assert len(raised.value.message) < 200


def test_owners_given_as_instances_or_numbers_are_their_keys():
    from http_hooks.api import monitor_callbacks

    users = [User.objects.create(username=f"user{i}") for i in range(3)]
    for user in users:
        create_hook(event_types=["order.paid"], target_url="https://example.com/", owner=user)
        send_event("order.paid", {}, owner=user)
    chosen = (users[0], users[1].pk)
    assert monitor_callbacks(status="waiting", owners=chosen).count == 2
    assert monitor_callbacks(status="waiting", owners=(u for u in chosen)).count == 2


@pytest.mark.parametrize("create", ["no", "false", 0, 1, None], ids=repr)
def test_create_signal_refuses_a_create_that_is_no_bool(create):
    """bool() of it was taken: create="no" stored the signal, create=None did not."""
    with pytest.raises(InvalidSignalError) as raised:
        create_signal("shop.signals.order_shipped", create=create)
    assert raised.value.field == "create"
    assert not Signal.objects.filter(signal="shop.signals.order_shipped").exists()


@pytest.mark.parametrize("flag", ["no", "false", 0, 1, None], ids=repr)
def test_flags_that_are_no_bool_are_refused(flag):
    """bool() of them was taken: include_undelivered="no" deleted the callbacks not
    delivered yet, confirm="no" confirmed a resend past RESEND_LIMIT."""
    from django.test import override_settings

    from http_hooks.api import delete_old_callbacks, recover_hook
    from http_hooks.exceptions import InvalidEventError

    hook = create_hook(event_types=["order.paid"], target_url="https://example.com/")
    for _ in range(2):
        send_event("order.paid", {})
    with pytest.raises(InvalidFilterError) as raised:
        delete_old_callbacks(days=0, include_undelivered=flag)
    assert raised.value.field == "include_undelivered"
    with pytest.raises(InvalidFilterError):
        delete_old_callbacks(days=0, vacuum=flag)
    assert Callback.objects.count() == 2
    Callback.objects.update(status=CallbackStatus.ERROR)
    with override_settings(HTTP_HOOKS={"RESEND_LIMIT": 1}):
        for call in (
            lambda: resend_callbacks(confirm=flag),
            lambda: recover_hook(hook, since=hook.create_datetime, confirm=flag),
        ):
            with pytest.raises(InvalidFilterError) as raised:
                call()
            assert raised.value.field == "confirm"
    assert set(Callback.objects.values_list("status", flat=True)) == {CallbackStatus.ERROR}
    with pytest.raises(InvalidEventError) as raised:
        send_event("order.paid", {}, shared=flag)
    assert raised.value.field == "shared"
    assert Callback.objects.count() == 2


@pytest.mark.parametrize("model", ["AbstractUser", "AbstractBaseUser", "Model"])
def test_an_abstract_model_is_refused_and_leaves_no_content_type(model):
    """An abstract model class was taken: a content type row made for it, and a hook
    that could never fire (no save has an abstract model as its sender); ``Model``
    itself was an AttributeError."""
    from django.contrib.auth import base_user
    from django.contrib.auth import models as auth_models
    from django.contrib.contenttypes.models import ContentType
    from django.db import models

    cls = {
        "AbstractUser": auth_models.AbstractUser,
        "AbstractBaseUser": base_user.AbstractBaseUser,
        "Model": models.Model,
    }[model]
    content_types = ContentType.objects.count()
    with pytest.raises(InvalidModelError) as raised:
        create_hook(**{**GOOD, "model": cls})
    assert raised.value.field == "model"
    assert ContentType.objects.count() == content_types
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"hooks": [1]}, "hooks"),  # was an AttributeError
        ({"hooks": "12"}, "hooks"),
        ({"hooks": [None]}, "hooks"),
        ({"now": "2026-01-01"}, "now"),  # was an AttributeError
        ({"now": 0}, "now"),
    ],
    ids=repr,
)
def test_hooks_health_refuses_what_is_no_hook_or_time(arguments, field):
    from http_hooks.api import hooks_health

    create_hook(**GOOD)
    with pytest.raises(InvalidFilterError) as raised:
        hooks_health(hours=1, **arguments)
    assert raised.value.field == field


def test_an_owner_key_with_a_nul_is_refused_for_what_it_is():
    """The message said the key was too long."""
    from http_hooks.api import delete_owner_data

    with pytest.raises(InvalidHookError, match="no NUL or lone surrogate"):
        delete_owner_data("1\x00")


def test_delete_old_callbacks_refuses_an_on_batch_that_is_no_function():
    """It was called after the first batch was deleted: a TypeError, half done."""
    from http_hooks.api import delete_old_callbacks

    create_hook(event_types=["order.paid"], target_url="https://example.com/")
    send_event("order.paid", {})
    Callback.objects.update(status=CallbackStatus.SENT)
    with pytest.raises(InvalidFilterError) as raised:
        delete_old_callbacks(days=0, on_batch=5)
    assert raised.value.field == "on_batch"
    assert Callback.objects.count() == 1


def test_hooks_health_reads_hooks_to_a_bound():
    """They were read whole: an endless iterable of hooks filled the memory."""
    from http_hooks.api import hooks_health
    from http_hooks.delivery.ids import MAX_LISTED_IDS

    hook = create_hook(**GOOD)
    with pytest.raises(InvalidFilterError, match="hooks lists at most 10,000 hooks") as raised:
        hooks_health(hours=1, hooks=itertools.repeat(hook, MAX_LISTED_IDS + 1))
    assert raised.value.field == "hooks"
    assert len(hooks_health(hours=1, hooks=itertools.repeat(hook, 3))) == 3


def test_hooks_health_takes_a_naive_time_in_the_current_time_zone():
    import datetime

    from django.utils import timezone

    from http_hooks.api import hooks_health

    hook = create_hook(**GOOD)
    now = timezone.now()
    naive = timezone.make_naive(now)
    assert hooks_health(hours=2, hooks=[hook], now=naive) == hooks_health(
        hours=2, hooks=[hook], now=now
    )
    assert isinstance(naive, datetime.datetime)


@pytest.mark.parametrize("written", [" {}", "{}\n", "+{}", "{}_0", "\u0661{}"], ids=repr)
def test_an_owner_key_written_otherwise_is_no_owner(written):
    """int() read " 10", "10\\n", "+10", "1_0" and Arabic-Indic digits as owner 10:
    delete_owner_data(" 10") deleted owner 10's hooks, send_event reached them."""
    from http_hooks.api import delete_owner_data

    owner = User.objects.create(username="owner")
    create_hook(event_types=["order.paid"], target_url="https://example.com/", owner=owner)
    key = written.format(owner.pk)
    with pytest.raises(InvalidHookError) as raised:
        delete_owner_data(key)
    assert raised.value.field == "owner"
    with pytest.raises(HttpHooksError):
        send_event("order.paid", {}, owner=key)
    with pytest.raises(InvalidHookError):
        create_hook(event_types=["order.paid"], target_url="https://example.com/", owner=key)
    assert list(Hook.objects.values_list("owner", flat=True)) == [str(owner.pk)]
    assert not Callback.objects.exists()


def _fails_on_call(number):
    calls = []

    def call(*args):
        calls.append(args)
        if len(calls) >= number:
            raise RuntimeError("the caller's function failed")
        return False

    return call


@pytest.mark.parametrize(
    "arguments",
    [{"progress": _fails_on_call(1)}, {"stop": _fails_on_call(3)}],
    ids=["progress", "stop"],
)
def test_a_failing_progress_or_stop_leaves_no_callback_sent_but_unrecorded(receiver, arguments):
    """Raised in the middle of the run, the caller's exception left the callbacks in
    flight ``sending``: delivered, but unrecorded, and sent again once their lease ran
    out. The run now stops as if asked, then raises it."""
    create_hook(event_types=["order.paid"], target_url=receiver.url())
    for _ in range(3):
        send_event("order.paid", {})
    with pytest.raises(RuntimeError, match="the caller's function failed"):
        send_callbacks(**arguments)
    statuses = list(Callback.objects.values_list("status", flat=True))
    assert CallbackStatus.SENDING not in statuses
    assert statuses.count(CallbackStatus.SENT) == len(receiver.requests)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failing", ["progress", "stop"])
def test_the_callers_exception_is_raised_when_the_database_fails_too(
    receiver, settings, monkeypatch, caplog, failing
):
    """The caller's progress or stop raises as the database goes away: the run stops,
    cannot give back the callbacks it holds and not started, and raised the database's
    OperationalError in place of the caller's exception. The caller's is raised, the
    database's error logged."""
    from http_hooks.delivery import reconnect

    monkeypatch.setattr(reconnect, "RECONNECT_DELAYS", (0.01,))
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "CONCURRENCY": 1, "HOOK_CONCURRENCY": 1}
    create_hook(event_types=["order.paid"], target_url=receiver.url())
    for _ in range(3):
        send_event("order.paid", {})
    with outage_on_call() as go_away:

        def fail(*args):
            if not receiver.requests:
                return False
            go_away()
            raise RuntimeError("the caller's function failed")

        with pytest.raises(RuntimeError, match="the caller's function failed") as raised:
            send_callbacks(**{failing: fail})
    assert raised.value.__context__ is None
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("sender: stopping")]
    assert logged.getMessage().startswith(
        "sender: stopping for an error of the caller's, the run failed too ("
    )
    assert logged.exc_info is None  # the first line of an outage, not its traceback


@pytest.mark.parametrize(
    "arguments", [{"progress": 5}, {"stop": "x"}, {"due_only": "no"}], ids=repr
)
def test_send_callbacks_refuses_a_progress_or_stop_that_is_no_function(receiver, arguments):
    create_hook(event_types=["order.paid"], target_url=receiver.url())
    send_event("order.paid", {})
    with pytest.raises(InvalidFilterError) as raised:
        send_callbacks(**arguments)
    assert raised.value.field == next(iter(arguments))
    assert receiver.requests == []
    assert Callback.objects.get().status == CallbackStatus.WAITING


def test_more_ids_than_a_statement_holds_are_refused_before_any_query(receiver):
    """SQLite takes 32,766 or 250,000 parameters a statement: 300,000 ids were its
    OperationalError ("too many SQL variables"), a database failure."""
    from http_hooks.services import count_due

    create_hook(event_types=["order.paid"], target_url=receiver.url())
    send_event("order.paid", {})
    too_many = range(1, 300_001)
    for call in (
        lambda: send_callbacks(ids=too_many),
        lambda: count_due(ids=too_many),
        lambda: resend_callbacks(ids=too_many, confirm=True),
    ):
        with pytest.raises(InvalidFilterError, match="at most 10,000 ids"):
            call()
    assert receiver.requests == []
    everything = [*range(1, 10_000), Callback.objects.get().pk]  # at the limit
    assert send_callbacks(ids=everything).sent == 1
