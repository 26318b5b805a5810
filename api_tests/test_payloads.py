"""Rendering of payloads: templates (escaping, types, safety), serializers, the default."""

import datetime
import decimal
import json
import math
import time
import uuid
from xml.etree import ElementTree

import pytest

from http_hooks import disable_hooks
from http_hooks.exceptions import InvalidPayloadError
from http_hooks.payloads import (
    build_payload,
    default_payload,
    parse_template,
    render_template,
    to_json,
    validate_template,
)
from shop.models import Customer, Order, Parcel

NASTY = 'Quote " back\\slash\nnew line <tag> & ünïcødé ✓'
SEED_TEMPLATE = (
    '{"instance_id": {{instance.id}}, "event_type": "{{event_type}}", '
    '"instance_name": "{{instance.name}}", "nested_attribute": '
    '"{{instance.nested_attribute.name}}"}'
)


@pytest.fixture(autouse=True)
def no_hooks():
    """These tests build model instances without a database: an earlier test's hook
    on post_init (still connected in this process) must not look for hooks."""
    with disable_hooks():
        yield


def render(template, content_type, **context):
    payload, _ = build_payload(
        template=template,
        serializer_class="",
        content_type=content_type,
        model=type(context.get("instance")),
        context={"event_type": "created", **context},
    )
    return payload


def test_seed_example_template_renders_unchanged():
    parcel = Parcel(pk=7, name="Box", nested_attribute=Customer(name="Ada"))
    payload = json.loads(render(SEED_TEMPLATE, "application/json", instance=parcel))
    assert payload == {
        "instance_id": 7,
        "event_type": "created",
        "instance_name": "Box",
        "nested_attribute": "Ada",
    }


def test_json_string_placeholder_escapes_quotes_backslashes_newlines_and_unicode():
    order = Order(pk=1, name=NASTY)
    payload = render('{"name": "{{instance.name}}"}', "application/json", instance=order)
    assert json.loads(payload) == {"name": NASTY}


def test_bare_json_placeholder_becomes_a_literal_of_the_right_type():
    order = Order(
        pk=3,
        name=NASTY,
        total=decimal.Decimal("12.50"),
        paid=True,
        placed_on=datetime.date(2026, 1, 2),
        shipped_at=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        reference=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    )
    template = (
        '{"id": {{instance.id}}, "name": {{instance.name}}, "total": {{instance.total}}, '
        '"paid": {{instance.paid}}, "customer": {{instance.customer}}, '
        '"placed_on": {{instance.placed_on}}, "shipped_at": {{instance.shipped_at}}, '
        '"reference": {{instance.reference}}, "created": {{created}}}'
    )
    payload = json.loads(render(template, "application/json", instance=order, created=False))
    assert payload == {
        "id": 3,
        "name": NASTY,
        "total": 12.5,
        "paid": True,
        "customer": None,
        "placed_on": "2026-01-02",
        "shipped_at": "2026-01-02T03:04:05Z",
        "reference": "12345678-1234-5678-1234-567812345678",
        "created": False,
    }


def test_values_inside_json_strings_render_as_iso_text():
    order = Order(
        pk=3, name="x", total=decimal.Decimal("1.10"), placed_on=datetime.date(2026, 5, 6)
    )
    template = (
        '{"s": "{{instance.total}} {{instance.placed_on}} {{instance.paid}} {{instance.customer}}"}'
    )
    assert json.loads(render(template, "application/json", instance=order)) == {
        "s": "1.10 2026-05-06 false "
    }


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml"])
def test_xml_values_are_escaped(content_type):
    order = Order(pk=5, name=NASTY)
    template = (
        "<?xml version='1.0' encoding='utf-8'?><o id='{{instance.id}}'><n>{{instance.name}}</n></o>"
    )
    payload = render(template, content_type, instance=order)
    root = ElementTree.fromstring(payload.encode())
    assert root.attrib["id"] == "5"
    assert root.find("n").text == NASTY


def test_plain_text_gets_raw_values():
    order = Order(pk=5, name='a "b"')
    assert render("{{instance.name}}!", "text/plain", instance=order) == 'a "b"!'


def test_signal_arguments_are_available_by_name():
    order = Order(pk=1, name="x")
    payload = render(
        '{"e": "{{event_type}}", "fields": {{update_fields}}, "created": {{created}}}',
        "application/json",
        instance=order,
        created=True,
        update_fields=frozenset({"name"}),
    )
    assert json.loads(payload) == {"e": "created", "fields": ["name"], "created": True}


