"""An SDK generated from the committed openapi.yaml with openapi-python-client
drives a running server (pytest-django's live_server) through the whole
workflow: create a hook, see the callback a model save makes, send it, resend
it, read the monitor."""

from __future__ import annotations

import base64
import importlib
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
