"""Standard Webhooks signatures: the specification's test vectors, and real deliveries
verified by the official ``standardwebhooks`` package, through a secret rotation."""

import datetime
import re
import time

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from http_hooks.api import rotate_secret, send_callbacks
from http_hooks.models import Callback
from http_hooks.signing import sign, signature_headers, verify
from shop.models import Order

from .demo_server import ROOT

# The example of the Standard Webhooks specification and its reference libraries.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
VECTOR_HEADERS = {
    "webhook-id": MSG_ID,
    "webhook-timestamp": str(TIMESTAMP),
    "webhook-signature": SIGNATURE,
}


def test_sign_gives_the_specifications_signature():
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_the_whsec_prefix_is_optional():
    assert sign(SECRET.removeprefix("whsec_"), MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_verify_accepts_the_specifications_example():
    assert verify(SECRET, VECTOR_HEADERS, BODY, now=TIMESTAMP)


@pytest.mark.parametrize(
    ("change", "body", "now"),
    [
        pytest.param({}, b'{"test": 2432232315}', TIMESTAMP, id="body-changed"),
        pytest.param(
            {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="},
            BODY,
            TIMESTAMP,
            id="signature-changed",
        ),
        pytest.param({"webhook-id": "msg_other"}, BODY, TIMESTAMP, id="id-changed"),
        pytest.param({}, BODY, TIMESTAMP + 5 * 60 + 1, id="timestamp-too-old"),
        pytest.param({}, BODY, TIMESTAMP - 5 * 60 - 1, id="timestamp-too-new"),
        pytest.param({"webhook-timestamp": "hello"}, BODY, TIMESTAMP, id="timestamp-not-a-number"),
        pytest.param({"webhook-signature": ""}, BODY, TIMESTAMP, id="no-signature"),
    ],
)
def test_verify_refuses(change, body, now):
    assert not verify(SECRET, {**VECTOR_HEADERS, **change}, body, now=now)


def test_one_valid_signature_among_several_is_enough():
    headers = {
        **VECTOR_HEADERS,
        "webhook-signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + SIGNATURE,
    }
    assert verify(SECRET, headers, BODY, now=TIMESTAMP)


def test_headers_carry_one_signature_per_secret_and_none_without_a_secret():
    other = "whsec_" + "A" * 32
    unsigned = signature_headers([], MSG_ID, TIMESTAMP, BODY)
    signed = signature_headers([SECRET, other], MSG_ID, TIMESTAMP, BODY)
    assert unsigned == {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}
    assert signed["webhook-signature"] == f"{SIGNATURE} {sign(other, MSG_ID, TIMESTAMP, BODY)}"


def test_the_official_library_agrees_with_the_vector():
    """Guard against a vector typo: the reference implementation signs it the same."""
    when = datetime.datetime.fromtimestamp(TIMESTAMP, tz=datetime.UTC)
    assert Webhook(SECRET).sign(MSG_ID, when, BODY.decode()) == SIGNATURE


# --- real deliveries --------------------------------------------------------------


def received_verifies(request, secret: str) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


def deliver_one(receiver) -> object:
    receiver.clear()
    Order.objects.create(name="Tea")
    assert send_callbacks().sent == 1
    (request,) = receiver.wait_for(1)
    return request


@pytest.mark.django_db
def test_a_delivered_request_verifies_with_the_official_library(make_hook, receiver):
    make_hook(secret=SECRET, content_type="application/json")
    before = int(time.time())
    request = deliver_one(receiver)
    after = time.time()
    callback = Callback.objects.get()
    assert request.headers["webhook-id"] == str(callback.event_id)
    assert before <= int(request.headers["webhook-timestamp"]) <= after
    assert request.headers["webhook-signature"].startswith("v1,")
    assert received_verifies(request, SECRET)
    assert not received_verifies(request, "whsec_" + "A" * 32)


@pytest.mark.django_db
def test_a_hook_without_secret_sends_id_and_timestamp_unsigned(make_hook, receiver):
    make_hook(secret="")
    request = deliver_one(receiver)
    assert request.headers["webhook-id"] == str(Callback.objects.get().event_id)
    assert request.headers["webhook-timestamp"].isdigit()
    assert "webhook-signature" not in request.headers


@pytest.mark.django_db
def test_during_the_grace_period_both_secrets_verify_and_after_it_only_the_new(make_hook, receiver):
    hook = make_hook(secret=SECRET)
    new_secret = rotate_secret(hook)

    during = deliver_one(receiver)
    assert len(during.headers["webhook-signature"].split()) == 2
    assert received_verifies(during, SECRET)
    assert received_verifies(during, new_secret)

    hook.refresh_from_db()
    hook.previous_secret_expires_at = timezone.now() - datetime.timedelta(seconds=1)
    hook.save(update_fields=["previous_secret_expires_at"])
    after = deliver_one(receiver)
    assert len(after.headers["webhook-signature"].split()) == 1
    assert received_verifies(after, new_secret)
    assert not received_verifies(after, SECRET)


@pytest.mark.django_db
def test_a_retry_keeps_the_event_id_and_is_signed_afresh(make_hook, receiver):
    receiver.respond(status=500)
    make_hook(secret=SECRET)
    Order.objects.create(name="Tea")
    callback = Callback.objects.get()
    send_callbacks()
    receiver.respond(status=200)
    send_callbacks(ids=[callback.pk])
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == str(callback.event_id)
    assert received_verifies(first, SECRET)
    assert received_verifies(second, SECRET)


# --- new hooks are signed, whatever the entry point ------------------------------


def assert_signed_by(secret: str, request) -> None:
    assert secret.startswith("whsec_")
    Webhook(secret).verify(request.body, request.headers)  # raises if not signed with it


@pytest.mark.django_db
def test_create_hook_signs_with_a_generated_secret_unless_told_not_to(make_hook, receiver):
    hook = make_hook()
    assert_signed_by(hook.secret, deliver_one(receiver))
    hook.delete()
    unsigned = make_hook(secret="")
    assert unsigned.secret == ""
    assert "webhook-signature" not in deliver_one(receiver).headers


@pytest.mark.django_db
def test_a_hook_created_through_the_rest_api_is_signed_unless_told_not_to(staff_client, receiver):
    from http_hooks.models import Hook

    data = {
        "model": "shop.order",
        "signals": ["django.db.models.signals.post_save"],
        "target_url": receiver.url(),
    }
    answer = staff_client.post("/api/hooks/", data, format="json").json()
    assert answer["has_secret"] is True
    assert_signed_by(answer["secret"], deliver_one(receiver))
    Hook.objects.all().delete()
    answer = staff_client.post("/api/hooks/", {**data, "secret": ""}, format="json").json()
    assert (answer["has_secret"], answer["secret"]) == (False, "")
    assert "webhook-signature" not in deliver_one(receiver).headers


@pytest.mark.django_db
def test_a_hook_added_in_the_admin_is_signed_and_its_secret_shown_once(admin_client, receiver):
    from django.urls import reverse

    from http_hooks.models import Hook

    from .test_admin import hook_form

    form = admin_client.get(reverse("admin:http_hooks_hook_add")).content.decode()
    assert re.search(r'<input type="checkbox" name="sign"[^>]* checked>', form)
    response = admin_client.post(
        reverse("admin:http_hooks_hook_add"), hook_form(receiver, sign="on"), follow=True
    )
    hook = Hook.objects.get()
    assert hook.secret in response.content.decode()
    assert_signed_by(hook.secret, deliver_one(receiver))
    page = admin_client.get(reverse("admin:http_hooks_hook_change", args=[hook.pk]))
    assert hook.secret not in page.content.decode()


@pytest.mark.django_db
def test_a_hook_added_in_the_admin_without_sign_is_unsigned(admin_client, receiver):
    from django.urls import reverse

    from http_hooks.models import Hook

    from .test_admin import hook_form

    response = admin_client.post(reverse("admin:http_hooks_hook_add"), hook_form(receiver))
    assert response.status_code == 302
    assert Hook.objects.get().secret == ""
    assert "webhook-signature" not in deliver_one(receiver).headers


@pytest.mark.django_db
def test_patch_with_an_empty_secret_makes_a_hook_unsigned(make_hook, staff_client, receiver):
    hook = make_hook()
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", {"secret": ""}, format="json")
    assert (response.status_code, response.json()["has_secret"]) == (200, False)
    assert "webhook-signature" not in deliver_one(receiver).headers


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["patch", "put"])
def test_a_secret_given_in_a_change_is_a_rotation_with_its_grace(
    make_hook, staff_client, receiver, method
):
    """The old secret went on signing for nothing: replaced at once, every receiver
    still checking it refused the requests until it was told the new one."""
    hook = make_hook(secret=SECRET)
    new_secret = "whsec_" + "bmV3LXNlY3JldC1mb3ItdGhlLXJvdGF0aW9uLXRlc3Q="
    body = {"secret": new_secret}
    if method == "put":
        body = {**staff_client.get(f"/api/hooks/{hook.pk}/").json(), **body}
    response = getattr(staff_client, method)(f"/api/hooks/{hook.pk}/", body, format="json")
    assert response.status_code == 200, response.json()
    hook.refresh_from_db()
    assert (hook.secret, hook.previous_secret) == (new_secret, SECRET)
    assert hook.previous_secret_expires_at > timezone.now()

    during = deliver_one(receiver)
    assert received_verifies(during, SECRET)
    assert received_verifies(during, new_secret)

    # The same secret again changes nothing: no grace given to itself.
    response = staff_client.patch(f"/api/hooks/{hook.pk}/", body, format="json")
    hook.refresh_from_db()
    assert (hook.secret, hook.previous_secret) == (new_secret, SECRET)


def readme_receiver():
    """``receive`` of the README's "Verifying signatures on the receiving side"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Verifying signatures on the receiving side") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    namespace = {"secret": SECRET}
    exec(code.replace("...", "pass"), namespace)
    return namespace["receive"]


@pytest.mark.parametrize(
    ("content_type", "template"),
    [
        ("application/json", '{"id": {{instance.id}}}'),
        ("application/xml", "<order><id>{{instance.id}}</id></order>"),
        ("text/plain", "order {{instance.id}}"),
    ],
)
@pytest.mark.django_db
def test_the_readmes_receiver_verifies_a_delivery_of_any_content_type(
    make_hook, receiver, content_type, template
):
    make_hook(secret=SECRET, content_type=content_type, payload_template=template)
    request = deliver_one(receiver)
    readme_receiver()(request)  # raises for a request it refuses
    request.headers["webhook-signature"] = "v1," + "A" * 44
    with pytest.raises(WebhookVerificationError):
        readme_receiver()(request)
