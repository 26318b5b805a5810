"""The admin, through Django's test client: pages, validation as form errors, actions."""

import base64
import html
import json
import logging
import re
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from http_hooks.delivery.stats import MAX_WINDOW_HOURS
from http_hooks.models import Callback, CallbackStatus, Hook, Signal
from shop.models import Customer, Order

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"


def hook_form(receiver, **overrides):
    signal = Signal.objects.get(signal=POST_SAVE)
    data = {
        "name": "orders",
        "model": ContentType.objects.get_for_model(Order).pk,
        "signals": [signal.pk],
        "enabled": "on",
        "target_url": receiver.url(),
        "http_method": "POST",
        "headers": "test-token: 12345",
        "content_type": "application/json",
        "payload_template": '{"id": {{instance.id}}}',
        "serializer_class": "",
    }
    data.update(overrides)
    if isinstance(data["model"], str):  # "app_label.model"
        data["model"] = ContentType.objects.get_by_natural_key(*data["model"].split(".")).pk
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "url",
    [
        "admin:http_hooks_hook_changelist",
        "admin:http_hooks_hook_add",
        "admin:http_hooks_signal_changelist",
        "admin:http_hooks_signal_add",
        "admin:http_hooks_callback_changelist",
        "admin:http_hooks_callback_overview",
    ],
)
def test_admin_pages_render(admin_client, make_hook, url):
    make_hook()
    Order.objects.create(name="x")
    response = admin_client.get(reverse(url))
    assert response.status_code == 200


def test_hook_and_callback_change_pages_render(admin_client, make_hook):
    hook = make_hook(headers="A: 1")
    Order.objects.create(name="x")
    callback = Callback.objects.get()
    response = admin_client.get(reverse("admin:http_hooks_hook_change", args=[hook.pk]))
    assert response.status_code == 200
    assert "A: 1" in response.content.decode()
    response = admin_client.get(reverse("admin:http_hooks_callback_change", args=[callback.pk]))
    assert response.status_code == 200


def test_adding_a_hook_in_the_admin_makes_it_fire(admin_client, receiver):
    response = admin_client.post(reverse("admin:http_hooks_hook_add"), hook_form(receiver))
    assert response.status_code == 302, response.context["adminform"].form.errors
    hook = Hook.objects.get()
    assert hook.headers == {"test-token": "12345"}
    assert [s.signal for s in hook.signals.all()] == [POST_SAVE]
    Order.objects.create(name="x")
    assert Callback.objects.get().hook == hook