@pytest.mark.parametrize(
    "template",
    [
        '{"x": "{{instance.delete}}"}',
        '{"x": "{{instance.save}}"}',
        '{"x": "{{instance._state}}"}',
        '{"x": "{{instance._meta}}"}',
        '{"x": "{{instance.customer.shout}}"}',
        '{"x": "{{instance.__class__}}"}',
        '{"x": "{{instance.objects}}"}',
        '{"x": "{{instance.customer.parcels}}"}',
        '{"x": "{{instance.no_such_thing}}"}',
        '{"x": "{{ 1 + 1 }}"}',
    ],
    ids=[
        "delete",
        "save",
        "_state",
        "_meta",
        "method-via-relation",
        "dunder",
        "manager",
        "to-many-relation",
        "unknown-name",
        "expression",
    ],
)
def test_unsafe_or_unknown_names_are_refused_at_validation(template):
    with pytest.raises(InvalidPayloadError):
        validate_template(template, "application/json", Order)


class Spy:
    def __init__(self):
        self.called = False

    def delete(self):
        self.called = True


@pytest.mark.parametrize("name", ["delete", "save", "full_clean", "_state", "refresh_from_db"])
def test_callables_and_private_names_are_refused_at_render_and_never_run(name):
    order = Order(pk=1, name="x")
    with pytest.raises(InvalidPayloadError, match=r"cannot render|private"):
        render(f'{{"x": "{{{{instance.{name}}}}}"}}', "application/json", instance=order)


def test_a_callable_in_the_context_is_never_called():
    spy = Spy()
    with pytest.raises(InvalidPayloadError, match="cannot render"):
        render('{"x": "{{thing.delete}}"}', "application/json", thing=spy)
    assert spy.called is False


@pytest.mark.parametrize(
    "template",
    [
        '{"e": "{{evnt_type}}"}',
        '{"k": "{{settings.SECRET_KEY}}"}',
        '{"c": {{created}}}',
    ],
    ids=["typo", "settings", "argument-this-signal-did-not-send"],
)
def test_a_name_the_event_did_not_send_is_refused_at_render_never_rendered_empty(template):
    with pytest.raises(InvalidPayloadError, match="this event has no"):
        render(template, "application/json", instance=Order(pk=1, name="x"))


def test_a_path_past_a_plain_value_is_refused_at_render():
    with pytest.raises(InvalidPayloadError, match=r"cannot render instance\.name\.upper"):
        render('{"n": "{{instance.name.upper}}"}', "application/json", instance=Order(pk=1))


def test_properties_and_relations_are_readable():
    order = Order(pk=1, name="Tea", customer=Customer(name="Ada", is_vip=True))
    payload = render(
        '{"label": "{{instance.label}}", "rate": {{instance.discount_rate}}, '
        '"who": "{{instance.customer.name}}"}',
        "application/json",
        instance=order,
    )
    assert json.loads(payload) == {"label": "#1 Tea", "rate": 0.1, "who": "Ada"}


def test_a_property_that_fails_on_one_instance_is_a_payload_error():
    order = Order(pk=1, name="Tea", customer=None)
    with pytest.raises(InvalidPayloadError, match=r"cannot render instance\.discount_rate"):
        render('{"rate": {{instance.discount_rate}}}', "application/json", instance=order)


def test_missing_relation_in_a_path_renders_empty():
    parcel = Parcel(pk=1, name="Box", nested_attribute=None)
    payload = json.loads(render(SEED_TEMPLATE, "application/json", instance=parcel))
    assert payload["nested_attribute"] == ""


@pytest.mark.parametrize(
    ("template", "content_type", "words"),
    [
        ('"id": {{instance.id}}}', "application/json", "invalid JSON"),
        (
            "<?xml version='1.0' encoding='utf-8'?><id>{{instance.id}}",
            "application/xml",
            "invalid XML",
        ),
        ("<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", "text/xml", "invalid XML"),
        ('{"x": {{instance.}}}', "application/json", "invalid placeholder"),
    ],
    ids=["json-missing-brace", "xml-missing-closing-tag", "xml-entity", "empty-name"],
)
def test_templates_invalid_for_their_content_type_are_refused(template, content_type, words):
    with pytest.raises(InvalidPayloadError, match=words):
        validate_template(template, content_type, Order)


def test_template_placeholders_know_when_they_are_inside_json_strings():
    parts = [
        p for p in parse_template('{"a": "x \\" {{a}}", "b": {{b}}}') if not isinstance(p, str)
    ]
    assert [(p.dotted, p.in_json_string) for p in parts] == [("a", True), ("b", False)]


