"""The hook and callback lists of the admin, as headless Chromium lays them out in a
window 1,400 pixels wide: every column fits, nothing scrolls sideways."""

from __future__ import annotations

import re

import pytest

from .browser import chromium, render
from .demo_server import DemoServer

pytestmark = pytest.mark.slow

# The browser has no session: this server takes every request as its staff user, and
# each admin page reports, once laid out, how far its result table overflows its box.
SETTINGS = """
DEBUG = True  # runserver serves the admin's CSS only in debug mode
MIDDLEWARE = [*MIDDLEWARE, "demo_server_settings.LoggedIn"]


class LoggedIn:
    SCRIPT = (
        b"<script>addEventListener('load', () => {"
        b"const box = document.querySelector('#changelist .results');"
        b"document.body.dataset.overflow = box.scrollWidth - box.clientWidth;"
        b"document.body.dataset.pageOverflow = document.documentElement.scrollWidth"
        b" - document.documentElement.clientWidth;});</script></body>"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.contrib.auth.models import User

        request.user = User.objects.get(username="api-tester")
        response = self.get_response(request)
        if request.path.startswith("/admin/") and response.get("Content-Type", "").startswith(
            "text/html"
        ):
            response.content = response.content.replace(b"</body>", self.SCRIPT)
        return response
"""

# The widest rows the lists meet: a long hook name, a long URL with no place to break
# a line, a custom signal.
SEED = """
from django.contrib.auth.models import User
from http_hooks.api import create_hook
from shop.models import Order
from shop.signals import order_shipped

create_hook(
    name="The order pipeline of the northern warehouse, with every step spelled out",
    model="shop.order",
    signals=["django.db.models.signals.post_save", "django.db.models.signals.post_delete",
             "shop.signals.order_shipped"],
    target_url="http://127.0.0.1:9/api/v2/incoming/webhooks/orders/northernwarehouse/"
    "?tenant=tenant0123456789abcdef0123456789",
)
order = Order.objects.create(name="o")
order_shipped.send(sender=Order, instance=order)
order.delete()
User.objects.filter(username="api-tester").update(is_superuser=True)
"""


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    chromium()  # skips (or fails) before the server is built
    server = DemoServer(tmp_path_factory.mktemp("admin"), settings=SETTINGS).start()
    server.manage("shell", "-c", SEED)
    yield server
    server.stop()


@pytest.mark.parametrize("model", ["hook", "callback"])
def test_change_list_fits_a_1400_pixel_window(admin_server, tmp_path, model):
    dom, _ = render(f"{admin_server.url}/admin/http_hooks/{model}/", tmp_path, width=1400)
    assert "The order pipeline" in dom, dom[:2000]  # the rows are there
    overflow = re.search(r'data-overflow="(-?\d+)"', dom)
    page_overflow = re.search(r'data-page-overflow="(-?\d+)"', dom)
    assert overflow and page_overflow, dom[-2000:]
    assert max(int(overflow.group(1)), int(page_overflow.group(1))) <= 0, dom[-600:]