@pytest.mark.parametrize("rate_limit", ["\u0661\u0662", " 12", "1_2", "+12", "12.0"], ids=repr)
def test_a_rate_limit_that_is_no_ascii_whole_number_is_a_form_error(
    admin_client, receiver, rate_limit
):
    """Django's field read Arabic-Indic digits, a sign, a space and "12.0" as 12; the REST
    API refuses them."""
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, rate_limit=rate_limit)
    )
    assert response.status_code == 200
    assert "rate_limit" in response.context["adminform"].form.errors
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"headers": "token 1234"}, "headers", "invalid headers"),
        ({"payload_template": '"id": {{instance.id}}}'}, "payload_template", "invalid JSON"),
        (
            {"content_type": "application/xml", "payload_template": "<id>{{instance.id}}"},
            "payload_template",
            "invalid XML",
        ),
        ({"payload_template": "{{instance.delete}}"}, "payload_template", "no field"),
        (
            {"payload_template": '{"p": "{{instance.user.password}}"}', "model": "admin.logentry"},
            "payload_template",
            "auth.User.password is a hidden field",
        ),
        (
            {"payload_template": "", "serializer_class": "shop.serializers.Nope"},
            "serializer_class",
            "cannot import",
        ),
        ({"target_url": "ftp://x.example/"}, "target_url", "absolute http"),
        ({"signals": []}, "signals", "needs at least one signal"),
        ({"ordering_key": "{{instance.nope}}"}, "ordering_key", "has no field"),
        ({"conditions": "[" * 100_000 + "]" * 100_000}, "conditions", "nested at most"),
        ({"conditions": '{"a": ' * 5000 + "1" + "}" * 5000}, "conditions", "nested at most"),
        ({"conditions": '{"total__gte": ' + "9" * 5000 + "}"}, "conditions", "digits"),
    ],
    ids=[
        "bad-headers",
        "bad-json",
        "bad-xml",
        "callable",
        "hidden-field",
        "bad-serializer",
        "bad-url",
        "no-signal",
        "bad-ordering-key",
        "conditions-too-deep-to-parse",
        "conditions-deep",
        "conditions-too-many-digits",
    ],
)
def test_bad_hooks_are_refused_with_a_form_error(admin_client, receiver, overrides, field, words):
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, **overrides)
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors[field])
    assert Hook.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "text", "words"),
    [
        pytest.param("conditions", '{"paid": true, "paid": false}', "'paid' twice", id="key-twice"),
        pytest.param("conditions", '{"any": [{"paid": true, "paid": false}]}', "twice", id="inner"),
        pytest.param("conditions", '{"total__gte": NaN}', "NaN is not JSON", id="nan"),
        pytest.param("conditions", '{"total__gte": 1e400}', "out of range", id="beyond-double"),
        pytest.param("headers", '{"X-Team": NaN}', "NaN is not JSON", id="headers-nan"),
        pytest.param("headers", '{"X-Team": -Infinity}', "Infinity is not JSON", id="headers-inf"),
        pytest.param("headers", '{"X-Team": 1e400}', "out of range", id="headers-beyond-double"),
    ],
)
def test_json_the_rest_api_refuses_is_a_form_error(admin_client, receiver, field, text, words):
    """Django's field kept the last of two equal keys; the headers' JSON took NaN and
    1e400 as the values "nan" and "inf". The REST API's parser refuses all of them."""
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, **{field: text})
    )
    assert response.status_code == 200
    assert words in " ".join(response.context["adminform"].form.errors[field])
    assert not Hook.objects.exists()


def test_the_model_list_leaves_out_http_hooks_own_models(admin_client, receiver):
    own = ContentType.objects.get_for_model(Callback)
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, model=own.pk)
    )
    assert "model" in response.context["adminform"].form.errors
    assert Hook.objects.count() == 0


def test_a_bad_signal_path_is_refused_in_the_signal_form(admin_client):
    response = admin_client.post(reverse("admin:http_hooks_signal_add"), {"signal": "dummy.signal"})
    assert response.status_code == 200
    assert "cannot import" in " ".join(response.context["adminform"].form.errors["signal"])
    response = admin_client.post(
        reverse("admin:http_hooks_signal_add"), {"signal": "shop.signals.order_shipped"}
    )
    assert response.status_code == 302
    assert Signal.objects.filter(signal="shop.signals.order_shipped").exists()


def test_editing_a_hook_in_the_admin_keeps_validation(admin_client, make_hook, receiver):
    hook = make_hook(content_type="application/json", payload_template='{"a": 1}')
    url = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    response = admin_client.post(url, hook_form(receiver, headers="broken"))
    assert response.status_code == 200
    hook.refresh_from_db()
    assert hook.payload_template == '{"a": 1}'


def test_resend_selected_action_queues_callbacks_again(admin_client, make_hook):
    make_hook()
    Order.objects.create(name="x")
    Callback.objects.update(status=CallbackStatus.ERROR, attempts=3)
    response = admin_client.post(
        reverse("admin:http_hooks_callback_changelist"),
        {
            "action": "resend_selected",
            "_selected_action": list(Callback.objects.values_list("pk", flat=True)),
        },
        follow=True,
    )
    assert "1 callbacks queued again." in response.content.decode()
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts) == ("waiting", 0)


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "RESEND_LIMIT": 1})
def test_resend_selected_above_the_limit_resends_nothing(admin_client, make_hook):
    make_hook()
    Order.objects.create(name="x")
    Order.objects.create(name="y")
    Callback.objects.update(status=CallbackStatus.ERROR)
    response = admin_client.post(
        reverse("admin:http_hooks_callback_changelist"),
        {
            "action": "resend_selected",
            "_selected_action": list(Callback.objects.values_list("pk", flat=True)),
        },
        follow=True,
    )
    assert "Nothing was resent: more than 1 callbacks match" in response.content.decode()
    assert set(Callback.objects.values_list("status", flat=True)) == {"error"}