@pytest.mark.parametrize(
    "template, placeholders",
    [
        ("{{a}}{{ b }}", ["a", "b"]),
        ("{{{a}}}", None),  # "{a" is no name
        ("{ {{a}} } {{b}", ["a"]),
        ("{{a}}}}{{b}}", ["a", "b"]),
        ("}}{{a}}", ["a"]),
        ("{{a\n}}", ["a"]),
        ("{{}}", None),
        ("{{", []),
        ("{" * 100_000, []),
        ("{{" * 50_000 + "a}}", None),
        ("{{a}}" + "{{" * 50_000, ["a"]),
    ],
)
def test_placeholders_are_found_in_one_pass(template, placeholders):
    """The first ``}}`` after a ``{{`` closes it. Texts of "{" without "}}" (within the
    100,000 characters a template may have) took 45 s to parse with a lazy regex."""
    if placeholders is None:
        with pytest.raises(InvalidPayloadError, match="invalid placeholder"):
            parse_template(template)
        return
    started = time.monotonic()
    parts = parse_template(template)
    # A guard against the quadratic parse (45 s), not a measure: this one takes a few ms.
    assert time.monotonic() - started < 5
    assert [p.dotted for p in parts if not isinstance(p, str)] == placeholders
    text = "".join(p if isinstance(p, str) else "" for p in parts)
    assert len(text) + sum(len(p.dotted) + 4 for p in parts if not isinstance(p, str)) <= len(
        template
    )


@pytest.mark.parametrize(
    "template, words",
    [
        ("{% if instance.name %}named{% endif %} {{instance.id}}", "tags such as"),
        ("{{instance.id}}{# a note #}", "comments"),
        ('{"total": "{%now "Y" %}"}', "tags such as"),
        ("{{ instance.name|upper }}", r"filters are not supported"),
        ("order {{instance.pk}} {# internal: {{instance.name}} #}", "comments"),
        ('{"id": "{{instance.pk}}", "note": "{# {{instance.name}} #}"}', "comments"),
        ("{% if {{instance.pk}} %}", "tags such as"),
    ],
    ids=[
        "if-tag",
        "comment",
        "tag-in-json",
        "filter",
        "comment-around",
        "json-comment",
        "tag-around",
    ],
)
@pytest.mark.parametrize("content_type", ["text/plain", ""])
def test_django_template_language_is_refused_not_sent_as_text(template, words, content_type):
    """infi.django_http_hooks rendered Django templates; a template written for it must
    not go out with its tags as literal text (``{% if ... %}named{% endif %} 1``)."""
    with pytest.raises(InvalidPayloadError, match=words):
        validate_template(template, content_type, Order)
    with pytest.raises(InvalidPayloadError, match=words):  # one stored around validation
        render(template, content_type, instance=Order(pk=1, name="n"))


@pytest.mark.parametrize(
    "template", ["100% {{instance.id}} {", "{% on one line\n%} {{instance.id}}", "{#" * 50_000]
)
def test_percent_and_hash_signs_alone_are_text(template):
    """Only what Django's lexer reads as a tag or a comment (opened and closed on one
    line) is refused; a scan a line at a time, however many openings."""
    started = time.monotonic()
    assert render(template, "text/plain", instance=Order(pk=1, name="n")).startswith(template[:4])
    assert time.monotonic() - started < 5  # a guard against a quadratic scan, not a measure


def test_a_file_gives_a_template_its_name_and_url_only(settings, tmp_path):
    """Not its path on the server, nor what opens or reads it in storage: checked when
    it renders too, for a template stored around validation."""
    settings.MEDIA_ROOT, settings.MEDIA_URL = str(tmp_path), "/media/"
    customer = Customer(name="c", avatar="avatars/a.png")
    text = render(
        "{{instance.avatar.name}} {{instance.avatar.url}}", "text/plain", instance=customer
    )
    assert text == "avatars/a.png /media/avatars/a.png"
    for name in ("path", "size", "file", "storage", "open"):
        with pytest.raises(InvalidPayloadError, match=f"cannot render instance.avatar.{name}") as e:
            render(f"{{{{instance.avatar.{name}}}}}", "text/plain", instance=customer)
        assert str(tmp_path) not in str(e.value)


def test_render_template_uses_the_lookup_for_each_placeholder():
    assert render_template("{{a}}-{{b.c}}", "text/plain", lambda path: ".".join(path)) == "a-b.c"


def test_serializer_class_gives_its_representation():
    order = Order(pk=4, name="Tea", total=decimal.Decimal("2.00"), customer=Customer(name="Ada"))
    payload, content_type = build_payload(
        template="",
        serializer_class="shop.serializers.OrderSerializer",
        content_type="",
        model=Order,
        context={"instance": order, "event_type": "updated"},
    )
    assert content_type == "application/json"
    assert json.loads(payload) == {
        "id": 4,
        "name": "Tea",
        "total": "2.00",
        "reference": str(order.reference),
        "customer_name": "Ada",
        "paid": False,
    }


