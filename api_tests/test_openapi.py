"""The OpenAPI schema: committed, complete, valid; the docs pages work offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from drf_spectacular.settings import SPECTACULAR_DEFAULTS, patched_settings

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")
DIST_SETTINGS = ("SWAGGER_UI_DIST", "SWAGGER_UI_FAVICON_HREF", "REDOC_DIST")


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_committed_schema_is_up_to_date(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", file=str(generated), validate=True, fail_on_warn=True)
    assert generated.read_text() == COMMITTED.read_text(), (
        "openapi.yaml is stale: run `make schema` and commit it"
    )


def test_the_schema_of_a_project_on_openapi_3_0_is_valid(tmp_path):
    """A project installed as the README says keeps drf-spectacular's default, OpenAPI
    3.0.3 (the demo asks for 3.1 and its webhooks section): the schema must be valid
    there too, with 3.0's ``nullable`` where 3.1 has ``type: [string, null]``."""
    generated = tmp_path / "openapi.yaml"
    with patched_settings({"OAS_VERSION": "3.0.3", "WEBHOOKS": []}):
        call_command("spectacular", file=str(generated), validate=True, fail_on_warn=True)
    document = yaml.safe_load(generated.read_text())
    assert document["openapi"] == "3.0.3"
    page = document["components"]["schemas"]["PaginatedHookList"]["properties"]
    assert page["next"]["type"] == "string"
    assert page["next"]["nullable"] is True


def test_schema_has_every_operation_with_a_stable_id(schema):
    ids = {op["operationId"] for _, _, op in operations(schema)}
    assert ids == {
        "list_hooks", "create_hook", "get_hook", "update_hook", "partial_update_hook",
        "delete_hook", "test_hook", "rotate_hook_secret", "enable_hook", "get_hook_health",
        "recover_hook",
        "list_signals", "create_signal", "get_signal", "delete_signal",
        "list_callbacks", "get_callback", "delete_callback", "resend_callback",
        "resend_callbacks", "send_callbacks", "monitor_callbacks", "list_callback_attempts",
        "delete_old_callbacks",
        "send_event", "list_event_types",
    }  # fmt: skip


def test_every_operation_is_described_and_documents_its_errors(schema):
    for path, method, op in operations(schema):
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert op.get("tags"), where
        responses = op["responses"]
        for code in ("401", "403"):
            assert responses[code]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, where
        if "{id}" in path:
            assert "404" in responses, where
        if method in ("post", "put", "patch") and op.get("requestBody"):
            assert "400" in responses, where
        # Query parameters (filters, pages, cursors) are checked: a bad one is a 400.
        if any(parameter["in"] == "query" for parameter in op.get("parameters", [])):
            assert "400" in responses, where
        for code, response in responses.items():
            if code.startswith("2") and code != "204":
                assert response["content"]["application/json"]["schema"], where


def test_every_parameter_is_typed_and_described(schema):
    for path, method, op in operations(schema):
        for parameter in op.get("parameters", []):
            where = f"{method.upper()} {path} {parameter['name']}"
            assert parameter["schema"].get("type") or parameter["schema"].get("enum"), where
            assert parameter.get("description"), where


def test_answers_that_are_not_models_have_their_own_types(schema):
    components = schema["components"]["schemas"]
    assert set(components["MonitorResult"]["properties"]) == {
        "status", "count", "callbacks_limit", "minutes_ago", "exceeded",
    }  # fmt: skip
    assert {"mode", "sent", "retried", "failed", "more"} <= set(
        components["SendResult"]["properties"]
    )
    assert set(components["Error"]["properties"]) == {"code", "detail", "errors"}


def test_secret_is_write_only_except_on_create(schema):
    components = schema["components"]["schemas"]
    assert "secret" in components["HookRequest"]["properties"]
    assert "secret" not in components["Hook"]["properties"]
    assert "secret" in components["HookWithSecret"]["properties"]
    create = schema["paths"]["/api/hooks/"]["post"]["responses"]["201"]
    assert create["content"]["application/json"]["schema"]["$ref"].endswith("/HookWithSecret")
    assert all("previous_secret" not in c.get("properties", {}) for c in components.values())