@override_settings(HTTP_HOOKS={"BLOCK_PRIVATE_NETWORKS": False, "BATCH_SIZE": 2})
def test_send_selected_now_sends_one_batch_per_click(admin_client, make_hook, receiver):
    make_hook()
    for name in ("a", "b", "c"):
        Order.objects.create(name=name)

    def click() -> str:
        response = admin_client.post(
            reverse("admin:http_hooks_callback_changelist"),
            {
                "action": "send_selected_now",
                "_selected_action": list(Callback.objects.values_list("pk", flat=True)),
            },
            follow=True,
        )
        return response.content.decode()

    page = click()
    assert "Sent 2, retrying 0, failed 0." in page
    assert "At most 2 callbacks are sent at a time: run the action again." in page
    assert len(receiver.wait_for(2)) == 2
    page = click()
    assert "Sent 1, retrying 0, failed 0." in page
    assert "run the action again" not in page
    assert set(Callback.objects.values_list("status", flat=True)) == {"sent"}
    assert len(receiver.requests) == 3


def test_disable_and_enable_actions(admin_client, make_hook):
    hook = make_hook()
    changelist = reverse("admin:http_hooks_hook_changelist")
    admin_client.post(changelist, {"action": "disable_hooks", "_selected_action": [hook.pk]})
    Order.objects.create(name="off")
    admin_client.post(changelist, {"action": "enable_hooks", "_selected_action": [hook.pk]})
    Order.objects.create(name="on")
    assert Callback.objects.count() == 1


MESSAGE_STORAGES = [
    "django.contrib.messages.storage.fallback.FallbackStorage",
    "django.contrib.messages.storage.cookie.CookieStorage",
    "django.contrib.messages.storage.session.SessionStorage",
]


def continue_link(response) -> str:
    """Where the "Continue" link of the page showing secrets leads."""
    match = re.search(r'<a href="([^"]*)" class="button default" id="continue">', response.text)
    assert match, "no Continue link"
    return html.unescape(match[1])


def assert_shown_once(client, response, secrets, caplog):
    """``secrets`` are in the body of ``response``, which is not to be stored, and in no
    cookie it sets (the messages cookie decoded as the storage does: it is base64),
    the session, the log, nor the page its "Continue" link leads to."""
    stored = [caplog.text, str(dict(client.session.items()))]
    for name, morsel in response.cookies.items():
        stored.append(morsel.OutputString())
        if name == CookieStorage.cookie_name and morsel.value:
            messages = CookieStorage(response.wsgi_request)._decode(morsel.value) or []
            stored += [str(message) for message in messages]
    for secret in secrets:
        ways = [
            secret,
            secret.removeprefix("whsec_"),
            base64.b64encode(secret.encode()).decode(),
            base64.urlsafe_b64encode(secret.encode()).decode(),
        ]
        assert not [way for way in ways for text in stored if way in text]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert all(secret in response.text for secret in secrets)
    after = client.get(continue_link(response))
    assert after.status_code == 200
    assert not [secret for secret in secrets if secret in after.text]


@pytest.mark.parametrize("storage", MESSAGE_STORAGES)
def test_a_new_hooks_secret_is_in_the_answer_only(admin_client, receiver, caplog, storage):
    caplog.set_level(logging.DEBUG)
    with override_settings(MESSAGE_STORAGE=storage):
        response = admin_client.post(
            reverse("admin:http_hooks_hook_add"), hook_form(receiver, sign="on")
        )
        assert_shown_once(admin_client, response, [Hook.objects.get().secret], caplog)


