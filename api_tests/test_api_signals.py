"""REST API: /api/signals/ (list, create with path validation, retrieve, delete)."""

from __future__ import annotations

import pytest

from http_hooks.models import Signal

pytestmark = pytest.mark.django_db

CUSTOM = "shop.signals.order_shipped"
DEFAULT_SIGNALS = {
    "django.db.models.signals.pre_init",
    "django.db.models.signals.post_init",
    "django.db.models.signals.pre_save",
    "django.db.models.signals.post_save",
    "django.db.models.signals.pre_delete",
    "django.db.models.signals.post_delete",
    "django.db.models.signals.m2m_changed",
}


def test_list_signals_shows_the_default_ones(staff_client):
    response = staff_client.get("/api/signals/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(DEFAULT_SIGNALS)
    assert {signal["signal"] for signal in body["results"]} == DEFAULT_SIGNALS


def test_create_custom_signal(staff_client):
    response = staff_client.post("/api/signals/", {"signal": CUSTOM}, format="json")
    assert response.status_code == 201
    signal = Signal.objects.get(signal=CUSTOM)
    assert response.json()["id"] == signal.pk
    assert response.json()["signal"] == CUSTOM


@pytest.mark.parametrize(
    ("path", "code"),
    [
        pytest.param("shop.signals.nope", "invalid_signal", id="does-not-import"),
        pytest.param("no_dots", "invalid_signal", id="not-dotted"),
        pytest.param("shop.models.Order", "invalid_signal", id="not-a-signal"),
        pytest.param("", "blank", id="blank"),
        pytest.param("a." * 200, "max_length", id="too-long"),
        pytest.param("django.db.models.signals.post_save", "unique", id="already-there"),
    ],
)
def test_create_signal_refuses_bad_path(staff_client, path, code):
    before = Signal.objects.count()
    response = staff_client.post("/api/signals/", {"signal": path}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "signal"
    assert response.json()["code"] == code
    assert Signal.objects.count() == before


def test_retrieve_signal(staff_client):
    signal = Signal.objects.get(signal="django.db.models.signals.post_save")
    response = staff_client.get(f"/api/signals/{signal.pk}/")
    assert response.status_code == 200
    assert response.json()["signal"] == signal.signal


def test_delete_signal(staff_client):
    signal = Signal.objects.create(signal=CUSTOM)
    assert staff_client.delete(f"/api/signals/{signal.pk}/").status_code == 204
    assert not Signal.objects.filter(signal=CUSTOM).exists()


def test_a_signal_in_use_is_not_deleted(staff_client, make_hook):
    hook = make_hook(signals=[CUSTOM])
    signal = Signal.objects.get(signal=CUSTOM)
    response = staff_client.delete(f"/api/signals/{signal.pk}/")
    assert response.status_code == 409  # a conflict with the hooks, not bad input
    assert response.json() == {
        "code": "signal_in_use",
        "detail": f"signal {CUSTOM} is used by hooks {hook.pk}: remove it from them first",
        "errors": [],
    }
    assert Signal.objects.filter(signal=CUSTOM).exists()


def test_signals_cannot_be_changed(staff_client):
    signal = Signal.objects.get(signal="django.db.models.signals.post_save")
    response = staff_client.patch(f"/api/signals/{signal.pk}/", {"signal": CUSTOM}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {"signal": "django.db.models.signals.post_save"},
            ["django.db.models.signals.post_save"],
            id="exact",
        ),
        pytest.param(
            {"signal__icontains": "DELETE"},
            ["django.db.models.signals.post_delete", "django.db.models.signals.pre_delete"],
            id="contains",
        ),
        pytest.param({"search": "m2m"}, ["django.db.models.signals.m2m_changed"], id="search"),
    ],
)
def test_list_signals_filters(staff_client, query, expected):
    response = staff_client.get("/api/signals/", query)
    assert [signal["signal"] for signal in response.json()["results"]] == expected


def test_list_signals_ordering(staff_client):
    response = staff_client.get("/api/signals/", {"ordering": "-signal", "page_size": 1})
    assert response.json()["results"][0]["signal"] == "django.db.models.signals.pre_save"


@pytest.mark.parametrize(
    "path", [" django.db.models.signals.post_save", "django.db.models.signals.post_save\n"]
)
def test_a_signal_path_is_taken_as_sent_as_its_schema_pattern_says(staff_client, path):
    """The schema's pattern has no room for spaces: they are refused, not trimmed."""
    response = staff_client.post("/api/signals/", {"signal": path}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "signal"
    response = staff_client.post(
        "/api/hooks/",
        {"model": "shop.order", "signals": [path], "target_url": "https://x.example/"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "signals.0"


def test_a_signal_given_twice_is_refused_with_the_models_message(staff_client):
    response = staff_client.post(
        "/api/signals/", {"signal": "django.db.models.signals.post_save"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "signal with this signal already exists."
