"""The network policy: non-public targets refused when a hook is saved, and again at
send time on the address actually connected to."""

import socket

import pytest
from django.conf import settings
from django.test import override_settings

from http_hooks.api import create_hook, send_callbacks
from http_hooks.exceptions import BlockedNetworkError
from http_hooks.models import Attempt, Callback, Hook
from http_hooks.network import is_blocked_address
from shop.models import Order

pytestmark = pytest.mark.django_db


def blocking(on: bool):
    return override_settings(HTTP_HOOKS={**settings.HTTP_HOOKS, "BLOCK_PRIVATE_NETWORKS": on})


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8000/hook", id="loopback"),
        pytest.param("http://127.9.9.9/hook", id="loopback-other"),
        pytest.param("http://[::1]/hook", id="loopback-ipv6"),
        pytest.param("http://[::ffff:127.0.0.1]/hook", id="loopback-ipv4-mapped"),
        pytest.param("http://10.1.2.3/hook", id="private-10"),
        pytest.param("http://172.16.0.1/hook", id="private-172"),
        pytest.param("http://192.168.1.1/hook", id="private-192"),
        pytest.param("http://[fd00::1]/hook", id="private-ipv6-unique-local"),
        pytest.param("http://100.64.0.1/hook", id="shared-carrier-grade-nat"),
        pytest.param("http://169.254.169.254/latest/meta-data", id="link-local-cloud-metadata"),
        pytest.param("http://[fe80::1]/hook", id="link-local-ipv6"),
        pytest.param("http://224.0.0.1/hook", id="multicast"),
        pytest.param("http://[ff02::1]/hook", id="multicast-ipv6"),
        pytest.param("http://240.0.0.1/hook", id="reserved"),
        pytest.param("http://0.0.0.0/hook", id="unspecified"),
        pytest.param("http://localhost/hook", id="name-resolving-to-loopback"),
    ],
)
def test_a_hook_on_a_non_public_address_is_refused_when_saved(url):
    with blocking(True), pytest.raises(BlockedNetworkError, match="non-public networks"):
        create_hook(
            signals=["django.db.models.signals.post_save"], model="shop.order", target_url=url
        )
    assert not Hook.objects.exists()


def test_a_public_address_is_accepted_when_saved():
    with blocking(True):
        hook = create_hook(
            signals=["django.db.models.signals.post_save"],
            model="shop.order",
            target_url="https://93.184.215.14/hook",
        )
    assert hook.pk


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
        ("127.0.0.1", True),
        ("fe80::1%eth0", True),
        ("2002:a00:1::", True),  # 6to4 of 10.0.0.1
        ("2002:7f00:1::1", True),  # 6to4 of 127.0.0.1
        ("2002:808:808::1", False),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", True),  # Teredo, client 10.0.0.1
        ("64:ff9b::a00:1", True),  # NAT64 of 10.0.0.1
        ("64:ff9b::808:808", False),  # NAT64 of 8.8.8.8
        # Local-use NAT64 (64:ff9b:1::/48), whose translator may use a prefix of /48, /56,
        # /64 or /96: each address below is 10.1.1.1 for one length, public for the others.
        ("64:ff9b:1:a01:1:101:808:808", True),  # /48
        ("64:ff9b:1:80a:1:101:808:808", True),  # /56
        ("64:ff9b:1:808:a:101:108:808", True),  # /64
        ("64:ff9b:1:808:8:808:a01:101", True),  # /96
        ("64:ff9b:1:808:8:808:808:808", False),  # 8.8.8.8 whatever the length
        ("fec0::1", True),  # site-local
        ("192.0.0.8", True),  # IETF protocol assignments
    ],
)
def test_is_blocked_address(address, blocked):
    assert is_blocked_address(address) is blocked


def test_a_name_resolving_to_loopback_is_caught_at_send_time(make_hook, receiver):
    """Saved while the name was allowed; by send time the policy forbids where it points
    (as after a DNS rebinding): nothing reaches the address."""
    make_hook(target_url=f"http://localhost:{receiver.port}/hook")
    Order.objects.create(name="Tea")
    with blocking(True):
        report = send_callbacks()
    attempt = Attempt.objects.get()
    assert report.retried == 1
    assert receiver.requests == []
    assert "localhost (127.0.0.1)" in attempt.error
    assert "BLOCK_PRIVATE_NETWORKS" in attempt.error
    assert Callback.objects.get().status == "waiting"


def test_the_same_target_is_delivered_when_the_policy_is_off(make_hook, receiver):
    make_hook(target_url=f"http://localhost:{receiver.port}/hook")
    Order.objects.create(name="Tea")
    with blocking(False):
        assert send_callbacks().sent == 1
    assert len(receiver.requests) == 1


def test_a_forbidden_address_is_never_connected_to(make_hook, receiver):
    """Open and closed internal ports give the same error: the log is no port scanner."""
    make_hook(target_url=f"http://localhost:{receiver.port}/hook")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    make_hook(target_url=f"http://localhost:{closed_port}/hook")
    Order.objects.create(name="Tea")
    with blocking(True):
        send_callbacks()
    open_port_error, closed_port_error = (
        a.error for a in Attempt.objects.order_by("callback__hook_id")
    )
    assert open_port_error == closed_port_error
    assert "non-public networks are blocked" in closed_port_error
    assert receiver.requests == []


@pytest.fixture
def lookups(monkeypatch):
    """The host names resolved, each time; every name resolves to a public address."""
    names = []

    def getaddrinfo(host, port, *args, **kwargs):
        names.append(host)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.215.14", port))
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def test_a_hook_write_resolves_its_target_once(lookups, staff_client, admin_client):
    """Through REST (create, change), the admin and the Python API: one lookup per write."""
    from django.contrib.contenttypes.models import ContentType
    from django.urls import reverse

    from http_hooks.models import Signal

    post_save = "django.db.models.signals.post_save"
    url = "https://hooks.example.com/in"
    with blocking(True):
        response = staff_client.post(
            "/api/hooks/",
            {"model": "shop.order", "signals": [post_save], "target_url": url},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert lookups == ["hooks.example.com"]
        response = staff_client.patch(
            f"/api/hooks/{response.json()['id']}/", {"name": "renamed"}, format="json"
        )
        assert response.status_code == 200, response.json()
        assert lookups == ["hooks.example.com"] * 2
        response = admin_client.post(
            reverse("admin:http_hooks_hook_add"),
            {
                "name": "admin",
                "model": ContentType.objects.get_for_model(Order).pk,
                "signals": [Signal.objects.get(signal=post_save).pk],
                "target_url": url,
                "http_method": "POST",
                "content_type": "application/json",
            },
        )
        assert response.status_code == 302
        assert lookups == ["hooks.example.com"] * 3
        create_hook(signals=[post_save], model="shop.order", target_url=url)
        assert lookups == ["hooks.example.com"] * 4