def test_a_hook_added_in_a_popup_shows_its_secret_then_closes_the_popup(
    admin_client, receiver, caplog
):
    """Django's answer closed the popup at once: the secret was shown nowhere."""
    popup = {"_popup": "1", "_to_field": "id", "_source_model": "shop.order"}
    response = admin_client.post(
        f"{reverse('admin:http_hooks_hook_add')}?{urlencode(popup)}",
        {**hook_form(receiver, sign="on"), **popup},
    )
    hook = Hook.objects.get()
    assert_shown_once(admin_client, response, [hook.secret], caplog)
    assert 'id="header"' not in response.text  # the popup's page, no admin header
    closing = admin_client.get(continue_link(response))
    assert closing.templates[0].name == "admin/popup_response.html"
    data = json.loads(html.unescape(re.search(r'data-popup-response="([^"]*)"', closing.text)[1]))
    assert (data["value"], data["obj"]) == (str(hook.pk), str(hook))


def test_a_hook_added_unsigned_in_a_popup_closes_it_at_once(admin_client, receiver):
    popup = {"_popup": "1"}
    response = admin_client.post(
        f"{reverse('admin:http_hooks_hook_add')}?{urlencode(popup)}",
        {**hook_form(receiver), **popup},
    )
    assert response.templates[0].name == "admin/popup_response.html"
    assert Hook.objects.get().secret == ""


@pytest.mark.parametrize(
    ("hook_id", "to_field", "status"),
    [
        pytest.param(None, "secret", 400, id="the-secret"),
        pytest.param(None, "name", 400, id="a-field-nothing-points-to"),
        pytest.param("999", "id", 404, id="no-such-hook"),
        pytest.param("x" * 40, "id", 404, id="no-id"),
    ],
)
def test_the_popups_closing_page_answers_only_with_a_field_django_would(
    admin_client, make_hook, hook_id, to_field, status
):
    hook = make_hook(name="orders")
    url = reverse("admin:http_hooks_hook_popup_added", args=[hook_id or hook.pk])
    response = admin_client.get(f"{url}?{urlencode({'_popup': '1', '_to_field': to_field})}")
    assert response.status_code == status
    assert hook.secret not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({}, id="no-popup"),
        pytest.param({"_continue": "1"}, id="save-and-continue"),
        pytest.param({"_popup": "1", "_source_model": "order"}, id="a-source-model-without-a-dot"),
    ],
)
def test_the_popups_closing_page_refuses_a_query_no_popup_sends(admin_client, make_hook, query):
    """Django answered a plain add (a message that the hook was added, a redirect) to a
    link without ``_popup``, and a 500 to a ``_source_model`` without a dot."""
    hook = make_hook(name="orders")
    url = reverse("admin:http_hooks_hook_popup_added", args=[hook.pk])
    response = admin_client.get(f"{url}?{urlencode(query)}")
    assert response.status_code == 400
    assert not list(get_messages(response.wsgi_request))


def test_an_add_in_a_popup_with_a_source_model_without_a_dot_is_refused(admin_client, receiver):
    popup = {"_popup": "1", "_source_model": "order"}
    response = admin_client.post(
        f"{reverse('admin:http_hooks_hook_add')}?{urlencode(popup)}",
        {**hook_form(receiver), **popup},
    )
    assert response.status_code == 400
    assert not Hook.objects.exists()


@pytest.mark.parametrize(
    ("button", "query", "to"),
    [
        pytest.param({"_save": "Save"}, "", "admin:http_hooks_hook_changelist", id="save"),
        pytest.param(
            {"_save": "Save"}, "enabled__exact=1", "admin:http_hooks_hook_changelist", id="filtered"
        ),
        pytest.param({"_continue": "1"}, "", "admin:http_hooks_hook_change", id="continue"),
        pytest.param({"_addanother": "1"}, "", "admin:http_hooks_hook_add", id="add-another"),
    ],
)
def test_the_secret_pages_continue_link_leads_where_saving_went(
    admin_client, receiver, button, query, to
):
    add = reverse("admin:http_hooks_hook_add")
    if query:
        add += "?" + urlencode({"_changelist_filters": query})
    response = admin_client.post(add, {**hook_form(receiver, sign="on"), **button})
    hook = Hook.objects.get()
    expected = reverse(to, args=[hook.pk] if to.endswith("_change") else [])
    assert continue_link(response) == expected + (f"?{query}" if query else "")
    assert "was added successfully" in response.text