def test_a_template_wins_over_a_serializer():
    payload, _ = build_payload(
        template='{"only": "template"}',
        serializer_class="shop.serializers.OrderSerializer",
        content_type="application/json",
        model=Order,
        context={"instance": Order(pk=1), "event_type": "created"},
    )
    assert json.loads(payload) == {"only": "template"}


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("shop.serializers.Nope", "cannot import"),
        ("nowhere.at.all", "cannot import"),
        ("shop.models.Order", "not a DRF serializer"),
    ],
    ids=["missing-class", "missing-module", "not-a-serializer"],
)
def test_bad_serializer_paths_are_payload_errors(path, words):
    with pytest.raises(InvalidPayloadError, match=words):
        build_payload(
            template="",
            serializer_class=path,
            content_type="",
            model=Order,
            context={"instance": Order(pk=1), "event_type": "created"},
        )


def test_default_payload_writes_decimals_with_every_digit():
    """DRF's encoder made them floats: 12345678901234567.89 became 1.2345678901234568e+16."""
    order = Order(pk=9, name="Tea", total=decimal.Decimal("12345678901234567.89"))
    payload = default_payload(order, "updated", Order)
    assert '"total": 12345678901234567.89' in payload
    total = json.loads(payload, parse_float=decimal.Decimal)["object_serialization"]["total"]
    assert total == order.total


def test_default_payload_has_type_id_event_and_every_field():
    order = Order(
        pk=9, name="Tea", total=decimal.Decimal("3.50"), placed_on=datetime.date(2026, 1, 1)
    )
    payload = json.loads(default_payload(order, "updated", Order))
    assert payload["object_type"] == "shop.order"
    assert payload["object_id"] == 9
    assert payload["event_type"] == "updated"
    assert payload["object_serialization"] == {
        "id": 9,
        "name": "Tea",
        "customer": None,
        "total": 3.5,
        "reference": str(order.reference),
        "placed_on": "2026-01-01",
        "shipped_at": None,
        "paid": False,
        "notes": "",
    }


def test_django_cached_properties_are_readable():
    order = Order(pk=1, name="Tea", customer=Customer(name="Ada"))
    validate_template('{"c": "{{instance.customer_name}}"}', "application/json", Order)
    payload = render('{"c": "{{instance.customer_name}}"}', "application/json", instance=order)
    assert json.loads(payload) == {"c": "Ada"}


@pytest.mark.parametrize(
    "template",
    [
        '{"x": "{{sender.objects.db}}"}',
        '{"x": "{{sender.name.field.max_length}}"}',
        '{"x": "{{sender}}"}',
        '{"x": "{{instance.customer.avatar.storage.location}}"}',
        '{"x": "{{instance.customer.avatar.storage}}"}',
    ],
    ids=["manager-of-a-class", "field-internals", "a-class", "storage-settings", "storage"],
)
def test_paths_never_walk_into_classes_managers_or_library_objects(template):
    order = Order(pk=1, name="x", customer=Customer(name="Ada", avatar="avatars/ada.png"))
    with pytest.raises(InvalidPayloadError, match="cannot render"):
        render(template, "application/json", instance=order, sender=Order)


def test_a_file_renders_as_its_name_and_its_url_is_readable():
    order = Order(pk=1, customer=Customer(name="Ada", avatar="avatars/ada.png"))
    payload = render(
        '{"f": {{instance.customer.avatar}}, "n": "{{instance.customer.avatar.name}}"}',
        "application/json",
        instance=order,
    )
    assert json.loads(payload) == {"f": "avatars/ada.png", "n": "avatars/ada.png"}


def test_bare_decimals_keep_every_digit_and_non_finite_numbers_are_null():
    order = Order(pk=1, total=decimal.Decimal("12345678901234567.89"))
    payload = render(
        '{"t": {{instance.total}}, "nan": {{nan}}, "inf": {{inf}}}',
        "application/json",
        instance=order,
        nan=float("nan"),
        inf=decimal.Decimal("Infinity"),
    )
    assert payload == '{"t": 12345678901234567.89, "nan": null, "inf": null}'
    assert json.loads(payload, parse_float=decimal.Decimal)["t"] == order.total


def test_non_finite_floats_are_null_in_lists_and_objects_and_iterators_read_once():
    """Written refusing them first, then again: a generator must give its items to both."""
    value = {"s": "NaN -Infinity", "g": (x for x in [1.5, math.nan, decimal.Decimal("2.50")])}
    assert to_json({**value, "nan": [math.nan, math.inf, -math.inf]}) == (
        '{"s": "NaN -Infinity", "g": [1.5, null, 2.50], "nan": [null, null, null]}'
    )


def test_text_shaped_like_a_decimals_marker_stays_text():
    """A decimal goes through ``json`` as a marker: only this call's markers are numbers."""
    text = "decimal-" + "0" * 32 + "-0"
    assert to_json([decimal.Decimal("1.10"), text]) == f'[1.10, "{text}"]'


def test_nan_in_a_template_is_not_valid_json():
    with pytest.raises(InvalidPayloadError, match="NaN is not JSON"):
        validate_template('{"x": NaN}', "application/json", Order)
