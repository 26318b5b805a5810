"""An SDK generated from the committed openapi.yaml with openapi-python-client
drives a running server (pytest-django's live_server) through the whole
workflow: create a hook, see the callback a model save makes, send it, resend
it, read the monitor; change a hook, test it, rotate its secret, and read the
errors."""

from __future__ import annotations

import base64
import importlib
import json
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from standardwebhooks import Webhook

from shop.models import Customer

from .demo_server import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

POST_SAVE = "django.db.models.signals.post_save"


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """The generated package, imported as ``hooks_client``."""
    directory = tmp_path_factory.mktemp("sdk")
    config = directory / "config.yaml"
    config.write_text("post_hooks: []\npackage_name_override: hooks_client\n")
    subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate",
            "--path", str(ROOT / "openapi.yaml"),
            "--output-path", str(directory / "hooks_client"),
            "--meta", "none",
            "--config", str(config),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module("hooks_client")
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name.startswith("hooks_client")]:
            del sys.modules[name]


@pytest.fixture
def client(sdk, live_server, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("sdk", password="sdk-password", is_staff=True)
    token = base64.b64encode(b"sdk:sdk-password").decode()
    with sdk.AuthenticatedClient(
        base_url=live_server.url, token=token, prefix="Basic", raise_on_unexpected_status=True
    ) as client:
        yield client


def test_generated_client_runs_the_whole_workflow(sdk, client, receiver):
    from hooks_client.api.callbacks import (
        list_callbacks,
        monitor_callbacks,
        resend_callback,
        send_callbacks,
    )
    from hooks_client.api.hooks import create_hook
    from hooks_client.models import (
        ContentTypeEnum,
        Error,
        HookRequest,
        MonitorCallbacksStatus,
        SendRequestRequest,
        StatusEnum,
    )

    hook = create_hook.sync(
        client=client,
        body=HookRequest(
            name="customers",
            model="shop.customer",
            signals=[POST_SAVE],
            target_url=receiver.url(),
            content_type=ContentTypeEnum.APPLICATIONJSON,
        ),
    )
    assert hook.secret.startswith("whsec_")
    assert hook.model == "shop.customer"

    customer = Customer.objects.create(name="Ada")

    page = list_callbacks.sync(client=client, hook=hook.id)
    (callback,) = page.results
    assert callback.status == StatusEnum.WAITING
    assert callback.object_id == str(customer.pk)
    assert callback.event_type == "created"

    report = send_callbacks.sync(client=client, body=SendRequestRequest(hook_id=hook.id))
    assert (report.sent, report.failed) == (1, 0)
    (request,) = receiver.wait_for(1)
    assert Webhook(hook.secret).verify(request.body, request.headers)["object_id"] == customer.pk

    resent = resend_callback.sync(client=client, id=callback.id)
    assert resent.status == StatusEnum.WAITING
    monitor = monitor_callbacks.sync(
        client=client, status=MonitorCallbacksStatus.WAITING, callbacks_limit=1
    )
    assert (monitor.count, monitor.callbacks_limit, monitor.exceeded) == (1, 1, True)
    assert monitor.minutes_ago is None

    assert send_callbacks.sync(client=client, body=SendRequestRequest()).sent == 1
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(callback.event_id)

    refused = monitor_callbacks.sync(
        client=client, status=MonitorCallbacksStatus.ERROR, callbacks_limit=0
    )
    assert isinstance(refused, Error)
    assert refused.errors[0].field == "callbacks_limit"


def test_generated_client_manages_a_hook_and_parses_its_errors(sdk, client, receiver):
    """Retrieve, replace and change a hook, send it a test event, rotate its secret
    (the receiver verifies with either secret during the grace), and every error answer
    parses into the generated ``Error``: code, detail and the field-level errors."""
    from hooks_client.api.hooks import (
        create_hook,
        get_hook,
        partial_update_hook,
        rotate_hook_secret,
        test_hook,
        update_hook,
    )
    from hooks_client.api.signals import delete_signal, list_signals
    from hooks_client.models import (
        Attempt,
        Error,
        Hook,
        HookRequest,
        PatchedHookRequest,
        RotateSecretRequest,
        Secret,
    )

    body = HookRequest(model="shop.customer", signals=[POST_SAVE], target_url=receiver.url())
    hook = create_hook.sync(client=client, body=body)
    fetched = get_hook.sync(hook.id, client=client)
    assert isinstance(fetched, Hook) and fetched.has_secret
    body.name = "replaced"
    assert update_hook.sync(hook.id, client=client, body=body).name == "replaced"
    changed = partial_update_hook.sync(
        hook.id, client=client, body=PatchedHookRequest(enabled=False)
    )
    assert (changed.name, changed.enabled) == ("replaced", False)

    attempt = test_hook.sync(hook.id, client=client)
    assert isinstance(attempt, Attempt) and attempt.succeeded
    rotated = rotate_hook_secret.sync(hook.id, client=client, body=RotateSecretRequest())
    assert isinstance(rotated, Secret) and rotated.secret != hook.secret
    test_hook.sync(hook.id, client=client)
    _, after = receiver.wait_for(2)
    for secret in (rotated.secret, hook.secret):
        assert Webhook(secret).verify(after.body, after.headers) == json.loads(after.body)

    bad = create_hook.sync(client=client, body=HookRequest(target_url=receiver.url(), headers="x"))
    assert isinstance(bad, Error) and bad.code == "invalid_headers"
    assert [(item.field, item.code) for item in bad.errors] == [("headers", "invalid_headers")]
    missing = get_hook.sync(hook.id + 1000, client=client)
    assert isinstance(missing, Error) and (missing.code, missing.errors) == ("not_found", [])
    (post_save,) = [s for s in list_signals.sync(client=client).results if s.signal == POST_SAVE]
    in_use = delete_signal.sync_detailed(post_save.id, client=client)
    assert in_use.status_code == 409
    assert isinstance(in_use.parsed, Error) and in_use.parsed.code == "signal_in_use"