@pytest.mark.parametrize("storage", MESSAGE_STORAGES)
def test_rotated_secrets_are_in_the_answer_only(admin_client, make_hook, caplog, storage):
    caplog.set_level(logging.DEBUG)
    hooks = [make_hook(name="first"), make_hook(name="second")]
    changelist = reverse("admin:http_hooks_hook_changelist") + "?enabled__exact=1"
    with override_settings(MESSAGE_STORAGE=storage):
        response = admin_client.post(
            changelist,
            {"action": "rotate_secrets", "_selected_action": [hook.pk for hook in hooks]},
        )
        new = [Hook.objects.get(pk=hook.pk).secret for hook in hooks]
        assert [hook.secret for hook in hooks] != new and all(new)
        assert_shown_once(admin_client, response, new, caplog)
    assert continue_link(response) == changelist


@pytest.mark.parametrize(
    ("hours", "shown"),
    [
        ("12", 12),
        ("99999999", MAX_WINDOW_HOURS),
        ("9" * 5000, 24),
        ("\u0661\u0662", 24),
        (" 12", 24),
        ("1_2", 24),
        ("x", 24),
    ],
    ids=repr,
)
def test_the_overview_window_is_ascii_hours_or_the_default(admin_client, make_hook, hours, shown):
    """int() took Arabic-Indic digits, " 12" and "1_2" as 12."""
    make_hook()
    response = admin_client.get(reverse("admin:http_hooks_callback_overview"), {"hours": hours})
    assert response.status_code == 200
    assert response.context["hours"] == shown


def test_users_without_permission_cannot_see_the_overview(client, make_hook):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    response = client.get(reverse("admin:http_hooks_callback_overview"))
    assert response.status_code == 403


def test_callbacks_cannot_be_added_or_edited_in_the_admin(admin_client, make_hook):
    make_hook()
    Customer.objects.create(name="c")
    assert admin_client.get(reverse("admin:http_hooks_callback_add")).status_code == 403