def schema_of(schema, reference):
    return schema["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]


def test_schema_documents_the_requests_we_send(schema):
    assert set(schema["webhooks"]) == {"callback", "event", "test_event"}
    description = schema["webhooks"]["callback"]["post"]["description"]
    assert "webhook-signature" in description
    body = schema["webhooks"]["event"]["post"]["requestBody"]["content"]["application/json"]
    assert set(schema_of(schema, body["schema"])["required"]) == {"type", "timestamp", "data"}


@pytest.mark.django_db
def test_schema_endpoint_serves_the_committed_schema():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert response.status_code == 200
    assert yaml.safe_load(response.content) == yaml.safe_load(COMMITTED.read_text())


@pytest.mark.django_db
def test_the_schema_says_a_send_s_limit_is_batch_size_at_most(settings, staff_client):
    """A larger ``limit`` is refused (400), so the schema says so: schemathesis sent
    953866299 as valid by the schema."""
    limit = yaml.safe_load(COMMITTED.read_text())["components"]["schemas"]["SendRequestRequest"]
    assert limit["properties"]["limit"]["maximum"] == 500  # BATCH_SIZE by default
    settings.HTTP_HOOKS = {**settings.HTTP_HOOKS, "BATCH_SIZE": 7}
    served = yaml.safe_load(Client().get("/api/schema/").content)
    assert served["components"]["schemas"]["SendRequestRequest"]["properties"]["limit"] == {
        **limit["properties"]["limit"],
        "maximum": 7,
    }
    assert staff_client.post("/api/callbacks/send/", {"limit": 7}, format="json").status_code == 200
    assert staff_client.post("/api/callbacks/send/", {"limit": 8}, format="json").status_code == 400


# drf-spectacular's defaults: its assets from a CDN, as in a project that never set them.
CDN_DEFAULTS = {key: SPECTACULAR_DEFAULTS[key] for key in DIST_SETTINGS}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/docs/", "/api/redoc/"])
@pytest.mark.parametrize("dist", ["sidecar", "cdn"])
def test_docs_pages_load_only_local_assets(url, dist):
    """Whatever SPECTACULAR_SETTINGS say about the assets, the app's pages use the
    sidecar's (the demo names the sidecar; a project following the README does not)."""
    with patched_settings(CDN_DEFAULTS if dist == "cdn" else {}):
        response = Client().get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file"
    assert "://" not in html


# --- what a newcomer tries first: the schema's examples, the browsable API's form ------


@pytest.mark.django_db
def test_every_request_example_of_the_schema_is_accepted(schema, staff_client, make_hook):
    hook = make_hook()
    tried = []
    for path, method, operation in operations(schema):
        content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        for name, example in content.get("examples", {}).items():
            url = path.replace("{id}", str(hook.pk))
            response = getattr(staff_client, method)(url, example["value"], format="json")
            assert 200 <= response.status_code < 300, (url, name, response.json())
            tried.append(operation["operationId"])
    assert {"create_hook", "update_hook", "partial_update_hook"} <= set(tried)


def test_ids_in_requests_start_at_1(schema):
    """Swagger UI fills an id with the schema's minimum (0 when there is none)."""

    def integers(node, name=""):
        if isinstance(node, dict):
            writable = not node.get("readOnly")
            if writable and node.get("type") == "integer" and re.search(r"(^|_)ids?$", name):
                yield name, node
            for key, value in node.items():
                yield from integers(value, key if key not in ("items", "schema") else name)
        elif isinstance(node, list):
            for item in node:
                yield from integers(item, name)

    found = dict(integers(schema["components"]["schemas"]))
    found.update(integers(schema["webhooks"]))
    assert {"hook_id", "ids"} <= set(found)
    assert all(node.get("minimum", 0) >= 1 for node in found.values()), found


def test_every_method_of_a_webhook_documents_the_body_it_carries(schema):
    """A hook sending with GET or DELETE sends its body too (signed with it): a
    receiver generating types from the schema needs it under every method."""
    for name, methods in schema["webhooks"].items():
        for method, operation in methods.items():
            assert operation.get("requestBody") == methods["post"]["requestBody"], (name, method)


def test_the_test_event_is_documented_with_every_method_a_hook_sends_with(schema):
    from http_hooks.models import HttpMethod

    methods = {method.lower() for method in HttpMethod.values}
    assert set(schema["webhooks"]["test_event"]) == methods
    assert set(schema["webhooks"]["callback"]) == methods


@pytest.mark.django_db
def test_the_browsable_api_offers_a_new_hook_that_is_accepted_as_it_stands(staff_client):
    import html

    page = staff_client.get("/api/hooks/", HTTP_ACCEPT="text/html").content.decode()
    (body,) = re.findall(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    response = staff_client.post(
        "/api/hooks/", html.unescape(body), content_type="application/json"
    )
    assert response.status_code == 201, response.json()
    hook = response.json()
    assert hook["enabled"] is True
    assert hook["has_secret"] is True
    assert hook["http_method"] == "POST"


def raw_form_body(client, path: str) -> str:
    """The body the browsable API's raw form of ``path`` offers to POST."""
    import html

    page = client.get(path, HTTP_ACCEPT="text/html").content.decode()
    (body,) = re.findall(r'<textarea[^>]*name="_content"[^>]*>(.*?)</textarea>', page, re.S)
    return html.unescape(body)


@pytest.mark.parametrize(
    ("path", "offered"),
    [
        ("/api/hooks/{hook}/test/", {}),
        ("/api/hooks/{hook}/enable/", {}),
        ("/api/hooks/{hook}/rotate-secret/", {}),
        ("/api/hooks/{hook}/recover/", {"since": None, "confirm": False}),
        ("/api/callbacks/{callback}/resend/", {}),
        ("/api/callbacks/resend/", {"confirm": False}),
        ("/api/callbacks/send/", {}),
        ("/api/callbacks/delete-old/", {"days": None, "include_undelivered": False}),
        ("/api/events/", {"event_type": "", "payload": None}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
@pytest.mark.django_db
def test_the_browsable_api_offers_each_action_its_own_body(staff_client, make_hook, path, offered):
    """Not a whole hook, the ViewSet's model: posted as it stood, that was a 400 ("this
    action takes no body", "unknown field") for every action of a hook."""
    import json

    from shop.models import Order

    hook = make_hook()
    Order.objects.create(name="o")
    path = path.format(hook=hook.pk, callback=hook.callbacks.get().pk)
    assert json.loads(raw_form_body(staff_client, path)) == offered


@pytest.mark.parametrize(
    "path",
    [
        "/api/hooks/{hook}/test/",
        "/api/hooks/{hook}/enable/",
        "/api/hooks/{hook}/rotate-secret/",
        "/api/callbacks/{callback}/resend/",
        "/api/callbacks/send/",
    ],
)
@pytest.mark.django_db(transaction=True)
def test_an_action_posted_as_the_browsable_api_offers_it_is_done(staff_client, make_hook, path):
    from shop.models import Order

    hook = make_hook()
    Order.objects.create(name="o")
    path = path.format(hook=hook.pk, callback=hook.callbacks.get().pk)
    response = staff_client.post(
        path, raw_form_body(staff_client, path), content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    hook.refresh_from_db()
    assert hook.secret.startswith("whsec_")  # a rotation as offered leaves it signed


def test_action_bodies_that_refuse_unknown_keys_say_so(schema, staff_client):
    """The actions' bodies refuse a key they do not know (400 ``unknown_field``), and
    the schema says so, so that clients and fuzzers send none."""
    closed = {
        name
        for name, component in schema["components"]["schemas"].items()
        if component.get("additionalProperties") is False
    }
    assert closed == {
        "DeleteOldRequest",
        "RecoverRequest",
        "ResendManyRequest",
        "RotateSecretRequest",
        "SendEventRequest",
        "SendRequestRequest",
    }
    response = staff_client.post("/api/callbacks/send/", {"nope": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_field"


def test_an_event_payload_of_null_is_valid_by_the_schema(schema):
    """``payload`` takes any JSON value, null included: a schema of ``oneOf: [{}, null]``
    would match a null twice, and so refuse it."""
    import jsonschema

    payload = schema["components"]["schemas"]["SendEventRequest"]["properties"]["payload"]
    for value in (None, 1, "x", [1], {"a": None}):
        jsonschema.validate(value, payload)


def test_text_parameters_are_refused_exactly_where_the_schema_says(schema, staff_client):
    """A value within a parameter's ``maxLength`` and ``pattern`` is taken, and one past
    either is a 400 naming the parameter: a client checking the schema's rules first
    is never refused for the form of a value."""
    checked = []
    for path, method, operation in operations(schema):
        if method != "get" or "{" in path:
            continue
        for parameter in operation.get("parameters", []):
            rules = parameter["schema"]
            if parameter["in"] != "query" or not {"pattern", "maxLength"} & set(rules):
                continue
            name, longest = parameter["name"], rules.get("maxLength", 100)
            pattern = re.compile(rules.get("pattern", "(?s).*").removesuffix("$") + r"\Z")
            good = [v for v in ("a" * longest, "order.*", "*") if pattern.match(v)]
            bad = ["a" * (longest + 1), "a" * longest + " ", "a b", "a\n", "Order", "x\x00y"]
            too_long = "maxLength" in rules
            bad = [v for v in bad if (too_long and len(v) > longest) or not pattern.match(v)]
            for value in good if name != "model" else []:  # a label of no model is a 400
                response = staff_client.get(path, {name: value})
                assert response.status_code == 200, (path, name, value, response.json())
            for value in bad:
                response = staff_client.get(path, {name: value})
                assert response.status_code == 400, (path, name, value, response.status_code)
                assert name in {e["field"] for e in response.json()["errors"]}, response.json()
            checked.append((path, name))
    assert {("/api/hooks/", "event_type"), ("/api/hooks/", "changed_field")} <= set(checked)
    assert {
        ("/api/callbacks/", "owner"),
        ("/api/hooks/", "name"),
        ("/api/hooks/", "search"),
    } <= set(checked)
