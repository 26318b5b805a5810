"""The hook and callback lists of the admin, as headless Chromium lays them out in a
window 1,400 pixels wide: every column fits, nothing scrolls sideways; and the
delivery overview's charts, as Chromium paints them."""

from __future__ import annotations

import re

import pytest

from .browser import chromium, render, screenshot
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
        b"const data = document.body.dataset;"
        b"data.pageOverflow = document.documentElement.scrollWidth"
        b" - document.documentElement.clientWidth;"
        b"const box = document.querySelector('#changelist .results');"
        b"if (box) data.overflow = box.scrollWidth - box.clientWidth;"
        b"const size = (element) => {const r = element.getBoundingClientRect();"
        b" return Math.round(r.width) + 'x' + Math.round(r.height);};"
        b"data.charts = [...document.querySelectorAll('svg.health-chart')].map((svg) =>"
        b" [svg.querySelector('title').textContent.split(':')[0], size(svg),"
        b" size(svg.querySelector('.sent')), size(svg.querySelector('.failed'))].join('|'))"
        b".join(';');"
        b"});</script></body>"
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

# Words with no place to break a line, where an author or a receiver writes text: a
# hook's name, and an answer's body and headers.
LONG_WORDS_SEED = """
from http_hooks.api import create_hook
from http_hooks.models import Attempt, Callback
from shop.models import Order

hook = create_hook(name="N" * 150, model="shop.order",
                   signals=["django.db.models.signals.post_save"],
                   target_url="http://127.0.0.1:9/long-words")
Order.objects.create(name="long words")
Attempt.objects.create(callback=Callback.objects.get(hook=hook), number=1, response_status=500,
                       response_headers={"X-Trace": "T" * 400}, response_body="Z" * 5000)
"""


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    chromium()  # skips (or fails) before the server is built
    server = DemoServer(tmp_path_factory.mktemp("admin"), settings=SETTINGS).start()
    server.manage("shell", "-c", SEED)
    server.manage("shell", "-c", LONG_WORDS_SEED)
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


def test_a_callback_page_with_a_long_answer_fits_a_1400_pixel_window(admin_server, tmp_path):
    changelist = f"{admin_server.url}/admin/http_hooks/callback/"
    dom, _ = render(f"{changelist}?q=long-words", tmp_path / "list")
    callback = re.search(r"/admin/http_hooks/callback/(\d+)/change/", dom).group(1)
    dom, _ = render(f"{changelist}{callback}/change/", tmp_path / "page")
    assert "Z" * 5000 in dom and "T" * 400 in dom, dom[:2000]  # the try is there
    page_overflow = re.search(r'data-page-overflow="(-?\d+)"', dom)
    assert page_overflow and int(page_overflow.group(1)) <= 0, dom[-600:]


# Three hooks of a day: a busy one failing now and then, one paused by its receiver
# (Retry-After), one the receiver told it was gone.
STATS_SEED = """
import datetime
from django.utils import timezone
from http_hooks.api import create_hook
from http_hooks.delivery.stats import hour_of
from http_hooks.models import DeliveryStats, Hook

now = timezone.now()
hooks = [
    create_hook(name=name, model="shop.order", signals=["django.db.models.signals.post_save"],
                target_url=f"http://127.0.0.1:9/{name}")
    for name in ("busy", "throttled", "gone")
]
Hook.objects.filter(pk=hooks[1].pk).update(
    paused_until=now + datetime.timedelta(minutes=20), consecutive_failures=1,
    last_failure_at=now, last_failure_reason="HTTP 429")
Hook.objects.filter(pk=hooks[2].pk).update(
    enabled=False, disabled_reason="gone", disabled_at=now, last_failure_at=now,
    last_failure_reason="HTTP 410")
rows = []
for hook, scale in zip(hooks, (1, 3, 5)):
    for hour in range(24):
        sent, failed = (40 + 30 * (hour % 5)) // scale, (hour % 7 == 3) * 25 // scale
        rows.append(DeliveryStats(
            hook=hook, hour=hour_of(now) - hour,
            sent=sent, failed=failed, under_50ms=sent, under_500ms=failed))
DeliveryStats.objects.bulk_create(rows)
"""


def test_overview_charts_are_painted(admin_server, tmp_path):
    admin_server.manage("shell", "-c", STATS_SEED)
    url = f"{admin_server.url}/admin/http_hooks/callback/overview/"
    dom, requested = render(url, tmp_path)
    assert all(request.startswith(admin_server.url) for request in requested), requested
    page_overflow = re.search(r'data-page-overflow="(-?\d+)"', dom)
    assert page_overflow and int(page_overflow.group(1)) <= 0, dom[-600:]
    charts = re.search(r'data-charts="([^"]*)"', dom).group(1).split(";")
    sizes = {name: sizes for name, *sizes in (chart.split("|") for chart in charts)}
    # Every chart 240 x 40 pixels; each hook's bars span its day and its busiest hour
    # is full height; its failures show, on three hours of the day.
    assert {chart[0] for chart in sizes.values()} == {"240x40"}, sizes
    for name in ("busy", "throttled", "gone"):
        width, height = map(int, sizes[name][1].split("x"))
        assert (width > 230, height) == (True, 40), sizes
        assert sizes[name][2] not in ("0x0", ""), sizes
    assert "busy: tries per hour over the last 24 h" in dom
    assert "paused (Retry-After)" in dom and "disabled: the receiver answered 410 Gone" in dom

    png = screenshot(url, tmp_path / "overview.png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 1400  # the IHDR's width
