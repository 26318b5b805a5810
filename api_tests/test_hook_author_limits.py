"""A hook's author cannot reach past the hook, through any entry point.

Each class of hostile input is written through the Python API (create and
update), the REST API (create and update) and the admin (add and change), and
must be refused there with the field's message, changing nothing. What the
database already holds is never sent as written either.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone

from http_hooks.api import create_hook, create_signal, send_callbacks, update_hook
from http_hooks.exceptions import HttpHooksError, InvalidSignalError
from http_hooks.headers import format_headers
from http_hooks.models import Attempt, Callback, CallbackStatus, Hook, Signal
from http_hooks.transport import Request, Transport
from shop.models import Order

pytestmark = pytest.mark.django_db

POST_SAVE = "django.db.models.signals.post_save"
POST_DELETE = "django.db.models.signals.post_delete"
M2M_CHANGED = "django.db.models.signals.m2m_changed"
HOOK_ENTRY_POINTS = [
    "python-create",
    "python-update",
    "rest-create",
    "rest-update",
    "admin-add",
    "admin-change",
]


def good_hook() -> dict:
    return {
        "name": "orders",
        "model": "shop.order",
        "signals": [POST_SAVE],
        "target_url": "http://127.0.0.1:9/hook",
        "http_method": "POST",
        "content_type": "application/json",
        "headers": {"X-Good": "1"},
        "payload_template": '{"id": {{instance.id}}}',
    }


def snapshot() -> list:
    """Every hook as stored, with its signals."""
    return [
        (
            hook.pk,
            hook.name,
            hook.target_url,
            hook.headers,
            hook.payload_template,
            hook.serializer_class,
            sorted(signal.signal for signal in hook.signals.all()),
        )
        for hook in Hook.objects.order_by("pk")
    ]


def admin_form(data: dict) -> dict:
    form = dict(data)
    form["model"] = ContentType.objects.get_by_natural_key(*form["model"].split(".")).pk
    form["signals"] = [Signal.objects.get_or_create(signal=path)[0].pk for path in form["signals"]]
    if isinstance(form["headers"], dict):
        form["headers"] = format_headers(form["headers"])
    form["enabled"] = "on"
    form.setdefault("serializer_class", "")
    return form


@pytest.fixture(params=HOOK_ENTRY_POINTS)
def refuse(request):
    """``refuse(field, **changes)``: write a hook with ``changes`` through one entry
    point, check it was refused on ``field`` and nothing changed; return the message."""
    entry = request.param
    base = good_hook()
    if entry.startswith("rest"):
        staff_client = request.getfixturevalue("staff_client")
    elif entry.startswith("admin"):
        admin_client = request.getfixturevalue("admin_client")
    hook = create_hook(**base) if entry.endswith(("update", "change")) else None

    def write(field: str, **changes) -> str:
        before = snapshot()
        data = {**base, **changes}
        if entry.startswith("python"):
            with pytest.raises(HttpHooksError) as info:
                if hook is None:
                    create_hook(**data)
                else:
                    update_hook(hook, **changes)
            assert info.value.field == field, info.value.message
            message = info.value.message
        elif entry.startswith("rest"):
            if hook is None:
                response = staff_client.post("/api/hooks/", data, format="json")
            else:
                response = staff_client.patch(f"/api/hooks/{hook.pk}/", changes, format="json")
            assert response.status_code == 400, response.content
            errors = response.json()["errors"]
            assert {error["field"].split(".")[0] for error in errors} == {field}, errors
            message = " ".join(error["message"] for error in errors)
        else:
            url = (
                reverse("admin:http_hooks_hook_add")
                if hook is None
                else reverse("admin:http_hooks_hook_change", args=[hook.pk])
            )
            response = admin_client.post(url, admin_form(data))
            assert response.status_code == 200
            errors = response.context["adminform"].form.errors
            assert set(errors) == {field}, errors
            message = " ".join(errors[field])
        assert snapshot() == before
        return message

    return write


# --- 1. request smuggling through hook headers ------------------------------------

RESERVED_HEADERS = [
    pytest.param("Content-Length", "0", id="content-length"),
    pytest.param("transfer-encoding", "chunked", id="transfer-encoding-lower"),
    pytest.param("HOST", "evil.example", id="host-upper"),
    pytest.param("Connection", "close", id="connection"),
    pytest.param("Keep-Alive", "timeout=99", id="keep-alive"),
    pytest.param("Upgrade", "h2c", id="upgrade"),
    pytest.param("TE", "trailers", id="te"),
    pytest.param("Trailer", "X-A", id="trailer"),
    pytest.param("expect", "100-continue", id="expect-lower"),
    pytest.param("Proxy-Authorization", "Basic eDp5", id="proxy-authorization"),
    pytest.param("proxy-connection", "keep-alive", id="proxy-anything"),
    pytest.param("Content-Type", "text/evil", id="content-type-is-ours"),
    pytest.param("Webhook-Signature", "v1,forged", id="webhook-signature-is-ours"),
    pytest.param("webhook-id", "forged", id="webhook-id-is-ours"),
    pytest.param("WEBHOOK-TIMESTAMP", "1", id="webhook-timestamp-is-ours"),
    # CGI and WSGI servers read "_" as "-": these would merge into our headers there.
    pytest.param("Webhook_Id", "spoofed", id="webhook-id-with-an-underscore"),
    pytest.param("webhook_signature", "v1,AAAA", id="webhook-signature-with-an-underscore"),
    pytest.param("Content_Type", "text/evil", id="content-type-with-an-underscore"),
    pytest.param("Content_Length", "0", id="content-length-with-an-underscore"),
    pytest.param("proxy_authorization", "Basic eDp5", id="proxy-with-an-underscore"),
    pytest.param("Webhook.Id", "spoofed", id="webhook-id-with-a-dot"),
    pytest.param("webhook~signature", "v1,AAAA", id="webhook-signature-with-a-tilde"),
]


@pytest.mark.parametrize(("name", "value"), RESERVED_HEADERS)
def test_headers_a_hook_may_not_set_are_refused(refuse, name, value):
    message = refuse("headers", headers={"X-Good": "1", name: value})
    assert f"{name!r} cannot be set" in message


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        # A name's last line break once passed the check (``$``) and reached the wire:
        # "Transfer-Encoding\n: chunked", a line a lenient receiver reads apart.
        pytest.param({"Transfer-Encoding\n": "chunked"}, "not a valid header name", id="name-lf"),
        pytest.param({"X-A\n": "v"}, "not a valid header name", id="name-trailing-lf"),
        pytest.param({"X-A": "v\x0bw"}, "control character", id="value-vertical-tab"),
        pytest.param({"X-A": "v\x01"}, "control character", id="value-soh"),
        pytest.param({"X-A": "v\x7f"}, "control character", id="value-del"),
    ],
)
def test_header_names_and_values_http_cannot_carry_are_refused(refuse, headers, words):
    message = refuse("headers", headers=headers)
    # The admin's text form ("Key: value" lines) breaks the line there instead.
    assert words in message or "is not of the form 'Key: value'" in message


def test_a_tab_in_a_header_value_is_taken(make_hook, receiver):
    make_hook(headers={"X-Tab": "a\tb"})
    Order.objects.create(name="tab")
    send_callbacks()
    assert receiver.requests[0].headers["x-tab"] == "a\tb"


SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: other.example\r\nContent-Length: 0\r\n\r\n"
STORED_HOSTILE_HEADERS = {
    "X-Kept": "yes",
    "Content-Length": "0",
    "Host": "other.example",
    "Transfer-Encoding": "identity",
    "Connection": "close",
    "Expect": "100-continue",
    "Proxy-Authorization": "Basic eDp5",
    "Content-Type": "application/evil",
    "webhook-id": "forged",
}


def test_stored_framing_headers_are_never_sent(make_hook, receiver):
    """A hook row written around validation (older versions, raw SQL) after its
    callbacks were recorded cannot smuggle a request: the body of each of two
    requests on one kept-alive connection would be a second request if the stored
    Content-Length: 0 were sent."""
    hook = make_hook(content_type="text/plain", payload_template=SMUGGLED + "{{instance.id}}")
    Order.objects.create(name="a")
    Order.objects.create(name="b")
    Hook.objects.filter(pk=hook.pk).update(headers=STORED_HOSTILE_HEADERS)

    report = send_callbacks()

    assert report.sent == 2
    requests = receiver.wait_for(2)
    assert len(requests) == 2
    assert [r.path for r in requests] == ["/hook", "/hook"]
    callbacks = {str(callback.event_id): callback for callback in Callback.objects.all()}
    for request in requests:
        callback = callbacks.pop(request.headers["webhook-id"])
        assert request.text == callback.payload
        assert request.headers["content-length"] == str(len(callback.payload.encode()))
        assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
        assert request.headers["content-type"] == "text/plain"
        assert request.headers["x-kept"] == "yes"
        for name in ("transfer-encoding", "connection", "expect", "proxy-authorization"):
            assert name not in request.headers


@pytest.mark.parametrize(
    "field",
    [
        # Six characters: what PostgreSQL's column holds (SQLite would take more).
        pytest.param({"http_method": "G\r\nX:a"}, id="method"),
        pytest.param({"content_type": "x\r\nTransfer-Encoding: chunked"}, id="content-type"),
        pytest.param({"content_type": "text/plain\u20ac"}, id="content-type-not-latin-1"),
        pytest.param({"http_method": "TRACE"}, id="method-not-ours"),
    ],
)
def test_a_stored_method_or_content_type_not_ours_fails_the_try(make_hook, receiver, field):
    """A callback row written around validation cannot frame its request through the
    method or the content type either: the try fails before anything is sent."""
    make_hook()
    Order.objects.create(name="a")
    Callback.objects.update(**field)
    report = send_callbacks()
    assert report.sent == 0
    assert receiver.requests == []
    attempt = Attempt.objects.get()
    assert "is not allowed" in attempt.error


def test_a_stored_hook_with_framing_headers_records_error_callbacks(make_hook, receiver):
    hook = make_hook()
    Hook.objects.filter(pk=hook.pk).update(
        headers={"Content-Length": "0"}, update_datetime=timezone.now()
    )
    Order.objects.create(name="a")
    callback = Callback.objects.get()
    assert callback.status == CallbackStatus.ERROR
    assert "'Content-Length' cannot be set" in callback.status_details
    send_callbacks()
    assert receiver.requests == []


# --- 2. arbitrary module import ---------------------------------------------------


@pytest.fixture
def side_effect_module(tmp_path, monkeypatch):
    """A module (and a package) on sys.path whose import writes a marker file."""
    name = f"hh_side_effect_{uuid.uuid4().hex}"
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'w').write('imported')\n"
    (tmp_path / f"{name}.py").write_text(
        code + "from django.dispatch import Signal\ns = Signal()\n"
    )
    package = tmp_path / f"{name}_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(code)
    (package / "signals.py").write_text("from django.dispatch import Signal\ns = Signal()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    assert not marker.exists(), "a hook's author made the server import a module"
    assert name not in sys.modules and f"{name}_pkg" not in sys.modules


SIGNAL_ENTRY_POINTS = [
    "create_signal",
    "create_hook",
    "update_hook",
    "rest-signals",
    "rest-hooks-create",
    "rest-hooks-update",
    "admin-signal",
]


@pytest.fixture(params=SIGNAL_ENTRY_POINTS)
def refuse_signal(request):
    """``refuse_signal(path)``: give ``path`` as a signal through one entry point;
    check it was refused and nothing was written; return the message."""
    entry = request.param
    base = good_hook()
    if entry.startswith("rest"):
        staff_client = request.getfixturevalue("staff_client")
    elif entry.startswith("admin"):
        admin_client = request.getfixturevalue("admin_client")
    hook = create_hook(**base) if entry.endswith("update") else None

    def write(path) -> str:
        before = (snapshot(), sorted(Signal.objects.values_list("signal", flat=True)))
        if entry == "create_signal":
            with pytest.raises(InvalidSignalError) as info:
                create_signal(signal=path)
            message = info.value.message
        elif entry in {"create_hook", "update_hook"}:
            with pytest.raises(InvalidSignalError) as info:
                if hook is None:
                    create_hook(**{**base, "signals": [POST_SAVE, path]})
                else:
                    update_hook(hook, signals=[POST_SAVE, path])
            message = info.value.message
        elif entry.startswith("rest"):
            if entry == "rest-signals":
                response = staff_client.post("/api/signals/", {"signal": path}, format="json")
                field = "signal"
            elif hook is None:
                data = {**base, "signals": [POST_SAVE, path]}
                response = staff_client.post("/api/hooks/", data, format="json")
                field = "signals"
            else:
                data = {"signals": [POST_SAVE, path]}
                response = staff_client.patch(f"/api/hooks/{hook.pk}/", data, format="json")
                field = "signals"
            assert response.status_code == 400, response.content
            errors = response.json()["errors"]
            assert {error["field"].split(".")[0] for error in errors} == {field}, errors
            message = " ".join(error["message"] for error in errors)
        else:
            response = admin_client.post(reverse("admin:http_hooks_signal_add"), {"signal": path})
            assert response.status_code == 200
            errors = response.context["adminform"].form.errors
            assert set(errors) == {"signal"}, errors
            message = " ".join(errors["signal"])
        assert (snapshot(), sorted(Signal.objects.values_list("signal", flat=True))) == before
        return message

    return write


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(".x", id="leading-dot"),
        pytest.param("..a", id="two-leading-dots"),
        pytest.param(".", id="a-dot"),
        pytest.param("shop..order_shipped", id="empty-segment"),
        pytest.param("shop.signals.", id="trailing-dot"),
        pytest.param("shop.1signals.x", id="not-an-identifier"),
        pytest.param("shop.sig-nals.x", id="dash"),
        pytest.param("shop/signals.x", id="slash"),
        pytest.param("post_save", id="not-dotted"),
        pytest.param("this.s", id="stdlib-module-with-side-effect"),
        pytest.param("antigravity.x", id="stdlib-module-that-opens-a-browser"),
        pytest.param("shop.signals.nope", id="no-such-name"),
        pytest.param("shop.nope.x", id="no-such-module-in-an-app"),
        pytest.param("django.db.models.Model", id="not-a-signal"),
        pytest.param("a." * 130 + "b", id="too-long"),
    ],
)
def test_bad_signal_paths_are_refused_everywhere_without_an_import(refuse_signal, path):
    message = refuse_signal(path)
    assert "invalid signal" in message or "255 characters" in message


def test_signal_paths_never_import_modules_outside_the_project(refuse_signal, side_effect_module):
    name, _ = side_effect_module
    for path in (f"{name}.s", f"{name}_pkg.signals.s"):
        assert "neither loaded nor part of an installed app" in refuse_signal(path)


@pytest.mark.parametrize("entry", ["python", "rest", "admin"])
def test_serializer_paths_never_import_modules_outside_the_project(
    entry, side_effect_module, staff_client, admin_client
):
    name, _ = side_effect_module
    data = {**good_hook(), "payload_template": "", "serializer_class": f"{name}.S"}
    if entry == "python":
        with pytest.raises(HttpHooksError, match="neither loaded nor part of an installed app"):
            create_hook(**data)
    elif entry == "rest":
        response = staff_client.post("/api/hooks/", data, format="json")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "serializer_class"
    else:
        response = admin_client.post(reverse("admin:http_hooks_hook_add"), admin_form(data))
        assert "serializer_class" in response.context["adminform"].form.errors
    assert Hook.objects.count() == 0


def test_signals_of_installed_apps_are_imported_on_first_use(monkeypatch):
    """A custom signal's module that nothing imported yet is found, being the project's."""
    monkeypatch.delitem(sys.modules, "shop.signals", raising=False)
    assert create_signal(signal="shop.signals.order_shipped").signal == (
        "shop.signals.order_shipped"
    )
    assert "shop.signals" in sys.modules


# --- 3. save-time checks agree with what is sent ----------------------------------

BAD_URLS = [
    pytest.param("http://example.com/a\r\nX-Injected: 1", "control", id="crlf"),
    pytest.param("http://example.com/a\nb", "control", id="lf"),
    pytest.param("http://example.com/a b", "SPACE", id="space"),
    pytest.param("http://example.com/a\tb", "control", id="tab"),
    pytest.param(
        "http://example.com/a\x00b", ("control", "Null characters", "NUL character"), id="nul"
    ),
    pytest.param("http://example.com/a\x7fb", "control", id="del"),
    pytest.param("http://example.com/a\u0085b", "control", id="next-line"),
    pytest.param("http://example.com/a\u2028b", "LINE SEPARATOR", id="line-separator"),
    pytest.param("http://example.com/a\u00a0b", "NO-BREAK SPACE", id="no-break-space"),
    pytest.param("http://exa\u200bmple.com/", "ZERO WIDTH SPACE", id="zero-width-space"),
    pytest.param("http://%6c%6fcalhost/", "percent-encoded", id="percent-encoded-host"),
    pytest.param("http://256.0.0.1/", "not an IPv4 address", id="ipv4-part-too-big"),
    pytest.param("http://1.2.3.4.5/", "not an IPv4 address", id="ipv4-five-parts"),
    pytest.param("http://08.0.0.1/", "not an IPv4 address", id="ipv4-bad-octal"),
    pytest.param("http://example.0x1/", "not an IPv4 address", id="name-with-numeric-tld"),
    pytest.param("http://./", "invalid host name", id="only-a-dot"),
    pytest.param("http://a..example.com/", "invalid host name", id="empty-label"),
    pytest.param(f"http://{'a' * 64}.example.com/", "invalid host name", id="label-too-long"),
    pytest.param(f"http://{'a.' * 127}com/", "invalid host name", id="name-too-long"),
    pytest.param("http://@example.com/", "credentials", id="empty-credentials"),
    pytest.param("http://:@example.com/", "credentials", id="empty-user-and-password"),
    pytest.param("http://example.com:0/", "port 0", id="port-0"),
    # libcurl's "Bad hostname", "Bad IPv6 address" or "Port number was not a decimal
    # number": Python's urlsplit takes them, and the hook failed every try.
    pytest.param("http://a!b.example.com/", "contains '!'", id="bang-in-host"),
    pytest.param("http://127.0.0.1\\.example.com/", "contains '\\\\'", id="backslash-in-host"),
    pytest.param("http://a,b.example.com/", "contains ','", id="comma-in-host"),
    pytest.param("http://[v1.x]/", "IPv6", id="ipv-future"),
    pytest.param("http://[2001:db8::1]x/", "nothing but a port", id="after-ipv6-literal"),
    pytest.param("http://[2001:db8::1]]/", "nothing but a port", id="ipv6-two-brackets"),
    pytest.param("http://x[2001:db8::1]/", "IPv6", id="before-ipv6-literal"),
    pytest.param("http://[fe80::1%25]/", "zone", id="ipv6-empty-zone"),
    pytest.param(f"http://[fe80::1%25{'e' * 16}]/", "zone", id="ipv6-zone-too-long"),
    pytest.param("http://[fe80::1%25a!b]/", "zone", id="ipv6-zone-bad-character"),
    pytest.param("http://[fe80::1%25\u00e9]/", "zone", id="ipv6-zone-not-ascii"),
]


@pytest.mark.parametrize(("url", "words"), BAD_URLS)
def test_target_urls_libcurl_would_not_send_are_refused(refuse, url, words):
    message = refuse("target_url", target_url=url)
    assert any(word in message for word in ([words] if isinstance(words, str) else words))


# Hosts of the last BAD_URLS, and their neighbours libcurl takes (port 9 on ::1: a
# refused connection at once).
CURL_REFUSES = [param.values[0] for param in BAD_URLS[-11:]]
CURL_TAKES = [
    "http://[::1%25lo]:9/",
    "http://[::1%lo]:9/",
    f"http://[::1%25{'e' * 15}]:9/",
    "http://[::1%25a.b_c~d-e]:9/",
    "http://[::1]:/",
    "http://a_b~c.invalid/",
]


@pytest.mark.parametrize("url", CURL_REFUSES + CURL_TAKES)
def test_what_is_refused_at_save_is_what_libcurl_will_not_send(settings, url):
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BLOCK_PRIVATE_NETWORKS": False}
    with Transport(1) as transport:
        (outcome,) = transport.send_all(1, lambda index: Request("POST", url, {}, b"{}"))
    refused = url in CURL_REFUSES
    assert outcome.invalid is refused, outcome.error
    if not refused:
        assert create_hook(**{**good_hook(), "target_url": url}).target_url == url


LOOPBACK_SPELLINGS = [
    pytest.param("http://LocalHost./x", id="localhost-mixed-case-trailing-dot"),
    pytest.param("http://localhost/x", id="localhost"),
    pytest.param("http://foo.localhost/x", id="under-localhost"),
    pytest.param("http://a.b.LOCALHOST.:8080/x", id="under-localhost-upper-trailing-dot"),
    pytest.param("http://2130706433/x", id="decimal-ipv4"),
    pytest.param("http://0x7f.1/x", id="hex-ipv4-two-parts"),
    pytest.param("http://0177.0.0.1/x", id="octal-ipv4"),
    pytest.param("http://127.1/x", id="short-ipv4"),
    pytest.param("http://0x7f000001/x", id="hex-ipv4"),
    pytest.param("http://127.0.0.1./x", id="ipv4-trailing-dot"),
    pytest.param("http://0/x", id="zero"),
    pytest.param("http://[::ffff:7f00:1]/x", id="ipv4-mapped-ipv6"),
    pytest.param("http://localhost\u3002/x", id="localhost-ideographic-full-stop"),
    pytest.param(
        "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/x", id="fullwidth-localhost"
    ),
    pytest.param("http://\uff11\uff12\uff17.0.0.1/x", id="fullwidth-digits"),
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_every_spelling_of_a_blocked_host_is_refused_at_save(refuse, settings, url):
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BLOCK_PRIVATE_NETWORKS": True}
    assert "targets on non-public networks are blocked" in refuse("target_url", target_url=url)


@pytest.mark.parametrize(
    ("signals", "template", "words"),
    [
        pytest.param([POST_SAVE], '{"e": "{{ evnt_type }}"}', "'evnt_type'", id="typo"),
        pytest.param(
            [POST_SAVE], '{"k": "{{ settings.SECRET_KEY }}"}', "'settings'", id="settings"
        ),
        pytest.param([POST_SAVE], '{"r": "{{request.user}}"}', "'request'", id="request"),
        pytest.param(
            [POST_SAVE], '{"n": "{{ instance.name.upper }}"}', "plain value", id="past-a-field"
        ),
        pytest.param(
            [POST_SAVE], '{"n": "{{instance.total.real}}"}', "plain value", id="past-a-decimal"
        ),
        pytest.param(
            [POST_SAVE],
            '{"n": "{{instance.customer_id.name}}"}',
            "plain value",
            id="past-a-foreign-key-id",
        ),
        pytest.param(
            [POST_SAVE],
            '{"n": "{{instance.customer.avatar.storage}}"}',
            "plain value",
            id="past-a-file-name",
        ),
        pytest.param(
            [POST_SAVE],
            '{"n": "{{instance.customer.avatar.path}}"}',
            "plain value",
            id="a-file-path-on-the-server",
        ),
        pytest.param(
            [POST_SAVE], '{"n": "{{instance.customer.avatar.size}}"}', "plain value", id="file-size"
        ),
        pytest.param([POST_SAVE], '{"n": "{{instance.pk.anything}}"}', "plain value", id="past-pk"),
        pytest.param(
            [POST_SAVE], '{"e": "{{event_type.upper}}"}', "plain value", id="past-event-type"
        ),
        pytest.param([POST_SAVE], '{"s": "{{sender.objects}}"}', "plain value", id="past-sender"),
        pytest.param(
            [POST_SAVE, POST_DELETE],
            '{"c": {{created}}}',
            "no event of this hook has 'created'",
            id="argument-of-one-signal-only",
        ),
        pytest.param([M2M_CHANGED], '{"m": "{{model}}"}', "'model'", id="a-class-argument"),
        pytest.param([POST_DELETE], '{"o": "{{origin}}"}', "'origin'", id="a-queryset-argument"),
        pytest.param(
            ["shop.signals.order_shipped"],
            '{"x": "{{undeclared}}"}',
            "'undeclared'",
            id="custom-signal-undeclared-argument",
        ),
    ],
)
def test_template_names_no_event_can_render_are_refused(refuse, signals, template, words):
    assert words in refuse("payload_template", signals=signals, payload_template=template)


# --- 4. the same size limits everywhere -------------------------------------------


@pytest.mark.parametrize(
    ("field", "changes", "words"),
    [
        pytest.param("name", {"name": "n" * 201}, "200", id="name"),
        pytest.param(
            "payload_template",
            {"content_type": "text/plain", "payload_template": "x" * 100_001},
            "100000",
            id="template",
        ),
        pytest.param(
            "payload_template",
            {"payload_template": "[" * 1000 + "1" + "]" * 1000},
            "nested deeper than 64",
            id="template-nested-past-python",
        ),
        pytest.param(
            "payload_template",
            {"payload_template": "[" * 65 + "{{instance.id}}" + "]" * 65},
            "nested deeper than 64",
            id="template-nested",
        ),
        pytest.param(
            "headers", {"headers": {f"X-{i}": "v" for i in range(101)}}, "at most 100", id="many"
        ),
        pytest.param("headers", {"headers": {"X-Big": "v" * 16_400}}, "16384", id="big-header"),
        pytest.param("headers", {"headers": "X-A: " + "v" * 16_400}, "16384", id="big-header-text"),
        pytest.param("target_url", {"target_url": "http://e.com/" + "a" * 2000}, "2000", id="url"),
        pytest.param(
            "serializer_class",
            {"payload_template": "", "serializer_class": "a." * 130 + "b"},
            "255",
            id="serializer-path",
        ),
    ],
)
def test_size_limits_are_the_same_through_every_entry_point(refuse, field, changes, words):
    assert words in refuse(field, **changes)


def test_a_template_nested_64_levels_renders_at_each_event(make_hook, receiver):
    hook = make_hook(
        content_type="application/json", payload_template="[" * 64 + "{{instance.id}}" + "]" * 64
    )
    order = Order.objects.create(name="deep")
    callback = Callback.objects.get(hook=hook)
    assert callback.status == CallbackStatus.WAITING
    assert callback.payload == "[" * 64 + str(order.pk) + "]" * 64


def test_a_template_that_renders_past_its_limit_makes_an_error_callback(make_hook, settings):
    """Each placeholder repeats the event's data: 1,000 of them over 2,000 characters of
    notes would be 2 million characters a row. Past ``TEMPLATE_PAYLOAD_LIMIT`` the
    callback is stored in error with the reason, without the payload; under it, whole."""
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "TEMPLATE_PAYLOAD_LIMIT": 100_000}
    hook = make_hook(
        content_type="application/json",
        payload_template="[" + ",".join(["{{instance.notes}}"] * 1000) + "]",
    )
    Order.objects.create(notes="n" * 2000)
    callback = Callback.objects.get(hook=hook)
    assert callback.status == CallbackStatus.ERROR
    assert callback.payload == ""
    assert "TEMPLATE_PAYLOAD_LIMIT (100000 characters)" in callback.status_details
    Order.objects.create(notes="n" * 90)
    fits = Callback.objects.filter(hook=hook).latest("id")
    assert fits.status == CallbackStatus.WAITING
    assert len(fits.payload) == 2 + 1000 * 92 + 999


def test_a_hook_has_at_most_50_signals_in_python_as_in_rest(staff_client):
    data = {**good_hook(), "signals": [POST_SAVE] * 51}
    with pytest.raises(InvalidSignalError, match="at most 50 signals"):
        create_hook(**data)
    response = staff_client.post("/api/hooks/", data, format="json")
    assert response.status_code == 400
    assert "50" in response.json()["errors"][0]["message"]
    assert Hook.objects.count() == 0


# --- 5. labels that would act on a log line, a terminal or a page -----------------

HIDDEN_CHARACTERS = [
    pytest.param("\n", "000A", id="line-feed"),
    pytest.param("\r\n", "000D", id="cr-lf"),
    pytest.param("\t", "0009", id="tab"),
    pytest.param("\x1b[31m", "001B", id="terminal-escape"),
    pytest.param("\x01", "0001", id="c0-control"),
    pytest.param("\x7f", "007F", id="del"),
    pytest.param("\x9b31m", "009B", id="c1-csi"),
    pytest.param("\x85", "0085", id="c1-next-line"),
    pytest.param("\u2028", "2028 LINE SEPARATOR", id="line-separator"),
    pytest.param("\u2029", "2029 PARAGRAPH SEPARATOR", id="paragraph-separator"),
    pytest.param("\u202e", "202E RIGHT-TO-LEFT OVERRIDE", id="bidi-override"),
    pytest.param("\u2066", "2066 LEFT-TO-RIGHT ISOLATE", id="bidi-isolate"),
    pytest.param("\u2069", "2069 POP DIRECTIONAL ISOLATE", id="bidi-pop-isolate"),
    pytest.param("\u200f", "200F RIGHT-TO-LEFT MARK", id="rtl-mark"),
    pytest.param("\u200b", "200B ZERO WIDTH SPACE", id="zero-width-space"),
    pytest.param("\u2060", "2060 WORD JOINER", id="word-joiner"),
    pytest.param("\ufeff", "FEFF ZERO WIDTH NO-BREAK SPACE", id="byte-order-mark"),
    pytest.param("\U000e0041", "E0041 TAG LATIN CAPITAL LETTER A", id="tag-character"),
]


@pytest.mark.parametrize(("hidden", "code"), HIDDEN_CHARACTERS)
def test_a_name_with_a_control_or_invisible_character_is_refused(refuse, hidden, code):
    message = refuse("name", name=f"orders{hidden}paid")
    assert f"U+{code}" in message and "invalid name" in message


@pytest.mark.parametrize("hidden", ["\n", "\u202e"], ids=["line-feed", "bidi-override"])
def test_an_ordering_key_with_a_control_or_invisible_character_is_refused(refuse, hidden):
    message = refuse("ordering_key", ordering_key=f"{{{{instance.pk}}}}{hidden}{{{{instance.id}}}}")
    assert "invalid ordering_key" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("name", "\torders", id="name-tab-before"),
        pytest.param("name", "orders\n", id="name-line-feed-after"),
        pytest.param("ordering_key", "{{instance.pk}}\r\n", id="ordering-key-cr-lf-after"),
    ],
)
def test_a_control_character_around_a_label_is_refused_too(refuse, field, value):
    """The admin trimmed it away before the check (Django's fields strip), the other
    entry points refused it."""
    assert f"invalid {field}" in refuse(field, **{field: value})


def test_the_spaces_around_a_label_are_trimmed_through_every_entry_point(
    staff_client, admin_client
):
    """The admin trimmed a name, the Python and REST APIs stored it as given."""
    spaced = {**good_hook(), "name": "  orders\u3000", "ordering_key": " {{instance.pk}} "}
    python = create_hook(**spaced)
    response = staff_client.post("/api/hooks/", spaced, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "orders"
    rest = Hook.objects.get(pk=response.json()["id"])
    response = admin_client.post(reverse("admin:http_hooks_hook_add"), admin_form(spaced))
    assert response.status_code == 302, response.context["adminform"].form.errors
    labels = Hook.objects.order_by("pk").values_list("name", "ordering_key")
    assert list(labels) == [("orders", "{{instance.pk}}")] * 3
    assert update_hook(python, name=" paid ").name == "paid"
    response = staff_client.patch(f"/api/hooks/{rest.pk}/", {"name": " paid "}, format="json")
    assert response.json()["name"] == "paid"


GOOD_NAMES = [
    pytest.param("Bestellungen \u2192 Slack", id="arrow"),
    pytest.param("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", id="persian-zwnj"),
    pytest.param("\U0001f469\u200d\U0001f4bb devs", id="emoji-zwj-sequence"),
    pytest.param("a\u00a0b", id="no-break-space"),
    pytest.param("\u05e9\u05dc\u05d5\u05dd orders", id="hebrew-without-controls"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_in_any_script_are_taken_as_given_everywhere(staff_client, admin_client, name):
    """The joiners Persian, Indic scripts and emoji need are text, not controls."""
    python = create_hook(**{**good_hook(), "name": name})
    response = staff_client.post("/api/hooks/", {**good_hook(), "name": name}, format="json")
    assert response.status_code == 201, response.content
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), admin_form({**good_hook(), "name": name})
    )
    assert response.status_code == 302
    assert [hook.name for hook in Hook.objects.order_by("pk")] == [name] * 3
    assert update_hook(python, name=name + "!").name == name + "!"


STORED_NAME = "a\x1b[31m\r\nINFO forged\u202eb\u200bc"


def test_a_name_stored_before_the_rule_is_shown_and_blocks_no_other_change(
    make_hook, receiver, staff_client, admin_client
):
    """Not checked again on a change of other fields (as a NUL stored before its rule):
    a PATCH of ``enabled`` is no 400 on a field the client did not send."""
    odd = make_hook(name="odd", ordering_key="{{instance.pk}}")
    written_around_validation(odd, name=STORED_NAME, ordering_key="{{instance.pk}}\u202e")
    assert staff_client.get("/api/hooks/").json()["results"][0]["name"] == STORED_NAME
    assert staff_client.get(f"/api/hooks/{odd.pk}/").json()["name"] == STORED_NAME
    assert admin_client.get(reverse("admin:http_hooks_hook_changelist")).status_code == 200
    assert (
        admin_client.get(reverse("admin:http_hooks_hook_change", args=[odd.pk])).status_code == 200
    )

    response = staff_client.post(f"/api/hooks/{odd.pk}/test/")
    assert response.status_code == 200, response.content
    assert receiver.requests[0].json()["hook_name"] == STORED_NAME

    response = staff_client.patch(f"/api/hooks/{odd.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    body = {**staff_client.get(f"/api/hooks/{odd.pk}/").json(), "enabled": True}
    for read_only in ("id", "has_secret", "headers", "create_datetime", "update_datetime"):
        body.pop(read_only)
    response = staff_client.put(f"/api/hooks/{odd.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    odd.refresh_from_db()
    update_hook(odd, http_method="PUT")
    form = admin_form({**good_hook(), "name": STORED_NAME, "target_url": odd.target_url})
    form["ordering_key"] = odd.ordering_key
    response = admin_client.post(reverse("admin:http_hooks_hook_change", args=[odd.pk]), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    odd.refresh_from_db()
    assert (odd.name, odd.ordering_key) == (STORED_NAME, "{{instance.pk}}\u202e")


def test_a_name_stored_before_the_rule_is_refused_when_given_anew(make_hook, staff_client):
    odd = make_hook(name="odd")
    written_around_validation(odd, name=STORED_NAME)
    response = staff_client.patch(f"/api/hooks/{odd.pk}/", {"name": "b\x1b[0m"}, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["name"]
    response = staff_client.patch(f"/api/hooks/{odd.pk}/", {"name": "mended"}, format="json")
    assert response.status_code == 200, response.content
    assert Hook.objects.get().name == "mended"


# --- rows written around validation ----------------------------------------------


def written_around_validation(hook: Hook, **values) -> None:
    Hook.objects.filter(pk=hook.pk).update(update_datetime=timezone.now(), **values)


def test_secret_headers_that_are_no_list_mask_every_header_and_stop_nothing(
    make_hook, receiver, staff_client, admin_client
):
    """They crashed the sender (for every hook: ``in 5``), the API and the admin."""
    odd = make_hook(headers={"X-Team": "blue"}, target_url=receiver.url("/odd"))
    fine = make_hook(target_url=receiver.url("/fine"))
    written_around_validation(odd, secret_headers=5)
    Order.objects.create(name="x")
    report = send_callbacks()
    assert report.sent == 2
    attempt = Attempt.objects.get(callback__hook=odd)
    assert attempt.request_headers["X-Team"] == "********"
    assert Callback.objects.get(hook=fine).status == CallbackStatus.SENT
    response = staff_client.get(f"/api/hooks/{odd.pk}/")
    assert response.status_code == 200
    assert response.json()["headers"] == {"X-Team": "********"}
    assert response.json()["secret_headers"] == []
    page = admin_client.get(reverse("admin:http_hooks_hook_change", args=[odd.pk]))
    assert page.status_code == 200


@pytest.mark.parametrize(
    "values",
    [
        {"event_types": 5},
        {"event_types": [1, "order.*"]},
        {"changed_fields": 5},
        {"changed_fields": [1, None]},
        {"secret_headers": [1, None]},
        {"headers": ["a", "b"]},
        {"headers": "X-A: 1"},
    ],
    ids=str,
)
def test_list_fields_of_another_type_are_shown_not_a_500(
    make_hook, staff_client, admin_client, values
):
    """One such row made the whole list of hooks a 500, and its admin pages."""
    odd = make_hook(event_types=["order.paid"])
    make_hook()
    written_around_validation(odd, **values)
    assert staff_client.get("/api/hooks/").status_code == 200
    assert staff_client.get(f"/api/hooks/{odd.pk}/").status_code == 200
    assert admin_client.get(reverse("admin:http_hooks_hook_changelist")).status_code == 200
    page = admin_client.get(reverse("admin:http_hooks_hook_change", args=[odd.pk]))
    assert page.status_code == 200


@pytest.mark.parametrize(
    "values",
    [
        {"http_method": "TRACE"},
        {"target_url": "file:///etc/passwd"},
        {"target_url": "gopher://example.com/"},
        {"secret": "plainsecret"},
    ],
    ids=["method", "file-url", "gopher-url", "secret"],
)
def test_a_request_that_cannot_be_made_spares_the_hooks_health(make_hook, receiver, values):
    """It counted as the receiver's failure: five in a row opened the breaker, and
    more could disable the hook. It is retried (the hook may be mended meanwhile)."""
    odd = make_hook(target_url=receiver.url("/odd"))
    written_around_validation(odd, **values)
    Order.objects.create(name="x")
    report = send_callbacks()
    assert (report.sent, report.retried) == (0, 1)
    callback = Callback.objects.get()
    assert (callback.status, callback.attempts) == (CallbackStatus.WAITING, 1)
    assert callback.status_details.startswith("invalid request: ")
    odd.refresh_from_db()
    assert (odd.consecutive_failures, odd.failing_since, odd.paused_until) == (0, None, None)
    assert receiver.requests == []


def test_a_secret_header_name_past_200_characters_is_refused(refuse):
    """The REST API's limit, through every entry point: the admin and the Python API
    stored a name of 300,000 characters."""
    assert "200" in refuse("secret_headers", secret_headers=["x" * 201])