def test_send_test_event_action_reports_the_outcome(admin_client, make_hook, receiver):
    hook = make_hook(name="orders")
    response = admin_client.post(
        reverse("admin:http_hooks_hook_changelist"),
        {"action": "send_test_events", "_selected_action": [hook.pk]},
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == ["orders: 200"]
    (request,) = receiver.wait_for(1)
    assert request.headers["webhook-id"]


def test_a_signal_in_use_cannot_be_deleted_in_the_admin(admin_client, make_hook):
    make_hook()
    used = Signal.objects.get(signal=POST_SAVE)
    unused = Signal.objects.get(signal="django.db.models.signals.pre_init")
    assert (
        admin_client.get(reverse("admin:http_hooks_signal_delete", args=[used.pk])).status_code
        == 403
    )
    response = admin_client.post(
        reverse("admin:http_hooks_signal_delete", args=[unused.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Signal.objects.filter(pk=unused.pk).exists()


def test_actions_that_change_things_need_the_change_permission(client, make_hook):
    hook = make_hook()
    secret = hook.secret
    Order.objects.create(name="x")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_hook", "view_callback"])
    )
    client.force_login(viewer)
    for url, action, pk in [
        ("admin:http_hooks_hook_changelist", "disable_hooks", hook.pk),
        ("admin:http_hooks_hook_changelist", "rotate_secrets", hook.pk),
        ("admin:http_hooks_callback_changelist", "resend_selected", Callback.objects.get().pk),
    ]:
        page = client.get(reverse(url))
        assert action not in page.content.decode()
        client.post(reverse(url), {"action": action, "_selected_action": [pk]})
    hook.refresh_from_db()
    assert (hook.enabled, hook.secret) == (True, secret)
    assert Callback.objects.get().status == "waiting"
    assert Callback.objects.get().status_details == ""


def filter_choices(response, title):
    """The labels of a change list filter, "All" left out."""
    spec = next(s for s in response.context["cl"].filter_specs if str(s.title) == title)
    return [str(c["display"]) for c in spec.choices(response.context["cl"])][1:]


def test_callback_filters_offer_what_hooks_and_signals_can_produce(admin_client, make_hook):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_hook(signals=[POST_SAVE, "django.db.models.signals.post_delete"])
    Order.objects.create(name="x").delete()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:http_hooks_callback_changelist"))
    assert response.status_code == 200
    # Only the models that have hooks, not every model of the project.
    assert filter_choices(response, "model") == ["shop.order"]
    assert filter_choices(response, "event type") == ["created", "updated", "test"] + [
        s.rsplit(".", 1)[-1]
        for s in Signal.objects.exclude(signal__endswith="_save").values_list("signal", flat=True)
    ]
    # No filter reads the callbacks table for its choices (a DISTINCT over the busiest
    # table, as Django's date hierarchy and plain-field filters do): the only queries
    # on it are the page's rows and its count.
    callback_table = Callback._meta.db_table
    on_callbacks = [q["sql"] for q in queries if callback_table in q["sql"].split(" WHERE ")[0]]
    assert not [sql for sql in on_callbacks if "DISTINCT" in sql], on_callbacks

    shown = admin_client.get(
        reverse("admin:http_hooks_callback_changelist"),
        {"hook__model": ContentType.objects.get_for_model(Order).pk},
    )
    assert shown.context["cl"].result_count == 2
    shown = admin_client.get(
        reverse("admin:http_hooks_callback_changelist"),
        {"hook__model": ContentType.objects.get_for_model(Customer).pk},
    )
    assert shown.context["cl"].result_count == 0
    shown = admin_client.get(
        reverse("admin:http_hooks_callback_changelist"),
        {"event_type": "django.db.models.signals.post_delete"},
    )
    assert shown.context["cl"].result_count == 1


def test_hook_and_callback_lists_show_times_to_the_second(admin_client, make_hook):
    import datetime

    hook = make_hook()
    Order.objects.create(name="x")
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    Hook.objects.filter(pk=hook.pk).update(update_datetime=moment)
    Callback.objects.update(create_datetime=moment, next_attempt_at=moment)
    shown = "2026-01-02<br>03:04:05"
    hooks = admin_client.get(reverse("admin:http_hooks_hook_changelist")).content.decode()
    assert hooks.count(shown) == 1
    callbacks = admin_client.get(reverse("admin:http_hooks_callback_changelist")).content.decode()
    assert callbacks.count(shown) == 2  # created and next try


def test_hook_list_cuts_long_urls_short(admin_client, make_hook, receiver):
    long_url = receiver.url() + "x" * 200
    make_hook(name="long", target_url=long_url)
    page = admin_client.get(reverse("admin:http_hooks_hook_changelist")).content.decode()
    assert page.count(long_url) == 1
    assert f'title="{long_url}"' in page  # the whole URL in the tooltip only


def test_a_hook_disabled_while_its_form_is_open_stays_disabled(admin_client, receiver, make_hook):
    """The page was shown with the hook enabled; the sender then disabled it (a 410).
    Saving the form with another name changes the name and keeps the disable."""
    hook = make_hook(name="orders")
    url = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="initial-enabled" value="True"' in page
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="gone", disabled_at=timezone.now()
    )
    data = hook_form(receiver, name="renamed", **{"initial-enabled": "True"})
    data["target_url"] = hook.target_url
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    hook.refresh_from_db()
    assert (hook.name, hook.enabled, hook.disabled_reason) == ("renamed", False, "gone")


def test_ticking_enabled_in_the_form_enables_a_disabled_hook(admin_client, receiver, make_hook):
    hook = make_hook(name="orders")
    Hook.objects.filter(pk=hook.pk).update(
        enabled=False, disabled_reason="gone", disabled_at=timezone.now()
    )
    url = reverse("admin:http_hooks_hook_change", args=[hook.pk])
    assert 'name="initial-enabled" value="False"' in admin_client.get(url).content.decode()
    data = hook_form(receiver, **{"initial-enabled": "False"})
    data["target_url"] = hook.target_url
    assert admin_client.post(url, data).status_code == 302
    hook.refresh_from_db()
    assert (hook.enabled, hook.disabled_reason, hook.disabled_at) == (True, "", None)


@pytest.mark.parametrize(
    "query",
    [
        "status=%00",
        "event_type=a%00b",
        "q=%00",
        "hook__id__exact=%00",
        "%00=1",
    ],
)
@pytest.mark.parametrize("model", ["callback", "hook", "signal"])
def test_a_nul_character_in_a_list_filter_is_a_bad_lookup_not_a_500(admin_client, model, query):
    """PostgreSQL cannot compare text with a NUL: Django's own "?e=1" page answers."""
    query = {"hook": query.replace("status=", "disabled_reason__exact=")}.get(model, query)
    url = reverse(f"admin:http_hooks_{model}_changelist")
    response = admin_client.get(f"{url}?{query}")
    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"
    page = admin_client.get(f"{url}?{query}&e=1")
    assert page.status_code == 200
    assert b"Database error" in page.content


@pytest.mark.parametrize(
    "action", ["enable_hooks", "disable_hooks", "send_test_events", "rotate_secrets"]
)
def test_a_bulk_action_says_which_hook_was_deleted_meanwhile(
    admin_client, make_hook, receiver, monkeypatch, action
):
    """The hooks an action goes through were read when it began; one deleted meanwhile
    (another request, while the test events before it were sent) is named, and the
    others are done: not a server error page that leaves the rest undone."""
    from http_hooks import services

    first, second = make_hook(name="first"), make_hook(name="second")
    work = {
        "enable_hooks": "set_hook_enabled",
        "disable_hooks": "set_hook_enabled",
        "send_test_events": "send_test_event",
        "rotate_secrets": "rotate_secret",
    }[action]
    original = getattr(services, work)

    calls = []

    def deleting_the_other(hook, *args):
        if not calls:  # the first hook's work: meanwhile, the other one is deleted
            Hook.objects.exclude(pk=hook.pk).delete()
        calls.append(hook.pk)
        return original(hook, *args)

    monkeypatch.setattr(services, work, deleting_the_other)
    response = admin_client.post(
        reverse("admin:http_hooks_hook_changelist"),
        {"action": action, "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "changed hands or was deleted meanwhile" in response.content.decode()
    assert Hook.objects.count() == 1


NOT_IDS = [
    pytest.param("abc", id="text"),
    pytest.param("", id="empty"),
    pytest.param("9" * 30, id="past-64-bits"),
    pytest.param("1\x00", id="nul"),
    pytest.param("-1", id="negative"),
]


@pytest.mark.parametrize("selected", NOT_IDS)
@pytest.mark.parametrize(
    ("model", "action"),
    [
        ("hook", "disable_hooks"),
        ("hook", "delete_selected"),
        ("callback", "resend_selected"),
        ("callback", "delete_selected"),
    ],
)
def test_a_bulk_action_on_a_selection_of_no_ids_is_refused_not_a_500(
    admin_client, make_hook, model, action, selected
):
    hook = make_hook()
    Order.objects.create(name="x")
    url = reverse(f"admin:http_hooks_{model}_changelist")
    response = admin_client.post(
        url, {"action": action, "_selected_action": [hook.pk, selected], "index": "0"}
    )
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "No action was taken" in page
    hook.refresh_from_db()
    assert hook.enabled
    assert Callback.objects.get().status == CallbackStatus.WAITING


@pytest.mark.parametrize("signal", ["abc", "9" * 30, "-1"])
def test_a_signal_choice_that_is_no_id_is_a_form_error(admin_client, receiver, signal):
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, signals=[signal])
    )
    assert response.status_code == 200
    assert "is not a valid value" in " ".join(response.context["adminform"].form.errors["signals"])
    assert Hook.objects.count() == 0


@pytest.mark.parametrize("value", ["abc", "9" * 30, "1.5"])
def test_a_model_filter_value_that_is_no_id_is_a_bad_lookup_not_a_500(
    admin_client, make_hook, value
):
    make_hook()  # the filter shows when a model has hooks
    url = reverse("admin:http_hooks_callback_changelist")
    response = admin_client.get(url, {"hook__model": value})
    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


def test_the_callback_list_counts_its_filter_choices(admin_client, make_hook):
    """Django's "Show counts" passes each choice of the model filter as it listed it."""
    make_hook()
    Order.objects.create(name="x")
    response = admin_client.get(reverse("admin:http_hooks_callback_changelist"), {"_facets": "1"})
    assert response.status_code == 200
    assert "shop.order (1)" in response.content.decode()
